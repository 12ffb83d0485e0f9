"""Estimate math: frame counts equal the engine planner's, prices, rounding, and the dry run's sums."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lipsync_api.domain.estimate import (
    MAX_LINE_WARNINGS,
    Estimate,
    LineOutcome,
    Sampling,
    Unprobed,
    batch_estimate_fields,
    estimate,
    extrapolate,
    output_frames,
    price_per_second,
)
from lipsync_api.engine.request import SegmentSpec, SyncMode
from lipsync_api.engine.timeline import VideoTiming, plan_timeline
from lipsync_api.errors import ErrorCode, GenerationError, InvalidRequestError

RATES = [Fraction(25), Fraction(30000, 1001), Fraction(24), Fraction(60), Fraction(25, 2)]


def planned(
    video: VideoTiming, audio: dict[str, float], mode: SyncMode, segments: tuple[SegmentSpec, ...] = ()
) -> int:
    return plan_timeline(video, audio, mode, segments).frame_count


@pytest.mark.parametrize("mode", list(SyncMode))
@pytest.mark.parametrize(
    ("frames", "fps", "audio"),
    [
        (100, Fraction(25), 4.2),  # audio shorter; 4.2 * 25 is 105.000...04 in binary, not 106 frames
        (100, Fraction(25), 4.0),  # exactly as long
        (100, Fraction(25), 7.31),  # audio longer, a partial last frame
        (1, Fraction(25), 0.001),  # a one-frame video, a sliver of audio
        (300, Fraction(30000, 1001), 12.345),
        (50, Fraction(60), 0.0),  # silent: the output still has a frame
    ],
)
def test_output_frames_equal_the_planner_for_every_mode(
    mode: SyncMode, frames: int, fps: Fraction, audio: float
) -> None:
    video = VideoTiming(frames, fps)
    assert output_frames(video, {"main": audio}, mode) == planned(video, {"main": audio}, mode)


def test_modes_differ_as_the_contract_says() -> None:
    video = VideoTiming(100, Fraction(25))  # 4 s
    longer, shorter = {"main": 6.0}, {"main": 2.0}
    assert output_frames(video, longer, SyncMode.CUT_OFF) == 100
    assert output_frames(video, shorter, SyncMode.CUT_OFF) == 50
    assert output_frames(video, longer, SyncMode.SILENCE) == 100
    assert output_frames(video, shorter, SyncMode.SILENCE) == 100
    for mode in (SyncMode.BOUNCE, SyncMode.LOOP, SyncMode.REMAP):
        assert output_frames(video, longer, mode) == 150
        assert output_frames(video, shorter, mode) == 50


@settings(max_examples=150, deadline=None)
@given(
    frames=st.integers(1, 400),
    fps=st.sampled_from(RATES),
    audio=st.floats(0, 30, allow_nan=False),
    mode=st.sampled_from(list(SyncMode)),
)
def test_output_frames_equal_the_planner_property(
    frames: int, fps: Fraction, audio: float, mode: SyncMode
) -> None:
    video = VideoTiming(frames, fps)
    assert output_frames(video, {"main": audio}, mode) == planned(video, {"main": audio}, mode)


@st.composite
def segmented(draw: st.DrawFn) -> tuple[VideoTiming, dict[str, float], tuple[SegmentSpec, ...]]:
    """A video, two audio tracks and up to three segments (valid or not: both must agree)."""
    video = VideoTiming(draw(st.integers(1, 200)), draw(st.sampled_from(RATES)))
    audio = {"a": draw(st.floats(0.05, 10)), "b": draw(st.floats(0.05, 10))}
    end = float(video.frame_count / video.fps)
    specs = []
    for _ in range(draw(st.integers(1, 3))):
        start = draw(st.floats(0, end * 1.1))
        length = draw(st.floats(0.01, end))
        crop = draw(st.none() | st.tuples(st.floats(0, 5), st.floats(0.01, 6)))
        audio_start, audio_end = (None, None) if crop is None else (crop[0], crop[0] + crop[1])
        specs.append(
            SegmentSpec(start, start + length, draw(st.sampled_from(["a", "b"])), audio_start, audio_end)
        )
    return video, audio, tuple(specs)


@settings(max_examples=150, deadline=None)
@given(case=segmented(), mode=st.sampled_from(list(SyncMode)))
def test_segments_count_and_refuse_as_the_planner(
    case: tuple[VideoTiming, dict[str, float], tuple[SegmentSpec, ...]], mode: SyncMode
) -> None:
    video, audio, segments = case
    try:
        expected: int | str = planned(video, audio, mode, segments)
    except GenerationError as error:
        expected = error.message
    try:
        found: int | str = output_frames(video, audio, mode, segments)
    except GenerationError as error:
        assert error.code is ErrorCode.INVALID_SEGMENTS
        found = error.message
    assert found == expected


def test_segments_keep_the_video_length_whatever_the_mode() -> None:
    video = VideoTiming(100, Fraction(25))
    segments = (SegmentSpec(1.0, 2.0, "a"), SegmentSpec(2.0, 3.5, "b", 0.5, 1.0))
    for mode in SyncMode:
        assert output_frames(video, {"a": 9.0, "b": 1.0}, mode, segments) == 100


def test_a_segment_past_the_video_is_refused() -> None:
    with pytest.raises(GenerationError, match="beyond the video's end") as raised:
        output_frames(
            VideoTiming(100, Fraction(25)), {"a": 9.0}, SyncMode.CUT_OFF, (SegmentSpec(3.0, 9.0, "a"),)
        )
    assert raised.value.code is ErrorCode.INVALID_SEGMENTS


def test_cost_is_output_seconds_times_price_rounded() -> None:
    found = estimate(101, Fraction(25), 0.0833)  # 4.04 s * 0.0833 = 0.336532
    assert found == Estimate(101, Fraction(25), 0.3365)
    assert found.seconds == pytest.approx(4.04)
    assert found.wire() == {"estimatedFrameCount": 101, "estimatedGenerationCost": 0.3365}


def test_a_model_without_a_price_is_a_400_naming_it() -> None:
    assert price_per_second("lipsync-2", {"lipsync-2": 0.05}) == 0.05
    with pytest.raises(InvalidRequestError, match="'sync-3'") as raised:
        price_per_second("sync-3", {"lipsync-2": 0.05})
    assert raised.value.error_code == "generation_unsupported_model"


def test_batch_fields_sum_estimated_lines() -> None:
    outcomes = [
        LineOutcome(1, estimate(100, Fraction(25), 0.05)),
        LineOutcome(2, estimate(50, Fraction(25), 0.05)),
    ]
    assert batch_estimate_fields(outcomes) == {
        "estimatedFrameCount": 150,
        "estimatedGenerationCost": 0.3,
        "warnings": [],
    }


def test_batch_fields_warn_per_line_and_cap_the_warnings() -> None:
    good = [LineOutcome(1, estimate(25, Fraction(25), 0.1))]
    bad = [LineOutcome(line, None, f"input[1] (audio): problem {line}") for line in range(2, 2 + 30)]
    fields = batch_estimate_fields(good + bad)
    assert fields["estimatedFrameCount"] == 25 and fields["estimatedGenerationCost"] == 0.1
    warnings = fields["warnings"]
    assert len(warnings) == MAX_LINE_WARNINGS + 1
    assert warnings[0] == "line 2: input[1] (audio): problem 2"
    assert warnings[-1] == f"estimates cover 1 of 31 lines; the first {MAX_LINE_WARNINGS} are listed"


def test_batch_fields_are_null_when_no_line_is_estimated() -> None:
    fields = batch_estimate_fields([LineOutcome(3, None, "no price")])
    assert fields == {
        "estimatedFrameCount": None,
        "estimatedGenerationCost": None,
        "warnings": ["line 3: no price", "estimates cover 0 of 1 lines"],
    }


def test_unprobed_lines_get_the_mean_of_the_lines_with_their_video() -> None:
    estimated = [
        ("v1", estimate(100, Fraction(25), 0.05)),
        ("v1", estimate(50, Fraction(25), 0.05)),
        ("v2", estimate(30, Fraction(30), 0.05)),
    ]
    unprobed = [Unprobed(4, "v1", 0.1), Unprobed(5, "v2", 0.05), Unprobed(6, "v3", 0.05)]
    four, five, six = extrapolate(estimated, unprobed)
    assert four == LineOutcome(4, Estimate(75, Fraction(25), 0.3), extrapolated=True)  # 3 s at its own price
    assert five == LineOutcome(5, Estimate(30, Fraction(30), 0.05), extrapolated=True)
    # No probed line has v3: the mean of every estimated line (frames 60, seconds (4 + 2 + 1) / 3).
    assert six.extrapolated and six.estimate is not None and six.estimate.frame_count == 60
    assert six.estimate.cost == round(7 / 3 * 0.05, 4)


def test_nothing_is_extrapolated_from_nothing() -> None:
    assert extrapolate([], [Unprobed(1, "v", 0.05)]) == [
        LineOutcome(1, None, "none of the probed media could be read")
    ]


def test_batch_fields_say_when_estimates_are_extrapolated() -> None:
    outcomes = [
        LineOutcome(1, estimate(100, Fraction(25), 0.05)),
        LineOutcome(2, estimate(100, Fraction(25), 0.05), extrapolated=True),
        LineOutcome(3, estimate(100, Fraction(25), 0.05), extrapolated=True),
    ]
    fields = batch_estimate_fields(outcomes, Sampling(2, 4))
    assert fields["estimatedFrameCount"] == 300
    assert fields["warnings"] == [
        "estimates extrapolated from 2 probed of 4 media URLs: 2 of 3 lines are the mean of the probed lines "
        "with their video"
    ]
    assert batch_estimate_fields(outcomes[:1], Sampling(2, 2))["warnings"] == []
