"""Command-line options -> a GenerationRequest."""

from __future__ import annotations

import json
from pathlib import Path

from lipsync_api.engine.request import AudioInput, GenerationRequest, SegmentSpec, SpeakerHint, SyncMode


def parse_audio(value: str) -> AudioInput:
    """``PATH_OR_URL`` or ``REFID=PATH_OR_URL`` (refIds are needed with --segments)."""
    ref, sep, source = value.partition("=")
    if sep and ref and "/" not in ref and ":" not in ref:
        return AudioInput(source=source, ref_id=ref)
    return AudioInput(source=value)


def load_segments(path: Path) -> tuple[SegmentSpec, ...]:
    """Segments from a JSON file in the API's shape: [{"startTime", "endTime", "audioInput": {...}}]."""
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"--segments {path}: {error}") from None
    if not isinstance(raw, list):
        raise ValueError(f"--segments {path}: expected a JSON list of segments")
    return tuple(_segment(index, item) for index, item in enumerate(raw))


def _segment(index: int, item: object) -> SegmentSpec:
    try:
        assert isinstance(item, dict)
        audio = item["audioInput"]
        return SegmentSpec(
            start=float(item["startTime"]),
            end=float(item["endTime"]),
            ref_id=str(audio["refId"]),
            audio_start=None if audio.get("startTime") is None else float(audio["startTime"]),
            audio_end=None if audio.get("endTime") is None else float(audio["endTime"]),
        )
    except (AssertionError, KeyError, TypeError, ValueError):
        raise ValueError(
            f"segment {index}: expected {{'startTime': s, 'endTime': s, 'audioInput': {{'refId': id}}}}"
        ) from None


def speaker_hint(point: str | None, frame: int | None) -> SpeakerHint | None:
    """``--speaker-point X,Y`` (with ``--speaker-frame N``) -> the face to animate."""
    if point is None:
        return None
    try:
        x, y = (float(v) for v in point.split(","))
    except ValueError:
        raise ValueError("--speaker-point must be X,Y in pixels") from None
    return SpeakerHint(frame_number=frame or 0, coordinates=(x, y))


def build_request(
    video: str,
    audios: list[str],
    sync_mode: SyncMode,
    temperature: float,
    segments: Path | None,
    speaker_point: str | None,
    speaker_frame: int | None,
) -> GenerationRequest:
    """Validate the options into a request that may read local files."""
    if not 0.0 <= temperature <= 1.0:
        raise ValueError("--temperature must be between 0 and 1")
    parsed = tuple(parse_audio(a) for a in audios)
    spans = load_segments(segments) if segments else ()
    if not spans and len(parsed) != 1:
        raise ValueError("give exactly one --audio (several only together with --segments)")
    if spans and any(a.ref_id is None for a in parsed):
        raise ValueError("with --segments every --audio needs a refId: --audio REFID=PATH")
    return GenerationRequest(
        video=video,
        audios=parsed,
        sync_mode=sync_mode,
        temperature=temperature,
        segments=spans,
        speaker=speaker_hint(speaker_point, speaker_frame),
        allow_local_files=True,
    )
