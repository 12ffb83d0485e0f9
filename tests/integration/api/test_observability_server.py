"""The real ``serve``: JSON log lines with request ids (uvicorn's access log included), no signature in
them, and a stop (SIGTERM) that does not hang on an open event stream.

The batch's media host accepts connections and never answers, so the batch stays PROCESSING while the
stream is open; it is let go only after the stream has closed, so the stream cannot end by the batch ending.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.server import running_server

KEY = "lsk_observability_key_0123456789"
SIGNATURE = "5eed" * 16


@contextlib.contextmanager
def silent_host() -> Iterator[str]:
    """A TCP server on 127.0.0.1 that accepts connections and never answers (until the block ends)."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError, OSError):
                held.append(listener.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        for connection in held:
            connection.close()
        listener.close()


def batch_line(host: str) -> bytes:
    payload = {
        "model": "lipsync-2",
        "input": [{"type": "video", "url": f"{host}/v.mp4"}, {"type": "audio", "url": f"{host}/a.wav"}],
    }
    return json.dumps({"request_id": "r0", "endpoint": "/v2/generate", "payload": payload}).encode()


@pytest.mark.slow
def test_json_logs_and_a_stop_with_an_open_event_stream(tmp_path: Path) -> None:
    env = {"LIPSYNC_FETCH_ALLOW_PRIVATE_ADDRESSES": "true", "LIPSYNC_SHUTDOWN_GRACE_SECONDS": "1"}
    headers = {"x-api-key": KEY}
    with running_server(tmp_path, KEY, env=env) as server:
        with silent_host() as host:
            models = httpx.get(f"{server.base}/v2/models", headers={**headers, "X-Request-Id": "smoke-req-1"})
            assert models.headers["x-request-id"] == "smoke-req-1"
            signed = f"{server.base}/v2/files/results/x.jsonl?expires=4102444800&signature={SIGNATURE}"
            assert httpx.get(signed).status_code in (403, 404)
            files = {"input": ("b.jsonl", batch_line(host), "application/jsonl")}
            batch = httpx.post(f"{server.base}/v2/batch", headers=headers, files=files).json()
            seen: list[str] = []
            timeout = httpx.Timeout(10.0, read=30.0)  # no event for 30 s: the stream hung the stop
            url = f"{server.base}/v2/batch/{batch['id']}/events"
            with httpx.stream("GET", url, headers=headers, timeout=timeout) as stream:
                for line in stream.iter_lines():
                    seen.append(line)
                    if line == "event: metrics" and len(seen) == 2:
                        os.kill(server.process.pid, signal.SIGTERM)  # stop with the stream open
            assert seen[1] == "event: metrics" and "event: end" not in seen
        server.process.wait(timeout=60)  # the media host let go: the engine thread, then the process, end
    assert server.process.returncode in (0, -signal.SIGTERM)  # uvicorn re-raises the signal it handled
    log = server.log_text()
    events = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    access = [e for e in events if e["logger"] == "uvicorn.access"]
    assert any("/v2/models" in e["message"] and e.get("request_id") == "smoke-req-1" for e in access)
    assert any(
        "/v2/files/results/x.jsonl" in e["message"] and "signature=[REDACTED]" in e["message"] for e in access
    )
    assert all({"timestamp", "level", "logger", "message"} <= e.keys() for e in events)
    assert any(
        e["logger"] == "uvicorn.error" and "Application shutdown complete" in e["message"] for e in events
    )
    assert SIGNATURE not in log and KEY not in log
