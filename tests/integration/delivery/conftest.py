"""A real local webhook receiver (scriptable answers, every request recorded) and a SQLite store."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import pytest_asyncio

from lipsync_api.store import Store
from lipsync_api.store.database import sqlite_url
from lipsync_api.store.models import Organization
from lipsync_api.webhooks import SIGNATURE_HEADER, verify
from tests.support.stores import migrated_store

SECRET = "whsec_test_secret"


@dataclass(frozen=True)
class Received:
    """One request the receiver got, and whether its signature verified at the receiver's clock."""

    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool


@dataclass
class Receiver:
    """Answers each POST with the next scripted (status, delay seconds), then 200; records every request."""

    port: int = 0
    clock: int = 0  # the unix time the receiver verifies signatures at (tests drive time explicitly)
    script: list[tuple[int, float]] = field(default_factory=list)
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str = "/hook", host: str = "127.0.0.1") -> str:
        """A URL on this receiver."""
        return f"http://{host}:{self.port}{path}"

    def answer(self, *answers: int | tuple[int, float]) -> None:
        """Queue answers: a status, or (status, seconds to wait before answering)."""
        with self.lock:
            self.script.extend(a if isinstance(a, tuple) else (a, 0.0) for a in answers)

    def next_answer(self) -> tuple[int, float]:
        """The next scripted answer, or a plain 200."""
        with self.lock:
            return self.script.pop(0) if self.script else (200, 0.0)


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            header = self.headers.get(SIGNATURE_HEADER, "")
            received = Received(
                self.path, dict(self.headers.items()), body, verify(SECRET, header, body, now=receiver.clock)
            )
            with receiver.lock:
                receiver.requests.append(received)
            status, delay = receiver.next_answer()
            time.sleep(delay)
            try:
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
            except OSError:  # the sender gave up waiting and closed the connection
                pass

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on 127.0.0.1 in a thread."""
    state = Receiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """A SQLite file, reopened by the restart tests."""
    return sqlite_url(tmp_path / "store.db")


@pytest_asyncio.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    """All repositories over a migrated SQLite database."""
    async with migrated_store(database_url) as opened:
        yield opened


@pytest_asyncio.fixture
async def org(store: Store) -> Organization:
    """An organization whose webhook secret is SECRET."""
    return await store.organizations.create("Acme", "growth", webhook_secret=SECRET)
