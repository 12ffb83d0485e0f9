"""CLI tests: short real clips, a media host on 127.0.0.1 (with a gate that holds downloads), and the CLI.

Every command runs in-process through typer's CliRunner, with no LIPSYNC_* or SYNC_API_KEY variable
leaking in from the shell.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from lipsync_api.cli.main import app
from tests.support.real_media import require_shared_media, trim_media

CLIP_SECONDS = 1.0
runner = CliRunner()


def cli(*args: str | Path, env: dict[str, str] | None = None) -> Result:
    """Run ``lipsync-api ARGS`` in-process."""
    return runner.invoke(app, [str(a) for a in args], env=env)


def flat(result: Result) -> str:
    """Everything printed, with rich's line wrapping undone."""
    return " ".join(result.output.split())


def assert_exit(result: Result, code: int) -> None:
    """Exited with ``code`` through typer (no escaped exception, no traceback)."""
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    if code:
        assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output


@pytest.fixture(scope="module", autouse=True)
def _clean_environment() -> Iterator[None]:
    """No LIPSYNC_* setting or key leaks in from the shell (the test-only LIPSYNC_TEST_* ones stay)."""
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            upper = name.upper()
            setting = upper.startswith("LIPSYNC_") and not upper.startswith("LIPSYNC_TEST_")
            if setting or name == "SYNC_API_KEY":
                patch.delenv(name)
        yield


@dataclass(frozen=True)
class Clips:
    """A 1 s talking head and 1 s of speech, and a file that only pretends to be audio."""

    folder: Path
    face: Path
    speech: Path
    not_audio: Path


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Clips:
    media = require_shared_media()
    folder = tmp_path_factory.mktemp("cli-clips")
    face = trim_media(media / "vrt_face3.mp4", folder / "face.mp4", CLIP_SECONDS)
    speech = trim_media(media / "sadtalker_RD_Radio31_000_en.wav", folder / "speech.m4a", CLIP_SECONDS)
    not_audio = folder / "notes.m4a"
    not_audio.write_text("this is text, not audio\n")
    return Clips(folder, face, speech, not_audio)


@dataclass
class MediaHost:
    """Serves the clips at ``/<name>``; ``/gate/<name>`` waits for ``gate`` first. 404 for the rest."""

    base: str
    folder: Path
    gate: threading.Event = field(default_factory=threading.Event)
    held: int = 0  # requests that reached the gate

    def url(self, name: str) -> str:
        return f"{self.base}/{name}"


@pytest.fixture(scope="session")
def media_host(clips: Clips) -> Iterator[MediaHost]:
    host = MediaHost("", clips.folder)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            name = self.path.lstrip("/")
            if name.startswith("gate/"):
                host.held += 1
                host.gate.wait(timeout=120)
                name = name.removeprefix("gate/")
            path = host.folder / name
            if "/" in name or not path.is_file():
                self._send(404, b"not found")
                return
            self._send(200, path.read_bytes())

        def _send(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request: object, client_address: object) -> None:
            pass  # a client that hangs up early (the engine stops reading once it knows enough)

    server = Server(("127.0.0.1", 0), Handler)
    host.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield host
    finally:
        host.gate.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def copy_clips(clips: Clips, folder: Path) -> None:
    """The clips next to a batch file, for relative paths."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in (clips.face, clips.speech, clips.not_audio):
        shutil.copy(path, folder / path.name)
