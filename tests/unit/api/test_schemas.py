"""The generate request's schema and rules: what parses, and every problem named with its field path."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from lipsync_api.api.generation_request import FieldProblem, field_path, parse_generation
from lipsync_api.api.schemas import CreateGeneration, is_http_url
from tests.unit.api.factories import (
    API_MD_EXAMPLE,
    AUDIO_URL,
    VIDEO_URL,
    segmented_payload,
    simple_payload,
)

VIDEO = {"type": "video", "url": VIDEO_URL}
AUDIO = {"type": "audio", "url": AUDIO_URL}


def problems_of(payload: object, **kwargs: Any) -> list[tuple[str, str]]:
    """The (field, message) pairs found in ``payload``; asserts it was refused."""
    model, problems = parse_generation(payload, **kwargs)
    assert model is None and problems
    return [(p.field, p.message) for p in problems]


def accepted(payload: object, **kwargs: Any) -> CreateGeneration:
    """The model ``payload`` parses to; asserts it was accepted."""
    model, problems = parse_generation(payload, **kwargs)
    assert problems == [] and model is not None
    return model


def test_the_api_md_example_parses() -> None:
    model = accepted(API_MD_EXAMPLE)
    assert model.model == "lipsync-2"
    assert model.segments is not None and model.segments[0].audio_input.ref_id == "a1"
    assert model.output_file_name == "clip_01"


def test_a_payload_with_every_option_parses() -> None:
    model = accepted(segmented_payload())
    assert model.options is not None and model.options.sync_mode == "silence"
    assert model.webhook_url == "https://hooks.example.com/done"


# --- the body and the model -------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [None, [], "text", 3, True, [simple_payload()]])
def test_a_body_that_is_not_an_object_is_refused(body: object) -> None:
    assert problems_of(body) == [("", "the request body must be a JSON object")]


def test_model_is_required_and_a_non_empty_string() -> None:
    payload = simple_payload()
    del payload["model"]
    assert problems_of(payload) == [("model", "required")]
    assert problems_of(simple_payload(model="")) == [("model", "must not be empty")]
    assert problems_of(simple_payload(model=2)) == [("model", "must be a string")]


def test_an_unknown_model_name_is_left_to_the_service() -> None:
    assert accepted(simple_payload(model="lipsync-9-imaginary")).model == "lipsync-9-imaginary"


# --- inputs -----------------------------------------------------------------------------------------------


def test_input_is_a_required_array() -> None:
    payload = simple_payload()
    del payload["input"]
    assert problems_of(payload) == [("input", "required")]
    assert problems_of(simple_payload(input=VIDEO)) == [("input", "must be a JSON array")]


@pytest.mark.parametrize("count", [0, 2])
def test_exactly_one_video_input(count: int) -> None:
    payload = simple_payload(input=[VIDEO] * count + [AUDIO])
    assert problems_of(payload) == [("input", f"needs exactly one video input, got {count}")]


@pytest.mark.parametrize("count", [0, 2])
def test_without_segments_exactly_one_audio_input(count: int) -> None:
    payload = simple_payload(input=[VIDEO] + [AUDIO] * count)
    message = f"needs exactly one audio input, got {count} (several only together with segments)"
    assert problems_of(payload) == [("input", message)]


def test_an_input_type_must_be_known() -> None:
    payload = simple_payload(input=[VIDEO, {"url": AUDIO_URL}, {"type": "image", "url": AUDIO_URL}])
    assert problems_of(payload) == [
        ("input[1].type", "required: one of 'video', 'audio', 'text'"),
        ("input[2].type", "must be one of 'video', 'audio', 'text', got 'image'"),
    ]


@pytest.mark.parametrize("index", [0, 1])
def test_a_media_input_needs_a_url(index: int) -> None:
    payload = simple_payload()
    del payload["input"][index]["url"]
    kind = payload["input"][index]["type"]
    assert problems_of(payload) == [(f"input[{index}].url", f"required: the {kind}'s http(s) URL")]


@pytest.mark.parametrize("index", [0, 1])
def test_an_asset_id_stands_for_the_url(index: int) -> None:
    payload = simple_payload()
    payload["input"][index] = {"type": payload["input"][index]["type"], "assetId": "asset-123"}
    model, problems = parse_generation(payload)  # whether the caller owns it is the use case's check
    assert problems == [] and model is not None


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"assetId": "a1", "url": "https://media.example.com/v.mp4"}, "give either url or assetId, not both"),
        ({"assetId": " "}, "must not be empty"),
    ],
)
def test_an_asset_id_is_given_alone_and_not_blank(fields: dict[str, str], expected: str) -> None:
    payload = simple_payload()
    payload["input"][0] = {"type": "video", **fields}
    assert problems_of(payload) == [("input[0].assetId", expected)]


@pytest.mark.parametrize(
    "url",
    [
        "ftp://media.example.com/a.wav",
        "file:///etc/passwd",
        "/tmp/a.wav",
        "media.example.com/a.wav",
        "https://",
        "https:///path-only",
        "http://exa mple.com/a.wav",
        " https://media.example.com/a.wav",
        "http://media.example.com:port/a.wav",
        "http://[::1/a.wav",
        "javascript:alert(1)",
        "",
    ],
)
def test_a_media_url_must_be_http(url: str) -> None:
    payload = simple_payload()
    payload["input"][1]["url"] = url
    assert problems_of(payload) == [("input[1].url", "must be an http(s) URL")]


@pytest.mark.parametrize(
    "url", ["http://h/a.wav", "HTTPS://Media.Example.com:8443/a.wav?sig=x#t", "https://[::1]/a"]
)
def test_http_urls_are_accepted(url: str) -> None:
    assert is_http_url(url)


def test_local_files_only_when_the_caller_allows_them() -> None:
    payload = simple_payload(
        input=[{"type": "video", "url": "/data/v.mp4"}, {**AUDIO, "url": "file:///a.wav"}]
    )
    assert accepted(payload, allow_local_files=True).input[0].url == "/data/v.mp4"
    assert [field for field, _ in problems_of(payload)] == ["input[0].url", "input[1].url"]


def test_text_to_speech_is_refused_until_it_exists() -> None:
    tts = {"type": "text", "provider": {"name": "elevenlabs", "voiceId": "v1", "script": "Hello"}}
    payload = simple_payload(input=[VIDEO, tts])
    assert problems_of(payload) == [
        ("input[1]", "text-to-speech inputs are not supported yet; give an audio url")
    ]


def test_deprecated_video_segment_fields_are_refused() -> None:
    payload = simple_payload(
        input=[{**VIDEO, "segments_secs": [[0, 1]], "segments_frames": [[0, 25]]}, AUDIO]
    )
    message = "deprecated and not supported; use the top-level segments"
    assert problems_of(payload) == [
        ("input[0].segments_secs", message),
        ("input[0].segments_frames", message),
    ]


# --- segments and refIds ----------------------------------------------------------------------------------


def test_with_segments_every_audio_input_needs_a_ref_id() -> None:
    payload = segmented_payload()
    del payload["input"][2]["refId"]
    assert problems_of(payload) == [
        ("input[2].refId", "required when segments are given"),
        ("segments[1].audioInput.refId", "'b2' names no audio input's refId"),
    ]


def test_ref_ids_must_be_unique() -> None:
    payload = segmented_payload()
    payload["input"][2]["refId"] = "a1"
    assert problems_of(payload) == [
        ("input[2].refId", "'a1' duplicates input[1].refId"),
        ("segments[1].audioInput.refId", "'b2' names no audio input's refId"),
    ]


def test_a_segment_must_name_an_existing_ref_id() -> None:
    payload = segmented_payload()
    payload["segments"][0]["audioInput"]["refId"] = "zz"
    assert problems_of(payload) == [("segments[0].audioInput.refId", "'zz' names no audio input's refId")]


def test_a_segment_needs_its_audio_input() -> None:
    payload = segmented_payload()
    del payload["segments"][0]["audioInput"]
    payload["segments"][1]["audioInput"] = {"refId": ""}
    assert problems_of(payload) == [
        ("segments[0].audioInput", "required"),
        ("segments[1].audioInput.refId", "must not be empty"),
    ]


@pytest.mark.parametrize(("given", "missing"), [("startTime", "endTime"), ("endTime", "startTime")])
def test_a_segments_audio_crop_times_come_together(given: str, missing: str) -> None:
    payload = segmented_payload()
    payload["segments"][0]["audioInput"][given] = 1.0
    assert problems_of(payload) == [(f"segments[0].audioInput.{missing}", f"required together with {given}")]


def test_an_audio_crop_must_run_forwards_from_zero() -> None:
    payload = segmented_payload()
    payload["segments"][1]["audioInput"].update(startTime=2, endTime=2)
    assert problems_of(payload) == [("segments[1].audioInput.endTime", "must be greater than startTime (2)")]
    payload["segments"][1]["audioInput"].update(startTime=-1)
    assert problems_of(payload) == [
        ("segments[1].audioInput.startTime", "must be greater than or equal to 0")
    ]


def test_a_segment_starts_at_zero_or_later() -> None:
    payload = segmented_payload()
    payload["segments"][0]["startTime"] = -0.5
    assert problems_of(payload) == [("segments[0].startTime", "must be greater than or equal to 0")]


@pytest.mark.parametrize("end", [0, -1])
def test_a_segment_ends_after_it_starts(end: float) -> None:
    payload = segmented_payload()
    payload["segments"][0]["endTime"] = end
    assert problems_of(payload) == [("segments[0].endTime", "must be greater than startTime (0)")]


def test_segments_may_touch_but_not_overlap() -> None:
    payload = segmented_payload()
    payload["segments"].append({"startTime": 1, "endTime": 1.5, "audioInput": {"refId": "a1"}})
    assert problems_of(payload) == [("segments[2].startTime", "overlaps segments[0] (endTime 2.5)")]


def test_segment_times_are_finite_numbers() -> None:
    payload = segmented_payload()
    payload["segments"][0].update(startTime="0", endTime=float("inf"))
    payload["segments"][1].update(endTime=10**400)
    assert problems_of(payload) == [
        ("segments[0].startTime", "must be a number"),
        ("segments[0].endTime", "must be a finite number"),
        ("segments[1].endTime", "is too large a number"),
    ]


def test_empty_segments_mean_no_segments() -> None:
    model = accepted(simple_payload(segments=[]))
    assert model.segments == []


# --- options ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["bounce", "loop", "cut_off", "silence", "remap"])
def test_every_sync_mode_is_accepted(mode: str) -> None:
    options = accepted(simple_payload(options={"sync_mode": mode})).options
    assert options is not None and options.sync_mode == mode


@pytest.mark.parametrize("mode", ["cutoff", "CUT_OFF", "", 1, ["loop"]])
def test_an_unknown_sync_mode_is_refused(mode: object) -> None:
    payload = simple_payload(options={"sync_mode": mode})
    assert problems_of(payload) == [
        ("options.sync_mode", "must be 'bounce', 'loop', 'cut_off', 'silence' or 'remap'")
    ]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (-0.1, "must be greater than or equal to 0"),
        (1.01, "must be less than or equal to 1"),
        ("0.5", "must be a number"),
        (True, "must be a number"),
    ],
)
def test_temperature_is_a_number_from_0_to_1(value: object, message: str) -> None:
    assert problems_of(simple_payload(options={"temperature": value})) == [("options.temperature", message)]


@pytest.mark.parametrize("value", [0, 1, 0.25])
def test_temperature_bounds_are_inclusive(value: float) -> None:
    accepted(simple_payload(options={"temperature": value}))


def test_active_speaker_detection_shapes() -> None:
    detection = {
        "auto_detect": "yes",
        "frame_number": -1,
        "coordinates": [1, 2, 3],
        "bounding_boxes": [[1, 2, 3], None, [50, 50, 10, 80], "box"],
    }
    where = "options.active_speaker_detection"
    assert problems_of(simple_payload(options={"active_speaker_detection": detection})) == [
        (f"{where}.auto_detect", "must be true or false"),
        (f"{where}.frame_number", "must be greater than or equal to 0"),
        (f"{where}.coordinates", "must have at most 2 items, got 3"),
        (f"{where}.bounding_boxes[0]", "must have at least 4 items, got 3"),
        (f"{where}.bounding_boxes[2]", "must be [x1, y1, x2, y2] with x1 < x2 and y1 < y2"),
        (f"{where}.bounding_boxes[3]", "must be a JSON array"),
    ]


def test_options_of_other_models_are_accepted_and_ignored() -> None:
    options = {"model_mode": "head", "prompt": "happy", "occlusion_detection_enabled": True}
    accepted(simple_payload(options=options))


# --- top-level strings ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["clip.mp4", "", "a b", "../x", "é", "x" * 256])
def test_output_file_name_pattern(name: str) -> None:
    assert problems_of(simple_payload(outputFileName=name)) == [
        ("outputFileName", "must be 1 to 255 letters, digits, '_' or '-' (.mp4 is appended)")
    ]


def test_the_longest_output_file_name_is_accepted() -> None:
    assert accepted(simple_payload(outputFileName="A_-9" * 63 + "abc")).output_file_name is not None


@pytest.mark.parametrize("url", ["hooks.example.com", "ftp://hooks.example.com/x", "file:///x", ""])
def test_webhook_url_must_be_http(url: str) -> None:
    assert problems_of(simple_payload(webhookUrl=url)) == [("webhookUrl", "must be an http(s) URL")]


def test_local_files_never_make_a_webhook_url_valid() -> None:
    assert problems_of(simple_payload(webhookUrl="/tmp/hook"), allow_local_files=True) == [
        ("webhookUrl", "must be an http(s) URL")
    ]


def test_nulls_mean_absent() -> None:
    # The SDK sends null for an optional argument passed explicitly as None.
    payload = simple_payload(options=None, segments=None, webhookUrl=None, outputFileName=None)
    payload["input"][1]["refId"] = None
    assert accepted(simple_payload(options={"sync_mode": None, "temperature": None})).options is not None
    model = accepted(payload)
    assert model.options is None and model.segments is None and model.webhook_url is None


# --- all problems at once, extras, paths --------------------------------------------------------------------


def test_every_schema_problem_is_reported_at_once() -> None:
    payload = simple_payload(model="", webhookUrl="nope", outputFileName="a.mp4")
    payload["input"][0]["url"] = "ftp://x"
    payload["options"] = {"sync_mode": "zigzag", "temperature": 3}
    payload["segments"] = [{"startTime": -1, "endTime": 1, "audioInput": {}}]
    assert [field for field, _ in problems_of(payload)] == [
        "model",
        "input[0].url",
        "options.sync_mode",
        "options.temperature",
        "segments[0].startTime",
        "segments[0].audioInput.refId",
        "webhookUrl",
        "outputFileName",
    ]


def test_every_rule_problem_is_reported_at_once() -> None:
    payload = segmented_payload()
    payload["input"].append({"type": "video", "assetId": "v"})
    payload["input"].append({"type": "text", "refId": "a1"})
    payload["segments"][0].update(endTime=0)
    payload["segments"][1]["audioInput"].update(refId="nope", endTime=None)
    assert problems_of(payload) == [
        ("input", "needs exactly one video input, got 2"),
        ("input[4]", "text-to-speech inputs are not supported yet; give an audio url"),
        ("input[4].refId", "'a1' duplicates input[1].refId"),
        ("segments[1].audioInput.refId", "'nope' names no audio input's refId"),
        ("segments[0].endTime", "must be greater than startTime (0)"),
        ("segments[1].audioInput.endTime", "required together with startTime"),
    ]


def test_unknown_keys_are_accepted_at_every_level() -> None:
    payload = copy.deepcopy(segmented_payload())
    payload["futureFlag"] = {"deep": [1, 2, {"x": None}]}
    payload["input"][0]["segments_secs"] = None
    payload["input"][1]["duration"] = 3.2
    payload["options"]["brand_new_option"] = "on"
    payload["options"]["active_speaker_detection"]["confidence"] = 0.9
    payload["segments"][0]["label"] = "intro"
    payload["segments"][0]["audioInput"]["gain"] = 2
    assert accepted(payload) == accepted(segmented_payload())


def test_field_paths_drop_the_unions_tag() -> None:
    assert field_path(("input", 1, "audio", "url")) == "input[1].url"
    assert field_path(("segments", 0, "audioInput", "refId")) == "segments[0].audioInput.refId"
    assert field_path(()) == ""


def test_a_problem_describes_itself() -> None:
    assert (
        FieldProblem("input[1].url", "must be an http(s) URL").describe()
        == "input[1].url: must be an http(s) URL"
    )
    assert FieldProblem("", "the request body must be a JSON object").describe().startswith("the request")


def test_values_no_json_answer_could_hold_are_refused_even_in_ignored_keys() -> None:
    # 1e400 parses to infinity and "\ud800" to a lone surrogate: accepted in an ignored key, they were
    # stored and then broke every answer showing the request (a 500), or the insert itself.
    payload = simple_payload(extra=float("inf"))
    payload["input"][0]["note"] = "\ud800"
    payload["options"] = {"temperature": float("nan"), "\udc00": 1}
    assert problems_of(payload) == [
        ("options.temperature", "must be a finite number"),
        ("input[0].note", "must be valid Unicode text (a lone surrogate)"),
        ("extra", "must be a finite number"),
        ("options", "has a key that is not valid Unicode text"),
    ]
    assert problems_of(simple_payload(model="lipsync-\ud800")) == [
        ("model", "must be valid Unicode text (a lone surrogate)")
    ]


def test_nesting_deeper_than_any_field_is_refused_before_it_exhausts_the_stack() -> None:
    # ~500 levels in an ignored key used to pass validation and raise RecursionError in copy.deepcopy.
    deep: Any = []
    for _ in range(500):
        deep = [deep]
    problems = problems_of(simple_payload(extra=deep))
    assert problems == [("extra" + "[0]" * 63, "nested more than 64 levels deep")]
    accepted(simple_payload(extra=[[[[[[[[[[1]]]]]]]]]]))
