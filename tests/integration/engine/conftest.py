"""Session fixtures for the engine's integration tests: short real-clip trims, speech, a cache, HTTP."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from lipsync_api.engine.analysis import AnalysisCache
from tests.support import media_factory as mf
from tests.support.real_media import require_shared_media, trim_media

CLIP_SECONDS = 2.0  # long enough for a sync measurement, short enough to keep the suite fast
SPEECH_SECONDS = 2.5  # longer than the clips
SHORT_SPEECH_SECONDS = 1.3  # shorter than the clips


# --- real clips --------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def shared_media() -> Path:
    return require_shared_media()


@pytest.fixture(scope="session")
def clips_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("clips")


@pytest.fixture(scope="session")
def face3_clip(shared_media: Path, clips_dir: Path) -> Path:
    """vrt_face3: frontal speaker, 25 fps, 590x590, first 2 s."""
    return trim_media(shared_media / "vrt_face3.mp4", clips_dir / "face3.mp4", CLIP_SECONDS)


@pytest.fixture(scope="session")
def face1_vfr_clip(shared_media: Path, clips_dir: Path) -> Path:
    """vrt_face1: variable frame rate (nominal 30), first 2 s, its irregular timestamps kept."""
    return trim_media(shared_media / "vrt_face1.mp4", clips_dir / "face1_vfr.mp4", CLIP_SECONDS)


@pytest.fixture(scope="session")
def small_face_clip(shared_media: Path, clips_dir: Path) -> Path:
    """latentsync_demo1_video: small face in a portrait frame, halved to 540x960, first 2 s."""
    source = shared_media / "latentsync_demo1_video.mp4"
    return trim_media(source, clips_dir / "small_face.mp4", CLIP_SECONDS, max_side=960)


@pytest.fixture(scope="session")
def speech_en(shared_media: Path, clips_dir: Path) -> Path:
    """English male speech, 2.5 s (longer than the clips), AAC."""
    source = shared_media / "sadtalker_RD_Radio31_000_en.wav"
    return trim_media(source, clips_dir / "speech_en.m4a", SPEECH_SECONDS)


@pytest.fixture(scope="session")
def speech_en_short(shared_media: Path, clips_dir: Path) -> Path:
    """English male speech, 1.3 s (shorter than the clips), AAC."""
    source = shared_media / "sadtalker_RD_Radio31_000_en.wav"
    return trim_media(source, clips_dir / "speech_en_short.m4a", SHORT_SPEECH_SECONDS)


# --- synthetic media ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def espeak_speech(clips_dir: Path) -> Path:
    """espeak-ng speech, about 2.6 s (skips when espeak-ng is missing)."""
    return mf.speech_wav(clips_dir / "espeak.wav")


@pytest.fixture(scope="session")
def tone_wav(clips_dir: Path) -> Path:
    """A 1 s tone: audio that is valid but not speech."""
    return mf.write_audio(clips_dir / "tone.wav", mf.tone(1.0, 16000), 16000)


@pytest.fixture(scope="session")
def analysis_cache(tmp_path_factory: pytest.TempPathFactory) -> AnalysisCache:
    """One cache for the session, so each clip is analysed once across tests."""
    return AnalysisCache(tmp_path_factory.mktemp("analysis-cache"), 2 * 1024**3)


# --- a local HTTP server -----------------------------------------------------------------------------


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="session")
def served_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("served")


@pytest.fixture(scope="session")
def http_base(served_dir: Path) -> Iterator[str]:
    """``http://127.0.0.1:<port>`` serving ``served_dir``'s files (404 for anything else)."""
    handler = functools.partial(_QuietHandler, directory=str(served_dir))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
