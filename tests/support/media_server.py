"""A media host on 127.0.0.1 for probe tests: serves a folder with or without HTTP Range support.

Routes: ``/r/<name>`` honours ``Range`` (206 with ``Content-Range``), ``/plain/<name>`` ignores it (200
with the whole file), ``/moody/<name>`` honours only the first Range request of each file and then
answers 200, ``/go/<route>/<name>`` redirects (302) to ``/<route>/<name>``. Anything else is 404.
Every request is recorded (path, Range header, status, body bytes sent).
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

_RANGE = re.compile(r"bytes=(\d+)-(\d*)")


@dataclass(frozen=True)
class Served:
    """One request the host answered."""

    path: str
    range: str | None
    status: int
    sent: int


@dataclass
class MediaHost:
    """A running host: its base URL, the folder it serves and what it was asked."""

    base: str
    folder: Path
    requests: list[Served] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, route: str, name: str) -> str:
        return f"{self.base}/{route}/{name}"

    def served(self, name: str | None = None) -> list[Served]:
        """The requests so far (for one file name, if given)."""
        with self.lock:
            return [s for s in self.requests if name is None or s.path.rsplit("/", 1)[-1] == name]

    def clear(self) -> None:
        with self.lock:
            self.requests.clear()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:
        route, _, name = self.path.lstrip("/").partition("/")
        if route == "go":
            self._answer(302, b"", [("Location", f"/{name}")])
            return
        path = self.server.host.folder / name
        if route not in ("r", "plain", "moody") or "/" in name or not path.is_file():
            self._answer(404, b"not found")
            return
        size = path.stat().st_size
        wanted = _RANGE.fullmatch(self.headers.get("Range", ""))
        if wanted is None or route == "plain" or (route == "moody" and self._asked_before(name)):
            self._answer(200, path.read_bytes(), [("Accept-Ranges", "none")])
            return
        start = int(wanted[1])
        end = min(int(wanted[2]) if wanted[2] else size - 1, size - 1)
        if start >= size:
            self._answer(416, b"", [("Content-Range", f"bytes */{size}")])
            return
        with path.open("rb") as file:
            file.seek(start)
            part = file.read(end - start + 1)
        headers = [("Content-Range", f"bytes {start}-{end}/{size}"), ("Accept-Ranges", "bytes")]
        self._answer(206, part, headers)

    def _asked_before(self, name: str) -> bool:
        return any(s.range is not None for s in self.server.host.served(name))

    def _answer(self, status: int, body: bytes, headers: list[tuple[str, str]] | None = None) -> None:
        with self.server.host.lock:
            self.server.host.requests.append(Served(self.path, self.headers.get("Range"), status, len(body)))
        self.send_response(status)
        for name, value in headers or []:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # a client stopping on purpose
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    host: MediaHost


@contextmanager
def media_host(folder: Path) -> Iterator[MediaHost]:
    """Serve ``folder`` on a free loopback port until the block ends (stopped by this process)."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.host = MediaHost(f"http://127.0.0.1:{server.server_address[1]}", folder)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield server.host
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
