"""What the engine is asked to do, and the limits it works within (plain, frozen records)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from lipsync_api.errors import InvalidRequestError

OUTPUT_FILE_NAME = re.compile(r"[A-Za-z0-9_-]{1,255}")


class SyncMode(StrEnum):
    """How a duration mismatch between video and audio is resolved (see API.md)."""

    BOUNCE = "bounce"
    LOOP = "loop"
    CUT_OFF = "cut_off"
    SILENCE = "silence"
    REMAP = "remap"


@dataclass(frozen=True)
class AudioInput:
    """One speech track: a URL (or a local path when allowed) and its optional refId."""

    source: str
    ref_id: str | None = None


@dataclass(frozen=True)
class SegmentSpec:
    """A video time range [start, end) that gets the audio ``ref_id``, optionally cropped."""

    start: float
    end: float
    ref_id: str
    audio_start: float | None = None
    audio_end: float | None = None


@dataclass(frozen=True)
class SpeakerHint:
    """Which face to animate when several are visible (``options.active_speaker_detection``)."""

    frame_number: int | None = None
    coordinates: tuple[float, float] | None = None
    bounding_boxes: tuple[tuple[float, float, float, float] | None, ...] | None = None


@dataclass(frozen=True)
class GenerationRequest:
    """A validated generation: one video, its speech track(s), options and output name."""

    video: str
    audios: tuple[AudioInput, ...]
    model: str = "lipsync-2"
    sync_mode: SyncMode = SyncMode.CUT_OFF
    temperature: float = 0.5
    speaker: SpeakerHint | None = None
    segments: tuple[SegmentSpec, ...] = ()
    output_file_name: str | None = None
    allow_local_files: bool = False
    # Local files the service stored itself (uploaded assets): readable even when local paths are not.
    asset_files: frozenset[str] = frozenset()

    def output_name(self, default: str = "output") -> str:
        """The output file's name: ``outputFileName`` (or ``default``) with ``.mp4`` appended."""
        stem = self.output_file_name or default
        if not OUTPUT_FILE_NAME.fullmatch(stem):
            raise InvalidRequestError(f"outputFileName {stem!r} must match [A-Za-z0-9_-]{{1,255}}")
        return f"{stem}.mp4"


@dataclass(frozen=True)
class FetchLimits:
    """Bounds on downloading an input URL."""

    max_bytes: int = 512 * 1024 * 1024
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    max_redirects: int = 5
    allow_private_addresses: bool = False


@dataclass(frozen=True)
class EngineConfig:
    """Everything the engine needs to know from the service's settings."""

    fetch: FetchLimits = field(default_factory=FetchLimits)
    max_video_seconds: float = 600.0
    max_audio_seconds: float = 600.0
    max_width: int = 4096
    max_height: int = 2160
    max_fps: int = 60
    encode_preset: str = "veryfast"
    encode_crf: int = 18
    cache_dir: Path | None = None
    cache_max_bytes: int = 2 * 1024**3
