"""Unit tests for the pure frame planner (engine/timeline.py)."""

from __future__ import annotations

import itertools
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lipsync_api.engine.request import SegmentSpec, SyncMode
from lipsync_api.engine.timeline import (
    AudioClip,
    AudioSpan,
    FramePlan,
    FrameStep,
    VideoTiming,
    plan_timeline,
)
from lipsync_api.errors import ErrorCode, GenerationError

# 4 fps keeps every frame boundary (k / 4 s) exact in binary floats, so plans compare by plain equality.
FPS = Fraction(4)
VIDEO = VideoTiming(frame_count=4, fps=FPS)  # 1.0 s
LONG, SHORT, EQUAL = 2.5, 0.5, 1.0


def spans(source: str, src_start: float, count: int) -> list[AudioSpan]:
    """Consecutive whole-frame (0.25 s) spans of ``source`` from src_start."""
    return [AudioSpan(source, src_start + k / 4, src_start + (k + 1) / 4) for k in range(count)]


def driven_steps(sources: list[int], audio: list[AudioSpan | None]) -> tuple[FrameStep, ...]:
    return tuple(FrameStep(s, a, True) for s, a in zip(sources, audio, strict=True))


def clips_within(plan: FramePlan) -> bool:
    return all(c.out_start + (c.src_end - c.src_start) <= plan.duration + 1e-9 for c in plan.audio)


def plan_for(mode: SyncMode, audio: float, video: VideoTiming = VIDEO) -> FramePlan:
    return plan_timeline(video, {"main": audio}, mode)


# --- sync modes -------------------------------------------------------------------------------------------

MODE_CASES = [
    # mode, audio seconds, expected source frames, soundtrack seconds
    (SyncMode.BOUNCE, LONG, [0, 1, 2, 3, 2, 1, 0, 1, 2, 3], 2.5),
    (SyncMode.LOOP, LONG, [0, 1, 2, 3, 0, 1, 2, 3, 0, 1], 2.5),
    (SyncMode.CUT_OFF, LONG, [0, 1, 2, 3], 1.0),
    (SyncMode.SILENCE, LONG, [0, 1, 2, 3], 1.0),
    (SyncMode.REMAP, LONG, [0, 0, 0, 1, 1, 2, 2, 2, 3, 3], 2.5),
    (SyncMode.BOUNCE, SHORT, [0, 1], 0.5),
    (SyncMode.LOOP, SHORT, [0, 1], 0.5),
    (SyncMode.CUT_OFF, SHORT, [0, 1], 0.5),
    (SyncMode.REMAP, SHORT, [0, 2], 0.5),
    *[(mode, EQUAL, [0, 1, 2, 3], 1.0) for mode in SyncMode],
]


@pytest.mark.parametrize(("mode", "audio", "sources", "heard"), MODE_CASES)
def test_mode_plan(mode: SyncMode, audio: float, sources: list[int], heard: float) -> None:
    plan = plan_for(mode, audio)
    assert plan.fps == FPS
    assert plan.frame_count == len(sources)
    assert plan.duration == len(sources) / 4
    assert plan.frames == driven_steps(sources, list(spans("main", 0, len(sources))))
    assert plan.audio == (AudioClip("main", 0.0, heard, 0.0),)
    assert clips_within(plan)


def test_silence_pads_shorter_audio_with_closed_mouth() -> None:
    plan = plan_for(SyncMode.SILENCE, SHORT)
    assert plan.frame_count == 4
    assert plan.duration == 1.0
    assert plan.frames == driven_steps([0, 1, 2, 3], [*spans("main", 0, 2), None, None])
    assert plan.audio == (AudioClip("main", 0.0, 0.5, 0.0),)


def test_partial_last_frame_keeps_all_audio() -> None:
    plan = plan_for(SyncMode.CUT_OFF, 0.625)  # 2.5 frames
    assert plan.frame_count == 3
    assert plan.duration == 0.75
    assert plan.frames[-1] == FrameStep(2, AudioSpan("main", 0.5, 0.625), True)
    assert plan.audio == (AudioClip("main", 0.0, 0.625, 0.0),)


def test_silence_partial_frame_then_silence() -> None:
    plan = plan_for(SyncMode.SILENCE, 0.625)
    assert [f.audio for f in plan.frames[2:]] == [AudioSpan("main", 0.5, 0.625), None]


def test_float_noise_does_not_add_a_frame() -> None:
    plan = plan_for(SyncMode.REMAP, 4.2, VideoTiming(100, Fraction(25)))  # 4.2 * 25 = 105.0000000000000044
    assert plan.frame_count == 105
    assert plan.audio == (AudioClip("main", 0.0, 4.2, 0.0),)
    assert plan.frames[-1].audio == AudioSpan("main", 104 / 25, 4.2)


def test_ntsc_rate() -> None:
    fps = Fraction(30000, 1001)
    plan = plan_for(SyncMode.LOOP, 10.0, VideoTiming(100, fps))
    assert plan.frame_count == 300  # 299.7 frames, the last partial
    assert plan.duration == float(300 / fps)
    assert plan.audio == (AudioClip("main", 0.0, 10.0, 0.0),)
    assert plan.frames[-1].audio == AudioSpan("main", float(299 / fps), 10.0)
    assert [f.source_frame for f in plan.frames[98:102]] == [98, 99, 0, 1]


@pytest.mark.parametrize("mode", [SyncMode.BOUNCE, SyncMode.LOOP])
def test_single_frame_video_repeats(mode: SyncMode) -> None:
    plan = plan_for(mode, 1.0, VideoTiming(1, FPS))
    assert [f.source_frame for f in plan.frames] == [0, 0, 0, 0]


@pytest.mark.parametrize("mode", list(SyncMode))
def test_silent_audio_still_gives_one_frame(mode: SyncMode) -> None:
    plan = plan_for(mode, 0.0)
    assert plan.frame_count == (4 if mode is SyncMode.SILENCE else 1)
    assert all(f.audio is None and f.driven for f in plan.frames)
    assert plan.audio == ()


def test_custom_main_audio_name() -> None:
    plan = plan_timeline(VIDEO, {"a1": 0.5, "other": 9.0}, SyncMode.CUT_OFF, main_audio="a1")
    assert plan.audio == (AudioClip("a1", 0.0, 0.5, 0.0),)
    assert plan.frames[0].audio == AudioSpan("a1", 0.0, 0.25)


@pytest.mark.parametrize(
    ("video", "durations"),
    [
        (VideoTiming(0, FPS), {"main": 1.0}),
        (VideoTiming(4, Fraction(0)), {"main": 1.0}),
        (VIDEO, {}),
        (VIDEO, {"main": -1.0}),
        (VIDEO, {"main": float("nan")}),
    ],
)
def test_caller_bugs_raise_value_error(video: VideoTiming, durations: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        plan_timeline(video, durations, SyncMode.CUT_OFF)


# --- segments ---------------------------------------------------------------------------------------------

SEG_VIDEO = VideoTiming(frame_count=40, fps=FPS)  # 10 s
DURATIONS = {"a": 2.0, "b": 5.0, "original": 10.0}


def seg_plan(*segments: SegmentSpec, durations: dict[str, float] | None = None) -> FramePlan:
    return plan_timeline(SEG_VIDEO, DURATIONS if durations is None else durations, SyncMode.CUT_OFF, segments)


def original(first: int, stop: int) -> list[FrameStep]:
    return [FrameStep(i, AudioSpan("original", i / 4, (i + 1) / 4), False) for i in range(first, stop)]


def segment(source: str, first: int, src_start: float, count: int) -> list[FrameStep]:
    audio = spans(source, src_start, count)
    return [FrameStep(first + k, a, True) for k, a in enumerate(audio)]


def silent(first: int, stop: int, driven: bool) -> list[FrameStep]:
    return [FrameStep(i, None, driven) for i in range(first, stop)]


def test_single_segment() -> None:
    plan = seg_plan(SegmentSpec(2.0, 4.0, "a"))
    assert plan.frame_count == 40
    assert plan.duration == 10.0
    assert plan.frames == (*original(0, 8), *segment("a", 8, 0.0, 8), *original(16, 40))
    assert plan.audio == (
        AudioClip("original", 0.0, 2.0, 0.0),
        AudioClip("a", 0.0, 2.0, 2.0),
        AudioClip("original", 4.0, 10.0, 4.0),
    )
    assert clips_within(plan)


def test_segments_ignore_sync_mode() -> None:
    spec = SegmentSpec(2.0, 4.0, "a")
    bounce = plan_timeline(SEG_VIDEO, {"a": 9.0}, SyncMode.BOUNCE, [spec])
    assert bounce == plan_timeline(SEG_VIDEO, {"a": 9.0}, SyncMode.CUT_OFF, [spec])
    assert bounce.frame_count == 40


def test_touching_segments_in_any_order() -> None:
    plan = seg_plan(SegmentSpec(2.0, 4.0, "b"), SegmentSpec(0.0, 2.0, "a"))
    assert plan.frames == (*segment("a", 0, 0.0, 8), *segment("b", 8, 0.0, 8), *original(16, 40))
    assert plan.audio == (
        AudioClip("a", 0.0, 2.0, 0.0),
        AudioClip("b", 0.0, 2.0, 2.0),
        AudioClip("original", 4.0, 10.0, 4.0),
    )


def test_segment_with_audio_crop() -> None:
    plan = seg_plan(SegmentSpec(1.0, 3.0, "b", audio_start=1.5, audio_end=3.5))
    assert plan.frames[4:12] == tuple(segment("b", 4, 1.5, 8))
    assert plan.audio[1] == AudioClip("b", 1.5, 3.5, 1.0)


def test_segment_audio_shorter_than_range_pads_driven_silence() -> None:
    plan = seg_plan(SegmentSpec(2.0, 5.0, "a"))
    assert plan.frames == (
        *original(0, 8),
        *segment("a", 8, 0.0, 8),
        *silent(16, 20, True),
        *original(20, 40),
    )
    assert plan.audio == (
        AudioClip("original", 0.0, 2.0, 0.0),
        AudioClip("a", 0.0, 2.0, 2.0),
        AudioClip("original", 5.0, 10.0, 5.0),
    )


def test_segment_audio_longer_than_range_is_cut() -> None:
    plan = seg_plan(SegmentSpec(2.0, 3.0, "b"))
    assert plan.frames == (*original(0, 8), *segment("b", 8, 0.0, 4), *original(12, 40))
    assert plan.audio[1] == AudioClip("b", 0.0, 1.0, 2.0)


def test_segment_end_within_a_frame_past_the_video_is_clamped() -> None:
    plan = seg_plan(SegmentSpec(9.0, 10.2, "a"))
    assert plan.frame_count == 40
    assert plan.frames[36:] == tuple(segment("a", 36, 0.0, 4))
    assert plan.audio == (AudioClip("original", 0.0, 9.0, 0.0), AudioClip("a", 0.0, 1.0, 9.0))
    assert clips_within(plan)


def test_segment_crop_within_a_frame_past_the_audio_is_clamped() -> None:
    plan = seg_plan(SegmentSpec(0.0, 2.0, "b", audio_start=4.0, audio_end=5.1))
    assert plan.audio[0] == AudioClip("b", 4.0, 5.0, 0.0)
    assert plan.frames[:8] == (*segment("b", 0, 4.0, 4), *silent(4, 8, True))


def test_video_without_original_track_is_silent_outside_segments() -> None:
    plan = seg_plan(SegmentSpec(2.0, 4.0, "a"), durations={"a": 2.0})
    assert plan.frames == (*silent(0, 8, False), *segment("a", 8, 0.0, 8), *silent(16, 40, False))
    assert plan.audio == (AudioClip("a", 0.0, 2.0, 2.0),)


def test_original_track_shorter_than_video() -> None:
    plan = seg_plan(SegmentSpec(2.0, 4.0, "a"), durations={"a": 2.0, "original": 5.0})
    assert plan.frames[16:] == (*original(16, 20), *silent(20, 40, False))
    assert plan.audio[-1] == AudioClip("original", 4.0, 5.0, 4.0)


def test_unaligned_segment_times() -> None:
    plan = seg_plan(SegmentSpec(1.1, 1.6, "b"))  # frames starting in [1.1, 1.6): 5 (1.25) and 6 (1.5)
    assert [f.driven for f in plan.frames[4:8]] == [False, True, True, False]
    assert plan.frames[4].audio == AudioSpan("original", 1.0, 1.1)
    assert plan.frames[5].audio == AudioSpan("b", 1.25 - 1.1, 1.5 - 1.1)
    assert plan.frames[6].audio == AudioSpan("b", 1.5 - 1.1, 1.6 - 1.1)
    assert plan.frames[7].audio == AudioSpan("original", 1.75, 2.0)
    assert plan.audio[1] == AudioClip("b", 0.0, 1.6 - 1.1, 1.1)


INVALID = [
    ([SegmentSpec(3.0, 3.0, "a")], "segments[0]: endTime 3 s must be greater than startTime 3 s"),
    ([SegmentSpec(-1.0, 3.0, "a")], "segments[0]: startTime -1.0"),
    ([SegmentSpec(10.0, 11.0, "a")], "segments[0]: startTime 10 s is not before the video's end (10 s)"),
    ([SegmentSpec(12.0, 13.0, "a")], "segments[0]: startTime 12 s"),
    ([SegmentSpec(9.0, 10.3, "a")], "segments[0]: endTime 10.3 s is beyond the video's end (10 s)"),
    ([SegmentSpec(0.0, 1.0, "a"), SegmentSpec(2.0, 4.0, "zz")], "segments[1]: refId 'zz'"),
    (
        [SegmentSpec(2.0, 4.0, "a"), SegmentSpec(0.0, 3.0, "b")],
        "segments[0]: startTime 2 s overlaps segments[1] (endTime 3 s)",
    ),
    (
        [SegmentSpec(0.0, 1.0, "a", audio_start=0.5)],
        "segments[0]: audioInput.startTime and audioInput.endTime",
    ),
    ([SegmentSpec(0.0, 1.0, "a", audio_end=0.5)], "segments[0]: audioInput.startTime and audioInput.endTime"),
    (
        [SegmentSpec(0.0, 1.0, "b", audio_start=2.0, audio_end=1.0)],
        "segments[0]: audioInput.endTime 1 s must",
    ),
    ([SegmentSpec(0.0, 1.0, "b", audio_start=4.0, audio_end=5.5)], "audioInput.endTime 5.5 s is beyond"),
    ([SegmentSpec(0.0, 1.0, "b", audio_start=-1.0, audio_end=0.5)], "segments[0]: audioInput.startTime -1.0"),
    ([SegmentSpec(0.0, float("inf"), "a")], "segments[0]: endTime inf"),
]


@pytest.mark.parametrize(("segments", "message"), INVALID)
def test_invalid_segments_are_rejected(segments: list[SegmentSpec], message: str) -> None:
    with pytest.raises(GenerationError) as caught:
        seg_plan(*segments)
    assert caught.value.code is ErrorCode.INVALID_SEGMENTS
    assert caught.value.rejected
    assert message in caught.value.message


def test_segment_end_exactly_one_frame_past_the_video_is_allowed() -> None:
    assert seg_plan(SegmentSpec(9.0, 10.25, "a")).frame_count == 40


# --- properties -------------------------------------------------------------------------------------------

RATES = [Fraction(24), Fraction(25), Fraction(30000, 1001), Fraction(60), Fraction(15, 2)]


def expected_seconds(mode: SyncMode, video: float, audio: float) -> float:
    if mode is SyncMode.CUT_OFF:
        return min(video, audio)
    return video if mode is SyncMode.SILENCE else audio


@given(
    frames=st.integers(min_value=1, max_value=400),
    fps=st.sampled_from(RATES),
    audio=st.floats(min_value=0.0, max_value=60.0, allow_nan=False),
    mode=st.sampled_from(list(SyncMode)),
)
def test_plan_properties(frames: int, fps: Fraction, audio: float, mode: SyncMode) -> None:
    video = VideoTiming(frames, fps)
    plan = plan_for(mode, audio, video)
    frame = float(1 / fps)
    assert plan.frame_count >= 1
    assert all(0 <= f.source_frame < frames for f in plan.frames)
    assert all(f.driven for f in plan.frames)
    assert abs(plan.duration - expected_seconds(mode, float(frames / fps), audio)) <= frame + 1e-9
    assert plan.duration == float(plan.frame_count / fps)
    assert clips_within(plan)
    heard = [(c.source, c.src_start, c.out_start) for c in plan.audio]
    assert heard in ([], [("main", 0.0, 0.0)])
    assert bool(heard) or audio * fps < 2e-6  # slivers under a millionth of a frame are float noise
    if plan.audio:
        assert plan.audio[0].src_end == min(audio, plan.duration)
    sources = [f.source_frame for f in plan.frames]
    if mode is SyncMode.BOUNCE and frames > 1:
        assert all(abs(b - a) == 1 for a, b in itertools.pairwise(sources))
    if mode is SyncMode.REMAP:
        assert sources == sorted(sources)
    for i, step in enumerate(plan.frames):
        if step.audio is not None:
            assert i * frame - 1e-9 <= step.audio.start < step.audio.end <= (i + 1) * frame + 1e-9
