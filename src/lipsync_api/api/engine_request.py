"""A validated ``CreateGeneration`` -> the engine's ``GenerationRequest``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from lipsync_api.api.schemas import ActiveSpeakerDetection, AudioInput, CreateGeneration, Segment, VideoInput
from lipsync_api.engine import request as engine
from lipsync_api.errors import InvalidRequestError

DEFAULT_TEMPERATURE = 0.5
# (asset id, input type) -> the local file of an uploaded asset the request was accepted with.
AssetPath = Callable[[str, str], Path]


def to_engine_request(
    model: CreateGeneration, *, allow_local_files: bool = False, asset_path: AssetPath | None = None
) -> engine.GenerationRequest:
    """The engine's record of a request that ``parse_generation`` accepted.

    ``asset_path`` turns each ``assetId`` into its stored file; only those files become readable local
    paths (``asset_files``), whatever ``allow_local_files`` says about the rest.
    """
    options = model.options
    video, video_is_asset = _source(_the_video(model), asset_path)
    audios = [(item, *_source(item, asset_path)) for item in model.input if isinstance(item, AudioInput)]
    resolved = [(video, video_is_asset), *((source, is_asset) for _, source, is_asset in audios)]
    asset_files = frozenset(source for source, is_asset in resolved if is_asset)
    temperature = options.temperature if options and options.temperature is not None else DEFAULT_TEMPERATURE
    return engine.GenerationRequest(
        video=video,
        audios=tuple(engine.AudioInput(source=source, ref_id=item.ref_id) for item, source, _ in audios),
        model=model.model,
        sync_mode=sync_mode_of(model),
        temperature=temperature,
        speaker=speaker_hint(options.active_speaker_detection) if options else None,
        segments=segment_specs(model),
        output_file_name=model.output_file_name,
        allow_local_files=allow_local_files,
        asset_files=asset_files,
    )


def sync_mode_of(model: CreateGeneration) -> engine.SyncMode:
    """The request's ``sync_mode`` (``cut_off`` when absent)."""
    options = model.options
    return options.sync_mode if options and options.sync_mode else engine.SyncMode.CUT_OFF


def segment_specs(model: CreateGeneration) -> tuple[engine.SegmentSpec, ...]:
    """The request's segments as the engine's planner takes them."""
    return tuple(_segment_spec(segment) for segment in model.segments or ())


def _the_video(model: CreateGeneration) -> VideoInput:
    videos = [item for item in model.input if isinstance(item, VideoInput)]
    if len(videos) != 1:
        raise InvalidRequestError(f"needs exactly one video input, got {len(videos)}")
    return videos[0]


def _source(item: VideoInput | AudioInput, asset_path: AssetPath | None) -> tuple[str, bool]:
    """Where the engine reads the input, and whether that is an uploaded asset's file."""
    if item.asset_id is not None and asset_path is not None:
        return str(asset_path(item.asset_id, item.type)), True
    # parse_generation refuses both cases; this guards callers that skipped it.
    if item.url is None:
        raise InvalidRequestError(f"the {item.type} input has no url")
    return item.url, False


def speaker_hint(detection: ActiveSpeakerDetection | None) -> engine.SpeakerHint | None:
    """The face hint from ``active_speaker_detection``; None when it names no point or boxes."""
    if detection is None or (detection.coordinates is None and not detection.bounding_boxes):
        return None
    point = detection.coordinates
    return engine.SpeakerHint(
        frame_number=detection.frame_number,
        coordinates=(point[0], point[1]) if point else None,
        bounding_boxes=_boxes(detection.bounding_boxes) if detection.bounding_boxes else None,
    )


def _boxes(boxes: Sequence[list[float] | None]) -> tuple[tuple[float, float, float, float] | None, ...]:
    return tuple(None if box is None else (box[0], box[1], box[2], box[3]) for box in boxes)


def _segment_spec(segment: Segment) -> engine.SegmentSpec:
    audio = segment.audio_input
    return engine.SegmentSpec(
        start=segment.start_time,
        end=segment.end_time,
        ref_id=audio.ref_id,
        audio_start=audio.start_time,
        audio_end=audio.end_time,
    )
