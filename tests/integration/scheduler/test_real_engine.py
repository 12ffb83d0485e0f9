"""The RealEngine adapter: a stored request (local clips, as the CLI may send) -> a rendered mp4."""

from __future__ import annotations

from pathlib import Path

import pytest

from lipsync_api.engine.request import EngineConfig
from lipsync_api.errors import GenerationError
from lipsync_api.executors import BUILTIN_ENGINE_NAME, RealEngine
from tests.support.real_media import require_shared_media, trim_media

pytestmark = pytest.mark.media


def request_json(video: Path, audio: Path) -> dict[str, object]:
    """A CreateGenerationDto naming local files."""
    return {
        "model": "lipsync-2",
        "input": [{"type": "video", "url": str(video)}, {"type": "audio", "url": str(audio)}],
    }


def test_real_engine_renders_a_short_clip(tmp_path: Path) -> None:
    media = require_shared_media()
    video = trim_media(media / "vrt_face3.mp4", tmp_path / "face3.mp4", 1.0)
    audio = trim_media(media / "sadtalker_RD_Radio31_000_en.wav", tmp_path / "speech.m4a", 1.0)
    engine = RealEngine(EngineConfig(cache_dir=tmp_path / "cache"), allow_local_files=True)
    result = engine.run("g1", request_json(video, audio), tmp_path / "work")
    assert result.output_path.is_file() and result.output_path.stat().st_size > 0
    assert result.duration > 0.5 and result.engine_name == BUILTIN_ENGINE_NAME


def test_real_engine_refuses_local_files_unless_allowed(tmp_path: Path) -> None:
    engine = RealEngine(EngineConfig(cache_dir=None))
    with pytest.raises(GenerationError) as raised:
        engine.run("g1", request_json(tmp_path / "v.mp4", tmp_path / "a.wav"), tmp_path / "work")
    assert raised.value.error_code == "generation_pipeline_failed"
