"""render() turns unexpected failures into generation_pipeline_failed and lets its own errors through."""

from __future__ import annotations

from pathlib import Path

import pytest

from lipsync_api.engine import pipeline
from lipsync_api.engine.request import AudioInput, EngineConfig, GenerationRequest
from lipsync_api.errors import ErrorCode, GenerationError, InvalidRequestError

REQUEST = GenerationRequest(video="v.mp4", audios=(AudioInput("a.wav"),), allow_local_files=True)


def _raising(error: Exception) -> object:
    def fail(*args: object, **kwargs: object) -> None:
        raise error

    return fail


def test_unexpected_error_becomes_pipeline_failed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline, "_render", _raising(RuntimeError("encoder exploded")))
    with pytest.raises(GenerationError) as caught:
        pipeline.render(REQUEST, tmp_path, EngineConfig())
    assert caught.value.error_code == ErrorCode.PIPELINE_FAILED.value
    assert "RuntimeError: encoder exploded" in caught.value.message
    assert isinstance(caught.value.__cause__, RuntimeError)


def test_generation_errors_pass_through(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    error = GenerationError(ErrorCode.NO_FACE_DETECTED, "no face", rejected=True)
    monkeypatch.setattr(pipeline, "_render", _raising(error))
    with pytest.raises(GenerationError) as caught:
        pipeline.render(REQUEST, tmp_path, EngineConfig())
    assert caught.value is error


def test_bad_output_file_name_is_a_request_error(tmp_path: Path) -> None:
    request = GenerationRequest(video="v.mp4", audios=(AudioInput("a.wav"),), output_file_name="../x")
    with pytest.raises(InvalidRequestError, match="outputFileName"):
        pipeline.render(request, tmp_path, EngineConfig())
