"""A validated request -> the engine's GenerationRequest."""

from __future__ import annotations

from typing import Any

import pytest

from lipsync_api.api.engine_request import speaker_hint, to_engine_request
from lipsync_api.api.generation_request import parse_generation
from lipsync_api.api.schemas import ActiveSpeakerDetection, CreateGeneration
from lipsync_api.engine.request import AudioInput, GenerationRequest, SegmentSpec, SpeakerHint, SyncMode
from lipsync_api.errors import InvalidRequestError
from tests.unit.api.factories import API_MD_EXAMPLE, AUDIO_URL, VIDEO_URL, segmented_payload, simple_payload


def parsed(payload: object, **kwargs: Any) -> CreateGeneration:
    """The model of a payload that must be valid."""
    model, problems = parse_generation(payload, **kwargs)
    assert problems == [] and model is not None
    return model


def test_the_api_md_example_converts() -> None:
    assert to_engine_request(parsed(API_MD_EXAMPLE)) == GenerationRequest(
        video="https://...",
        audios=(AudioInput(source="https://...", ref_id="a1"),),
        model="lipsync-2",
        sync_mode=SyncMode.CUT_OFF,
        temperature=0.5,
        speaker=None,
        segments=(SegmentSpec(start=0.0, end=4.2, ref_id="a1", audio_start=0.0, audio_end=4.2),),
        output_file_name="clip_01",
    )


def test_defaults_without_options() -> None:
    request = to_engine_request(parsed(simple_payload()))
    assert request == GenerationRequest(video=VIDEO_URL, audios=(AudioInput(source=AUDIO_URL),))
    assert request.sync_mode is SyncMode.CUT_OFF and request.temperature == 0.5


def test_every_option_and_segment_converts() -> None:
    request = to_engine_request(parsed(segmented_payload()))
    assert request.audios == (
        AudioInput(source=AUDIO_URL, ref_id="a1"),
        AudioInput(source="https://media.example.com/b.mp3", ref_id="b2"),
    )
    assert (request.sync_mode, request.temperature) == (SyncMode.SILENCE, 0.8)
    assert request.speaker == SpeakerHint(
        frame_number=3, coordinates=(320.0, 180.0), bounding_boxes=((10.0, 20.0, 110.0, 140.0), None)
    )
    assert request.segments == (
        SegmentSpec(start=0, end=2.5, ref_id="a1"),
        SegmentSpec(start=2.5, end=4, ref_id="b2", audio_start=1, audio_end=2.5),
    )
    assert request.output_name() == "clip-01_b.mp4"


def test_temperature_zero_is_kept() -> None:
    assert to_engine_request(parsed(simple_payload(options={"temperature": 0}))).temperature == 0.0


@pytest.mark.parametrize(
    ("detection", "hint"),
    [
        ({}, None),
        ({"auto_detect": True}, None),
        ({"frame_number": 4}, None),
        ({"bounding_boxes": []}, None),
        ({"coordinates": [5, 6.5]}, SpeakerHint(coordinates=(5.0, 6.5))),
        ({"frame_number": 2, "coordinates": [5, 6]}, SpeakerHint(frame_number=2, coordinates=(5.0, 6.0))),
        ({"bounding_boxes": [None, [0, 0, 9, 9]]}, SpeakerHint(bounding_boxes=(None, (0.0, 0.0, 9.0, 9.0)))),
    ],
)
def test_speaker_hint(detection: dict[str, Any], hint: SpeakerHint | None) -> None:
    assert speaker_hint(ActiveSpeakerDetection.model_validate(detection)) == hint


def test_local_files_are_passed_on_when_allowed() -> None:
    payload = simple_payload(
        input=[{"type": "video", "url": "/data/v.mp4"}, {"type": "audio", "url": "a.wav"}]
    )
    request = to_engine_request(parsed(payload, allow_local_files=True), allow_local_files=True)
    assert (request.video, request.audios[0].source, request.allow_local_files) == (
        "/data/v.mp4",
        "a.wav",
        True,
    )


def test_an_unvalidated_model_without_a_url_is_a_request_error() -> None:
    payload = simple_payload(input=[{"type": "video", "assetId": "x"}, {"type": "audio", "url": AUDIO_URL}])
    model = CreateGeneration.model_validate(payload)  # the schema alone admits assetId; the rules do not
    with pytest.raises(InvalidRequestError, match="video input has no url"):
        to_engine_request(model)
