"""A validated ``CreateGeneration`` -> the engine's ``GenerationRequest``."""

from __future__ import annotations

from collections.abc import Sequence

from lipsync_api.api.schemas import ActiveSpeakerDetection, AudioInput, CreateGeneration, Segment, VideoInput
from lipsync_api.engine import request as engine
from lipsync_api.errors import InvalidRequestError

DEFAULT_TEMPERATURE = 0.5


def to_engine_request(
    model: CreateGeneration, *, allow_local_files: bool = False
) -> engine.GenerationRequest:
    """The engine's record of a request that ``parse_generation`` accepted."""
    options = model.options
    sync_mode = options.sync_mode if options and options.sync_mode else engine.SyncMode.CUT_OFF
    temperature = options.temperature if options and options.temperature is not None else DEFAULT_TEMPERATURE
    return engine.GenerationRequest(
        video=_source(_the_video(model)),
        audios=tuple(
            engine.AudioInput(source=_source(item), ref_id=item.ref_id)
            for item in model.input
            if isinstance(item, AudioInput)
        ),
        model=model.model,
        sync_mode=sync_mode,
        temperature=temperature,
        speaker=speaker_hint(options.active_speaker_detection) if options else None,
        segments=tuple(_segment_spec(segment) for segment in model.segments or ()),
        output_file_name=model.output_file_name,
        allow_local_files=allow_local_files,
    )


def _the_video(model: CreateGeneration) -> VideoInput:
    videos = [item for item in model.input if isinstance(item, VideoInput)]
    if len(videos) != 1:
        raise InvalidRequestError(f"needs exactly one video input, got {len(videos)}")
    return videos[0]


def _source(item: VideoInput | AudioInput) -> str:
    # parse_generation refuses both cases; this guards callers that skipped it.
    if item.url is None:
        raise InvalidRequestError(f"the {item.type} input has no url")
    return item.url


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
