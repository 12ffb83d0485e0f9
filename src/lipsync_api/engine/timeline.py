"""Pure frame planning: which source frame and which slice of audio make up each output frame."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

from lipsync_api.engine.request import SegmentSpec, SyncMode
from lipsync_api.errors import ErrorCode, GenerationError

ORIGINAL = "original"
# Inputs are binary floats (4.2 s at 25 fps is 105.0000000000000044 frames): noise below a millionth of a
# frame must neither add a frame nor leave a zero-length sliver of audio.
_SLACK = Fraction(1, 10**6)


@dataclass(frozen=True)
class VideoTiming:
    """The input video at the constant output rate."""

    frame_count: int
    fps: Fraction


@dataclass(frozen=True)
class AudioSpan:
    """A span of one source audio ("main", a refId or "original") heard during one output frame."""

    source: str
    start: float
    end: float


@dataclass(frozen=True)
class FrameStep:
    """One output frame: the source frame shown, its audio (None: silence), whether the mouth follows it."""

    source_frame: int
    audio: AudioSpan | None
    driven: bool


@dataclass(frozen=True)
class AudioClip:
    """A piece of the output soundtrack: source audio [src_start, src_end) placed at out_start."""

    source: str
    src_start: float
    src_end: float
    out_start: float


@dataclass(frozen=True)
class FramePlan:
    """The whole output: one step per frame at ``fps`` and the soundtrack's clips (gaps are silence)."""

    fps: Fraction
    frames: tuple[FrameStep, ...]
    audio: tuple[AudioClip, ...]

    @property
    def frame_count(self) -> int:
        """Number of output frames."""
        return len(self.frames)

    @property
    def duration(self) -> float:
        """Output length in seconds (frame_count / fps)."""
        return float(self.frame_count / self.fps)


@dataclass(frozen=True)
class _Region:
    """Output frames [first, stop) sharing a driven flag and one clip of audio, in exact time."""

    first: int
    stop: int
    driven: bool
    source: str | None  # None: silence throughout
    src_start: Fraction
    src_end: Fraction
    out_start: Fraction

    @property
    def out_end(self) -> Fraction:
        """Where this region's audio stops in the output."""
        return self.out_start + max(Fraction(0), self.src_end - self.src_start)


@dataclass(frozen=True)
class _Segment:
    """A validated segment: video range [start, end) clamped to the video, audio [audio_start, audio_end)."""

    index: int
    start: Fraction
    end: Fraction
    source: str
    audio_start: Fraction
    audio_end: Fraction


def plan_timeline(
    video: VideoTiming,
    audio_durations: Mapping[str, float],
    sync_mode: SyncMode,
    segments: Sequence[SegmentSpec] = (),
    main_audio: str = "main",
) -> FramePlan:
    """Plan every output frame and the soundtrack for ``sync_mode``, or for ``segments`` when given."""
    if video.frame_count < 1 or video.fps <= 0:
        raise ValueError(f"video timing needs frame_count >= 1 and fps > 0, got {video}")
    if segments:
        return _segment_plan(video, audio_durations, segments)
    if main_audio not in audio_durations:
        raise ValueError(f"no duration given for the driving audio {main_audio!r}")
    return _mode_plan(video, _exact(audio_durations[main_audio]), sync_mode, main_audio)


# --- sync modes -------------------------------------------------------------------------------------------


def _bounce_frame(i: int, n_video: int, n_out: int) -> int:
    """Forward then backward, never showing the turning frame twice in a row."""
    period = max(1, 2 * (n_video - 1))
    k = i % period
    return k if k < n_video else period - k


def _loop_frame(i: int, n_video: int, n_out: int) -> int:
    """Restart from the first frame after the last."""
    return i % n_video


def _straight_frame(i: int, n_video: int, n_out: int) -> int:
    """Play once; the output is never longer than the video in these modes."""
    return i


def _remap_frame(i: int, n_video: int, n_out: int) -> int:
    """Stretch or squeeze the video onto the output's length."""
    return min(n_video - 1, i * n_video // n_out)


_SOURCE_FRAME: dict[SyncMode, Callable[[int, int, int], int]] = {
    SyncMode.BOUNCE: _bounce_frame,
    SyncMode.LOOP: _loop_frame,
    SyncMode.CUT_OFF: _straight_frame,
    SyncMode.SILENCE: _straight_frame,
    SyncMode.REMAP: _remap_frame,
}


def _output_frames(mode: SyncMode, n_video: int, n_audio: int) -> int:
    """Output length in frames per API.md's table: the audio's, the video's, or the shorter."""
    if mode is SyncMode.CUT_OFF:
        count = min(n_video, n_audio)
    elif mode is SyncMode.SILENCE:
        count = n_video
    else:
        count = n_audio
    return max(1, count)


def _mode_plan(video: VideoTiming, duration: Fraction, mode: SyncMode, source: str) -> FramePlan:
    """A single driving audio laid from time 0, resolved against the video by ``mode``."""
    n_video, fps = video.frame_count, video.fps
    n_out = _output_frames(mode, n_video, _frames_until(duration, fps))
    region = _Region(0, n_out, True, source, Fraction(0), min(duration, n_out / fps), Fraction(0))
    pick = _SOURCE_FRAME[mode]
    return _assemble(fps, [region], lambda i: pick(i, n_video, n_out))


# --- segments ---------------------------------------------------------------------------------------------


def _segment_plan(
    video: VideoTiming, durations: Mapping[str, float], specs: Sequence[SegmentSpec]
) -> FramePlan:
    """The video played once; segments get their audio, the rest passes through with the original track."""
    fps = video.fps
    video_end = video.frame_count / fps
    checked = sorted(
        (_check_segment(i, spec, video_end, fps, durations) for i, spec in enumerate(specs)),
        key=lambda seg: seg.start,
    )
    _check_overlaps(checked)
    original = _exact(durations[ORIGINAL]) if ORIGINAL in durations else None
    regions: list[_Region] = []
    frame, time = 0, Fraction(0)
    for seg in checked:
        first, stop = _frames_until(seg.start, fps), _frames_until(seg.end, fps)
        regions.append(_gap_region(frame, first, time, seg.start, original))
        audio_end = min(seg.audio_end, seg.audio_start + (seg.end - seg.start))
        regions.append(_Region(first, stop, True, seg.source, seg.audio_start, audio_end, seg.start))
        frame, time = stop, seg.end
    regions.append(_gap_region(frame, video.frame_count, time, video_end, original))
    return _assemble(fps, regions, lambda i: i)


def _gap_region(first: int, stop: int, start: Fraction, end: Fraction, original: Fraction | None) -> _Region:
    """Undriven frames between segments, hearing the video's own track where it has one."""
    if original is None:
        return _Region(first, stop, False, None, start, start, start)
    return _Region(first, stop, False, ORIGINAL, start, min(end, original), start)


def _check_segment(
    index: int, spec: SegmentSpec, video_end: Fraction, fps: Fraction, durations: Mapping[str, float]
) -> _Segment:
    """Validate one segment against the video and its audio; clamp ends that overshoot by under a frame."""
    start, end = _segment_time(index, "startTime", spec.start), _segment_time(index, "endTime", spec.end)
    if end <= start:
        raise _invalid(index, f"endTime {_fmt(end)} s must be greater than startTime {_fmt(start)} s")
    if start >= video_end:
        raise _invalid(
            index, f"startTime {_fmt(start)} s is not before the video's end ({_fmt(video_end)} s)"
        )
    if end > video_end + 1 / fps:
        raise _invalid(
            index,
            f"endTime {_fmt(end)} s is beyond the video's end ({_fmt(video_end)} s) by more than one frame",
        )
    if spec.ref_id not in durations:
        raise _invalid(index, f"refId {spec.ref_id!r} names no audio input")
    audio_start, audio_end = _audio_crop(index, spec, _exact(durations[spec.ref_id]), fps)
    return _Segment(index, start, min(end, video_end), spec.ref_id, audio_start, audio_end)


def _audio_crop(
    index: int, spec: SegmentSpec, duration: Fraction, fps: Fraction
) -> tuple[Fraction, Fraction]:
    """The part of the referenced audio a segment uses: all of it, or its crop clamped to the audio."""
    if spec.audio_start is None and spec.audio_end is None:
        return Fraction(0), duration
    if spec.audio_start is None or spec.audio_end is None:
        raise _invalid(index, "audioInput.startTime and audioInput.endTime must be given together")
    start = _segment_time(index, "audioInput.startTime", spec.audio_start)
    end = _segment_time(index, "audioInput.endTime", spec.audio_end)
    if end <= start:
        raise _invalid(
            index,
            f"audioInput.endTime {_fmt(end)} s must be greater than audioInput.startTime {_fmt(start)} s",
        )
    if end > duration + 1 / fps:
        raise _invalid(
            index,
            f"audioInput.endTime {_fmt(end)} s is beyond the end of audio {spec.ref_id!r} "
            f"({_fmt(duration)} s) by more than one frame",
        )
    return start, min(end, duration)


def _check_overlaps(ordered: Sequence[_Segment]) -> None:
    """Reject segments sharing any time; touching (end == next start) is fine."""
    for before, after in itertools.pairwise(ordered):
        if after.start < before.end:
            raise _invalid(
                after.index,
                f"startTime {_fmt(after.start)} s overlaps segments[{before.index}] "
                f"(endTime {_fmt(before.end)} s)",
            )


def _segment_time(index: int, name: str, value: float) -> Fraction:
    """A segment's time as an exact, finite, non-negative number."""
    if not math.isfinite(value) or value < 0:
        raise _invalid(index, f"{name} {value} must be a finite, non-negative number of seconds")
    return Fraction(value)


def _invalid(index: int, message: str) -> GenerationError:
    return GenerationError(ErrorCode.INVALID_SEGMENTS, f"segments[{index}]: {message}", rejected=True)


# --- shared -----------------------------------------------------------------------------------------------


def _assemble(fps: Fraction, regions: Sequence[_Region], source_frame: Callable[[int], int]) -> FramePlan:
    """Turn contiguous regions into per-frame steps and the soundtrack's clips."""
    steps = tuple(
        FrameStep(source_frame(i), _frame_audio(region, i, fps), region.driven)
        for region in regions
        for i in range(region.first, region.stop)
    )
    slack = _SLACK / fps
    clips = tuple(
        AudioClip(region.source, float(region.src_start), float(region.src_end), float(region.out_start))
        for region in regions
        if region.source is not None and region.src_end - region.src_start > slack
    )
    return FramePlan(fps, steps, clips)


def _frame_audio(region: _Region, i: int, fps: Fraction) -> AudioSpan | None:
    """The part of the region's audio heard during frame i, [i/fps, (i+1)/fps)."""
    if region.source is None:
        return None
    low, high = max(i / fps, region.out_start), min((i + 1) / fps, region.out_end)
    if high - low <= _SLACK / fps:
        return None
    shift = region.src_start - region.out_start
    return AudioSpan(region.source, float(low + shift), float(high + shift))


def _frames_until(seconds: Fraction, fps: Fraction) -> int:
    """Number of frames starting before ``seconds`` (so a partial last frame counts)."""
    return max(0, math.ceil(seconds * fps - _SLACK))


def _exact(seconds: float) -> Fraction:
    """A duration as an exact number; a negative or non-finite one is the caller's bug."""
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"duration must be finite and non-negative, got {seconds}")
    return Fraction(seconds)


def _fmt(seconds: Fraction) -> str:
    """Seconds for messages: up to 6 decimals, no trailing zeros."""
    return f"{float(seconds):.6f}".rstrip("0").rstrip(".")
