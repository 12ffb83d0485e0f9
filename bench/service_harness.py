"""Shared pieces of the service benchmarks: servers stopped by PID, a media host, a webhook receiver,
fresh databases, campaign batch files, CPU accounting and medians.

Everything listens on 127.0.0.1 only, and every process started here is stopped by its own PID.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
API_KEY = "lsk_bench_0123456789abcdef01234567"
POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
BOUNDARY = "lipsyncbench7c1e0d5a"
_RANGE = re.compile(r"bytes=(\d+)-(\d*)")
_TOKEN_CHARS = "IQoJb3JpZ2luX2VjEHcaCWV1LXdlc3QtMSJHMEUCIQD4n7Xq0Tz9sK2mFv8LpR5aWc3uYe6hBjNd1gOiMtPk"


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


# --- servers -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Server:
    """A running server process: where it answers, its PID and its log."""

    base: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def headers(self) -> dict[str, str]:
        return {"x-api-key": API_KEY}


@contextlib.contextmanager
def running(
    command: list[str], data_dir: Path, env: Mapping[str, str] | None = None, ready_timeout: float = 120.0
) -> Iterator[Server]:
    """Start ``command`` (a server reading LIPSYNC_* settings) on a free port; stop it by PID afterwards,
    then remove its data folder (its log stays beside it) unless BENCH_KEEP_DATA is set."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    environment = {key: value for key, value in os.environ.items() if not key.startswith("LIPSYNC_")} | {
        "LIPSYNC_DATA_DIR": str(data_dir),
        "LIPSYNC_BOOTSTRAP_API_KEY": API_KEY,
        "LIPSYNC_HOST": "127.0.0.1",
        "LIPSYNC_PORT": str(port),
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    log_path = data_dir.parent / f"{data_dir.name}-server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, env=environment, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        server = Server(f"http://127.0.0.1:{port}", process, log_path)
        try:
            _wait_ready(server, ready_timeout)
            yield server
        finally:
            stop(process)
            if not os.environ.get("BENCH_KEEP_DATA"):
                shutil.rmtree(data_dir, ignore_errors=True)


def real_serve_command() -> list[str]:
    """``lipsync-api serve``, as installed in this interpreter's environment.

    ``BENCH_SERVE_SCRIPT`` in the environment names a script to run instead (as ``python SCRIPT serve``:
    a patched server, to try a fix before making it).
    """
    script = os.environ.get("BENCH_SERVE_SCRIPT")
    return [sys.executable, script, "serve"] if script else [sys.executable, "-m", "lipsync_api", "serve"]


def bench_server_command(engine: str, sleep_ms: float = 0.0) -> list[str]:
    """``bench/bench_server.py``: ``serve`` with a benchmark-only engine (see that file).

    ``BENCH_SERVER_SCRIPT`` in the environment names another script taking the same options (a patched
    server, to try a fix before making it).
    """
    script = os.environ.get("BENCH_SERVER_SCRIPT") or str(BENCH / "bench_server.py")
    return [sys.executable, script, "--engine", engine, "--sleep-ms", str(sleep_ms)]


def _wait_ready(server: Server, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited with {server.process.returncode}:\n{server.log.read_text()}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{server.base}/readyz", timeout=2).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"server not ready after {timeout:g} s:\n{server.log.read_text()}")


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 30 s (by PID, never by name)."""
    if process.poll() is not None:
        return
    os.kill(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()


@contextlib.contextmanager
def profiled(pid: int, output: Path | None, gil: bool = True) -> Iterator[None]:
    """Sample ``pid`` with py-spy (collapsed stacks in ``output``) while the block runs, if asked
    (``gil``: only the thread holding the GIL, i.e. where the server's Python time goes; waits on
    sockets, SQLite or sleeps do not show).

    py-spy is a profiling aid only (``pip install py-spy`` into the venv); it is not a dependency.
    """
    if output is None:
        yield
        return
    spy_bin = Path(sys.executable).parent / "py-spy"
    command = [str(spy_bin), "record", "--pid", str(pid), "--format", "raw", "--rate", "200"]
    command += ["--output", str(output), *(["--gil"] if gil else [])]
    spy = subprocess.Popen(command)
    time.sleep(1.0)  # py-spy attaches
    try:
        yield
    finally:
        os.kill(spy.pid, signal.SIGINT)
        spy.wait(timeout=60)


# --- databases -----------------------------------------------------------------------------------------


@contextlib.contextmanager
def fresh_database(kind: str) -> Iterator[str | None]:
    """None for SQLite (the server's default file in its data folder), or the URL of a new PostgreSQL
    database made for this run on the local server and dropped afterwards."""
    if kind == "sqlite":
        yield None
        return
    import asyncpg

    name = f"bench_{uuid.uuid4().hex[:12]}"

    async def admin(statement: str) -> None:
        connection = await asyncpg.connect(POSTGRES_ADMIN)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(admin(f"CREATE DATABASE {name}"))
    try:
        yield POSTGRES_URL.format(name=name)
    finally:
        asyncio.run(admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


# --- batch files ---------------------------------------------------------------------------------------


def presigned(url: str, token_chars: int, seed: int) -> str:
    """``url`` with the query of an S3 presigned URL made with temporary credentials (the long part is the
    session token); deterministic for a seed."""
    start = seed * 7919 % len(_TOKEN_CHARS)
    token = (_TOKEN_CHARS * (token_chars // len(_TOKEN_CHARS) + 2))[start : start + token_chars]
    signature = f"{(seed * 2654435761) % 16**16:016x}" * 4
    return (
        f"{url}?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=ASIAEXAMPLEKEY%2F20261129%2Feu-west-1"
        f"%2Fs3%2Faws4_request&X-Amz-Date=20261129T120000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
        f"&X-Amz-Security-Token={token}&X-Amz-Signature={signature}"
    )


def campaign_file(
    lines: int,
    video_url: str,
    audio_url: Callable[[int], str],
    target_bytes: int,
    line_webhook: str | None = None,
) -> bytes:
    """A personalised-video campaign: one template video, one distinct voice track per line, both as
    presigned URLs whose session token is sized so the file comes to about ``target_bytes``."""

    def line(index: int, token_chars: int) -> str:
        payload: dict[str, Any] = {
            "model": "lipsync-2",
            "input": [
                {"type": "video", "url": presigned(video_url, token_chars, 0)},
                {"type": "audio", "url": presigned(audio_url(index), token_chars, index + 1)},
            ],
            "options": {"sync_mode": "cut_off", "temperature": 0.5},
            "outputFileName": f"campaign_{index:05d}",
        }
        if line_webhook:
            payload["webhookUrl"] = line_webhook
        return json.dumps(
            {"request_id": f"customer_{index:05d}", "endpoint": "/v2/generate", "payload": payload}
        )

    bare = sum(len(line(i, 0)) + 1 for i in range(lines))
    token_chars = max(0, (target_bytes - bare) // (2 * lines))
    return "".join(line(i, token_chars) + "\n" for i in range(lines)).encode()


def multipart(fields: Mapping[str, str], data: bytes) -> tuple[bytes, dict[str, str]]:
    """A ``multipart/form-data`` body (text fields, then the file as ``input``) and its content type,
    built once so that no run pays for encoding it."""
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="input"; filename="batch.jsonl"\r\n'
        "Content-Type: application/jsonl\r\n\r\n"
    ).encode()
    body = b"".join([*parts, head, data, f"\r\n--{BOUNDARY}--\r\n".encode()])
    return body, {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}


# --- local HTTP peers: a media host and a webhook receiver ---------------------------------------------


class _Quiet(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256


@dataclass
class MediaHost:
    """Serves files by route (``/<route>/<anything>`` -> ``files[route]``), honouring Range; the query
    string and the rest of the path are ignored, so every presigned URL of a route is the same file."""

    files: Mapping[str, Path]
    base: str = ""
    requests: int = 0
    bytes_sent: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    _data: dict[str, bytes] = field(default_factory=dict)

    def count(self, sent: int) -> None:
        with self.lock:
            self.requests += 1
            self.bytes_sent += sent


class _MediaHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Any

    def do_GET(self) -> None:
        host: MediaHost = self.server.host
        route = self.path.lstrip("/").split("/", 1)[0]
        data = host._data.get(route)
        if data is None:
            self._answer(404, b"not found", [])
            return
        wanted = _RANGE.fullmatch(self.headers.get("Range", ""))
        if wanted is None:
            self._answer(200, data, [("Accept-Ranges", "bytes")])
            return
        start = int(wanted[1])
        end = min(int(wanted[2]) if wanted[2] else len(data) - 1, len(data) - 1)
        headers = [("Content-Range", f"bytes {start}-{end}/{len(data)}"), ("Accept-Ranges", "bytes")]
        self._answer(206, data[start : end + 1], headers)

    def _answer(self, status: int, body: bytes, headers: list[tuple[str, str]]) -> None:
        self.server.host.count(len(body))
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def media_host(files: Mapping[str, Path]) -> Iterator[MediaHost]:
    """A media host on a free loopback port until the block ends."""
    host = MediaHost(files)
    host._data = {route: path.read_bytes() for route, path in files.items()}
    with _serve(_MediaHandler, host) as base:
        host.base = base
        yield host


@dataclass
class WebhookReceiver:
    """Records every POST (arrival time from ``time.time()``, parsed JSON body) and answers 204."""

    url: str = ""
    received: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float
    ) -> tuple[float, dict[str, Any]]:
        """The first delivery matching ``predicate``; raises TimeoutError after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                for arrival, body in self.received:
                    if predicate(body):
                        return arrival, body
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no matching webhook within {timeout:g} s ({len(self.received)} got)")
                self.changed.wait(left)


class _WebhookHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Any

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        arrival = time.time()
        receiver: WebhookReceiver = self.server.host
        with receiver.changed:
            receiver.received.append((arrival, json.loads(body)))
            receiver.changed.notify_all()
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def webhook_receiver() -> Iterator[WebhookReceiver]:
    """A webhook receiver on a free loopback port until the block ends."""
    receiver = WebhookReceiver()
    with _serve(_WebhookHandler, receiver) as base:
        receiver.url = f"{base}/hook"
        yield receiver


@contextlib.contextmanager
def _serve(handler: type[BaseHTTPRequestHandler], host: object) -> Iterator[str]:
    server = _Quiet(("127.0.0.1", 0), handler)
    server.host = host  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


# --- CPU accounting, statistics, the machine ------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a running process (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, all cores together."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return (sum(values) - idle) / _TICK, sum(values) / _TICK


class CpuWindow:
    """CPU used by given PIDs and by the whole machine between ``start`` and ``stop``, as shares of one
    core over the window's wall time (2.0 = both cores of this machine)."""

    def __init__(self, pids: Mapping[str, int]) -> None:
        self.pids = dict(pids)

    def start(self) -> None:
        self._wall = time.monotonic()
        self._cpu = {name: process_cpu_seconds(pid) for name, pid in self.pids.items()}
        self._machine = machine_busy()[0]

    def stop(self) -> dict[str, float]:
        wall = time.monotonic() - self._wall
        shares = {
            name: (process_cpu_seconds(pid) - self._cpu[name]) / wall for name, pid in self.pids.items()
        }
        shares["machine"] = (machine_busy()[0] - self._machine) / wall
        return shares


def median(values: list[float]) -> float:
    return statistics.median(values)


def pairwise_ratio(values: list[float], baselines: list[float]) -> float:
    """The median of the run-by-run ratios (each run's figure over the baseline measured beside it)."""
    return statistics.median(v / b for v, b in zip(values, baselines, strict=True))


def describe_machine() -> str:
    """One line: CPU model and count, memory, Python, and the load average now (other users' noise)."""
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown CPU",
    )
    memory = int(Path("/proc/meminfo").read_text().split()[1]) / 1024**2
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    return (
        f"{os.cpu_count()} x {model}, {memory:.0f} GiB RAM, Python {platform.python_version()}; "
        f"load average now {load}"
    )
