"""A real ``python -m lipsync_api serve`` for tests: free loopback port, own data folder, stopped by PID."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True)
class RunningServer:
    """Where the server answers, its process and its combined stdout/stderr log."""

    base: str
    process: subprocess.Popen[bytes]
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def running_server(
    root: Path,
    api_key: str,
    env: Mapping[str, str] | None = None,
    ready_timeout: float = 90.0,
    log_name: str = "server.log",
) -> Iterator[RunningServer]:
    """Start the server (SQLite in ``root``/data), wait for /readyz, and stop it by its PID afterwards.

    Starting it again on the same ``root`` reuses the data folder (a restart); give each start its own
    ``log_name`` to keep every log. A test may SIGKILL ``process`` itself; stopping then does nothing.
    """
    port = free_port()
    environment = os.environ | {
        "LIPSYNC_DATA_DIR": str(root / "data"),
        "LIPSYNC_BOOTSTRAP_API_KEY": api_key,
        "LIPSYNC_HOST": "127.0.0.1",
        "LIPSYNC_PORT": str(port),
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    environment.pop("LIPSYNC_DATABASE_URL", None)
    log_path = root / log_name
    with log_path.open("wb") as log:
        command = [sys.executable, "-m", "lipsync_api", "serve"]
        process = subprocess.Popen(command, env=environment, stdout=log, stderr=subprocess.STDOUT)
        server = RunningServer(f"http://127.0.0.1:{port}", process, log_path)
        try:
            _wait_ready(server, ready_timeout)
            yield server
        finally:
            _stop(process)


def _wait_ready(server: RunningServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited with {server.process.returncode}:\n{server.log_text()}")
        try:
            if httpx.get(f"{server.base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"server not ready after {timeout:g} s:\n{server.log_text()}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it has not exited within 30 s (always by PID, never by name)."""
    if process.poll() is not None:
        return
    os.kill(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
