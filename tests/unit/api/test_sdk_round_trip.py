"""What the official client (syncsdk 0.3.0) sends for a generate call parses, unchanged, into our schema."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from lipsync_api.api.engine_request import to_engine_request
from lipsync_api.api.generation_request import parse_generation
from lipsync_api.engine.request import SegmentSpec, SpeakerHint, SyncMode

sync = pytest.importorskip("sync", reason="the official client (syncsdk, in the dev extra) is not installed")
from sync.common.types.active_speaker import ActiveSpeaker  # noqa: E402
from sync.common.types.audio import Audio  # noqa: E402
from sync.common.types.generation_options import GenerationOptions  # noqa: E402
from sync.common.types.generation_segment import GenerationSegment  # noqa: E402
from sync.common.types.segment_audio_input import SegmentAudioInput  # noqa: E402
from sync.common.types.video import Video  # noqa: E402


def body_sent_by_the_sdk(**create: Any) -> Any:
    """The JSON body the SDK's own ``generations.create`` puts on the wire (captured, never sent)."""
    bodies: list[Any] = []

    def capture(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(400, json={"statusCode": 400, "message": "captured"})

    client = sync.Sync(
        base_url="http://sdk.test",
        api_key="k",
        httpx_client=httpx.Client(transport=httpx.MockTransport(capture)),
    )
    with pytest.raises(sync.BadRequestError):
        client.generations.create(**create)
    return bodies[0]


def test_a_full_request_built_with_the_sdks_types_parses_and_converts() -> None:
    body = body_sent_by_the_sdk(
        model="lipsync-2",
        input=[
            Video(url="https://media.example.com/v.mp4"),
            Audio(url="https://media.example.com/a.wav", ref_id="a1"),
            Audio(url="https://media.example.com/b.wav", ref_id="b1"),
        ],
        options=GenerationOptions(
            sync_mode="remap",
            temperature=0.7,
            active_speaker_detection=ActiveSpeaker(
                auto_detect=False,
                frame_number=12,
                coordinates=[640, 360],
                bounding_boxes=[[1, 2, 30, 40], None],
            ),
            occlusion_detection_enabled=True,
        ),
        segments=[
            GenerationSegment(start_time=0, end_time=2.5, audio_input=SegmentAudioInput(ref_id="a1")),
            GenerationSegment(
                start_time=2.5,
                end_time=5,
                audio_input=SegmentAudioInput(ref_id="b1", start_time=1, end_time=3.5),
            ),
        ],
        webhook_url="https://hooks.example.com/g",
        output_file_name="sdk_clip-1",
    )
    assert body["input"][1]["refId"] == "a1" and "audioInput" in body["segments"][0]  # the SDK's casing
    model, problems = parse_generation(body)
    assert problems == [] and model is not None
    request = to_engine_request(model)
    assert request.sync_mode is SyncMode.REMAP and request.temperature == 0.7
    assert request.speaker == SpeakerHint(
        frame_number=12, coordinates=(640.0, 360.0), bounding_boxes=((1.0, 2.0, 30.0, 40.0), None)
    )
    assert request.segments[1] == SegmentSpec(start=2.5, end=5, ref_id="b1", audio_start=1, audio_end=3.5)
    assert request.output_name() == "sdk_clip-1.mp4"


def test_a_minimal_request_with_explicit_nones_parses() -> None:
    body = body_sent_by_the_sdk(
        model="lipsync-2",
        input=[Video(url="https://media.example.com/v.mp4"), Audio(url="https://media.example.com/a.wav")],
        options=None,
        webhook_url=None,
    )
    model, problems = parse_generation(body)
    assert problems == [] and model is not None


def test_an_sdk_asset_id_is_accepted_by_the_rules() -> None:
    body = body_sent_by_the_sdk(
        model="lipsync-2", input=[Video(asset_id="asset-1"), Audio(url="https://media.example.com/a.wav")]
    )
    assert body["input"][0] == {"type": "video", "assetId": "asset-1"}
    model, problems = parse_generation(body)
    assert problems == [] and model is not None and model.input[0].asset_id == "asset-1"
