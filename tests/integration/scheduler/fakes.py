"""A test-only engine: writes a tiny file, or fails as its audio URL says (reject, transient, crash, gate)."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path
from typing import Any

from lipsync_api.errors import ErrorCode, GenerationError
from lipsync_api.executors import EngineResult

FAKE_ENGINE_NAME = "fake-engine"


class FakeEngine:
    """Scripted by the audio URL (``reject``, ``transient`` once, ``always-transient``, ``crash``, ``gate``).

    ``gate`` lines wait for ``self.gate`` before writing, so a test can act while one is running.
    """

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.gate = threading.Event()
        self._lock = threading.Lock()

    def run(self, generation_id: str, request_json: dict[str, Any], work_dir: Path) -> EngineResult:
        """Write ``out.mp4`` into ``work_dir`` unless the script says to fail."""
        with self._lock:
            self.calls[generation_id] += 1
            call = self.calls[generation_id]
        audio = str(request_json["input"][1]["url"])
        if "gate" in audio:
            self.gate.wait(timeout=10)
        _fail_if_scripted(audio, call)
        work_dir.mkdir(parents=True, exist_ok=True)
        output = work_dir / "out.mp4"
        output.write_bytes(b"fake mp4 " + generation_id.encode())
        return EngineResult(output, 1.5, FAKE_ENGINE_NAME)


def _fail_if_scripted(audio: str, call: int) -> None:
    if "reject" in audio:
        raise GenerationError(ErrorCode.NO_FACE_DETECTED, "no face in the video", rejected=True)
    if "always-transient" in audio or ("transient" in audio and call == 1):
        raise GenerationError(ErrorCode.MEDIA_FETCH_FAILED, "media host answered 503", transient=True)
    if "crash" in audio:
        raise RuntimeError("engine exploded")
