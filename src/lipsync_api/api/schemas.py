"""The wire schema of ``POST /v2/generate`` and of each batch line's ``payload``: sync's CreateGenerationDto.

Names and casing follow the official SDK (syncsdk 0.3.0, ``sync/common/types``): camelCase at the top
level and in inputs and segments, snake_case inside ``options``. Unknown keys are accepted (the SDK's
models allow extras) and dropped. Scalars are strict (no ``"0.5"`` for a number, no ``1`` for a
boolean): the body is JSON, so a value of the wrong JSON type is a client bug worth naming. Rules that
relate several fields (one video, refIds, segment ranges) live in ``generation_request``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo
from pydantic_core import PydanticCustomError

from lipsync_api.engine.request import OUTPUT_FILE_NAME, SyncMode

# Validation-context key: only a trusted caller (the CLI) may name local files instead of URLs.
ALLOW_LOCAL_FILES = "allow_local_files"
INPUT_TYPES = ("video", "audio", "text")


def is_http_url(value: str) -> bool:
    """Whether ``value`` is an absolute http(s) URL with a host (and nothing a fetcher would trip on)."""
    if any(ch <= " " or ch == "\x7f" for ch in value):
        return False
    try:
        parts = urlsplit(value)
        _ = parts.port  # a malformed port raises here rather than at download time
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)


def _is_local_file(value: str) -> bool:
    """A path or a ``file://`` URL, which the engine reads only when local files are allowed."""
    try:
        return bool(value) and urlsplit(value).scheme in ("", "file")
    except ValueError:  # e.g. an unclosed "[" in the host part
        return False


def _media_url(value: str, info: ValidationInfo) -> str:
    local_ok = bool(info.context and info.context.get(ALLOW_LOCAL_FILES))
    if is_http_url(value) or (local_ok and _is_local_file(value)):
        return value
    raise PydanticCustomError("url_scheme", "must be an http(s) URL")


def _webhook_url(value: str) -> str:
    if is_http_url(value):
        return value
    raise PydanticCustomError("url_scheme", "must be an http(s) URL")


def _output_file_name(value: str) -> str:
    if OUTPUT_FILE_NAME.fullmatch(value):
        return value
    raise PydanticCustomError(
        "output_file_name", "must be 1 to 255 letters, digits, '_' or '-' (.mp4 is appended)"
    )


def _ordered_box(box: list[float]) -> list[float]:
    x1, y1, x2, y2 = box
    if x1 < x2 and y1 < y2:
        return box
    raise PydanticCustomError("box_order", "must be [x1, y1, x2, y2] with x1 < x2 and y1 < y2")


MediaUrl = Annotated[str, AfterValidator(_media_url)]
WebhookUrl = Annotated[str, AfterValidator(_webhook_url)]
OutputFileName = Annotated[str, AfterValidator(_output_file_name)]
RefId = Annotated[str, Field(min_length=1)]
Finite = Annotated[float, Field(allow_inf_nan=False)]
Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Point = Annotated[list[Finite], Field(min_length=2, max_length=2)]
Box = Annotated[list[Finite], Field(min_length=4, max_length=4), AfterValidator(_ordered_box)]


class WireModel(BaseModel):
    """Base of the wire models: strict JSON types, unknown keys dropped, immutable."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


class VideoInput(WireModel):
    """The video to lip-sync: ``url`` (``assetId`` is part of the schema but refused by the rules)."""

    type: Literal["video"]
    url: MediaUrl | None = None
    asset_id: str | None = Field(default=None, alias="assetId")
    # Deprecated in the SDK in favour of top-level segments; kept loose so the rules can refuse them.
    segments_secs: Any = None
    segments_frames: Any = None


class AudioInput(WireModel):
    """A recorded speech track; ``refId`` links it to segments."""

    type: Literal["audio"]
    url: MediaUrl | None = None
    asset_id: str | None = Field(default=None, alias="assetId")
    ref_id: RefId | None = Field(default=None, alias="refId")


class TextInput(WireModel):
    """A text-to-speech input (tts.py); ``provider`` is kept loose since TTS is refused for now."""

    type: Literal["text"]
    provider: dict[str, Any] | None = None
    ref_id: RefId | None = Field(default=None, alias="refId")


Input = Annotated[VideoInput | AudioInput | TextInput, Field(discriminator="type")]


class ActiveSpeakerDetection(WireModel):
    """Which face to animate: a point on a frame, or one box (or null) per frame."""

    auto_detect: bool | None = None
    frame_number: int | None = Field(default=None, ge=0)
    # The SDK types these as ints; any finite number is accepted since they are pixel positions.
    coordinates: Point | None = None
    bounding_boxes: list[Box | None] | None = None


class GenerationOptions(WireModel):
    """``options``: snake_case keys, as the SDK sends them."""

    # Lax for this one field only: strict enums would demand a SyncMode object, not its JSON string.
    sync_mode: SyncMode | None = Field(default=None, strict=False)
    temperature: float | None = Field(default=None, ge=0, le=1, allow_inf_nan=False)
    active_speaker_detection: ActiveSpeakerDetection | None = None
    occlusion_detection_enabled: bool | None = None
    # Accepted and ignored: only react-1 uses them ("options a model does not support are ignored").
    model_mode: str | None = None
    prompt: str | None = None


class SegmentAudio(WireModel):
    """A segment's audio: the refId of an audio input, optionally cropped to [startTime, endTime)."""

    ref_id: RefId = Field(alias="refId")
    start_time: Seconds | None = Field(default=None, alias="startTime")
    end_time: Seconds | None = Field(default=None, alias="endTime")


class Segment(WireModel):
    """A video time range [startTime, endTime) in seconds that gets one audio input."""

    start_time: Seconds = Field(alias="startTime")
    end_time: Finite = Field(alias="endTime")
    audio_input: SegmentAudio = Field(alias="audioInput")


class CreateGeneration(WireModel):
    """The body of ``POST /v2/generate`` (sync's CreateGenerationDto)."""

    # Whether the model is served is the service's decision, not the schema's.
    model: str = Field(min_length=1)
    input: list[Input]
    options: GenerationOptions | None = None
    segments: list[Segment] | None = None
    webhook_url: WebhookUrl | None = Field(default=None, alias="webhookUrl")
    output_file_name: OutputFileName | None = Field(default=None, alias="outputFileName")
