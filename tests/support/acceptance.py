"""What the acceptance tests share: waiting, small HTTP servers on 127.0.0.1, webhook signature checks."""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import pytest

SECRET_LINE = re.compile(r"Webhook secret \(shown once\): (\S+)")
"""The line the first ``serve`` prints with the default organization's webhook secret."""

T = TypeVar("T")


def wait_for(what: str, check: Callable[[], T | None], timeout: float, interval: float = 0.5) -> T:
    """Call ``check`` until it returns something other than None; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def serve_in_thread(server: ThreadingHTTPServer) -> threading.Thread:
    """Run ``server`` on a daemon thread."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    return thread


def stop_http_server(server: ThreadingHTTPServer, thread: threading.Thread) -> None:
    """Stop a server started by ``serve_in_thread`` and release its port."""
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


class QuietFiles(SimpleHTTPRequestHandler):
    """Serves a folder without logging every request."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def serving_folder(folder: Path) -> Iterator[str]:
    """Serve ``folder`` over HTTP on 127.0.0.1 (404 for anything else); yields the base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietFiles, directory=str(folder)))
    thread = serve_in_thread(server)
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        stop_http_server(server, thread)


def signature_valid(secret: str | None, header: str | None, body: bytes) -> bool:
    """``Sync-Signature: t=<unix>,v1=<hex>``, v1 = HMAC-SHA256(secret, "<t>." + body), written from API.md."""
    if not secret or not header:
        return False
    parts = [part.strip().partition("=") for part in header.split(",")]
    timestamps = [value for key, _, value in parts if key == "t"]
    candidates = [value for key, _, value in parts if key == "v1"]
    if len(timestamps) != 1 or not timestamps[0].isdigit() or not candidates:
        return False
    expected = hmac.new(secret.encode(), f"{timestamps[0]}.".encode() + body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, candidate) for candidate in candidates)


@dataclass
class Attempt:
    """One webhook delivery attempt as the receiver saw it, and what it answered."""

    path: str
    webhook_id: str | None
    signature_ok: bool
    body: bytes
    answered: int


@dataclass
class Receiver:
    """A webhook receiver's record; ``answer(attempts so far, signature ok)`` picks each status code."""

    answer: Callable[[list[Attempt], bool], int]
    url: str = ""
    secret: str | None = None
    attempts: list[Attempt] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def snapshot(self) -> list[Attempt]:
        with self.lock:
            return list(self.attempts)

    def accepted(self) -> list[Attempt]:
        return [attempt for attempt in self.snapshot() if attempt.answered == 200]


@contextmanager
def webhook_receiver(receiver: Receiver, path: str = "/hooks") -> Iterator[Receiver]:
    """Serve ``receiver`` on 127.0.0.1 (its ``url`` ends in ``path``), verifying ``Sync-Signature``."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            ok = signature_valid(receiver.secret, self.headers.get("Sync-Signature"), body)
            with receiver.lock:
                answered = receiver.answer(receiver.attempts, ok)
                webhook_id = self.headers.get("Sync-Webhook-Id")
                receiver.attempts.append(Attempt(self.path, webhook_id, ok, body, answered))
            self.send_response(answered)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = serve_in_thread(server)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}{path}"
    try:
        yield receiver
    finally:
        stop_http_server(server, thread)
