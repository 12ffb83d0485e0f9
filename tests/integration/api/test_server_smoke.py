"""The real server: ``python -m lipsync_api serve`` on a free loopback port, fresh data folder."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

KEY = "lsk_smoke_test_key_0123456789"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """A server process bound to 127.0.0.1, stopped by its PID."""
    port = free_port()
    env = os.environ | {
        "LIPSYNC_DATA_DIR": str(tmp_path / "data"),
        "LIPSYNC_BOOTSTRAP_API_KEY": KEY,
        "LIPSYNC_HOST": "127.0.0.1",
        "LIPSYNC_PORT": str(port),
    }
    env.pop("LIPSYNC_DATABASE_URL", None)
    log = (tmp_path / "server.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "lipsync_api", "serve"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            pytest.fail("server did not become ready: " + (tmp_path / "server.log").read_text())
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def test_server_answers_with_the_bootstrap_key(server: str) -> None:
    assert httpx.get(f"{server}/v2/models", timeout=5).status_code == 401
    response = httpx.get(f"{server}/v2/models", headers={"x-api-key": KEY}, timeout=5)
    assert response.status_code == 200
    assert "lipsync-2" in [model["id"] for model in response.json()]
