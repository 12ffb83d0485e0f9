"""Estimate math (pure): output frames as the engine plans them, cost from a price per output second.

The frame count equals ``plan_timeline(...).frame_count`` for the same durations (the unit tests hold
it to that), but is computed without building the per-frame plan: planning costs milliseconds per
second of output, too slow for a 1000-line dry run. It uses the planner's own rules to stay equal.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Protocol

from lipsync_api.engine.request import SegmentSpec, SyncMode
from lipsync_api.engine.timeline import (
    VideoTiming,
    _check_overlaps,
    _check_segment,
    _frames_until,
    _output_frames,
)
from lipsync_api.errors import ErrorCode, InvalidRequestError

if TYPE_CHECKING:
    from lipsync_api.domain.batchfile import BatchLine
    from lipsync_api.domain.generation_service import ValidPayload

COST_DECIMALS = 4
MAX_LINE_WARNINGS = 20


@dataclass(frozen=True)
class Estimate:
    """What one generation will produce: its frame count at ``fps`` and its cost in USD."""

    frame_count: int
    fps: Fraction
    cost: float

    @property
    def seconds(self) -> float:
        """Output length in seconds."""
        return float(self.frame_count / self.fps)

    def wire(self) -> dict[str, Any]:
        """The SDK's ``EstimatedGenerationCost``."""
        return {"estimatedFrameCount": self.frame_count, "estimatedGenerationCost": self.cost}


def output_frames(
    video: VideoTiming,
    audio_seconds: Mapping[str, float],
    sync_mode: SyncMode,
    segments: Sequence[SegmentSpec] = (),
    main_audio: str = "main",
) -> int:
    """The number of frames ``plan_timeline`` plans; invalid segments raise as they do there."""
    if video.frame_count < 1 or video.fps <= 0:
        raise ValueError(f"video timing needs frame_count >= 1 and fps > 0, got {video}")
    if segments:
        # The video plays once: its segments change the sound, not the length.
        video_end = video.frame_count / video.fps
        checked = [
            _check_segment(i, spec, video_end, video.fps, audio_seconds) for i, spec in enumerate(segments)
        ]
        _check_overlaps(sorted(checked, key=lambda segment: segment.start))
        return video.frame_count
    audio_frames = _frames_until(Fraction(audio_seconds[main_audio]), video.fps)
    return _output_frames(sync_mode, video.frame_count, audio_frames)


def price_per_second(model: str, prices: Mapping[str, float]) -> float:
    """USD per output second of ``model``; a model without a price is a 400."""
    price = prices.get(model)
    if price is None:
        raise InvalidRequestError(
            f"no price is configured for model {model!r} (setting model_prices)",
            error_code=ErrorCode.UNSUPPORTED_MODEL.value,
        )
    return price


def estimate(frame_count: int, fps: Fraction, price: float) -> Estimate:
    """The estimate for ``frame_count`` frames at ``fps``, priced per output second, cost rounded."""
    return Estimate(frame_count, fps, round(float(frame_count / fps) * price, COST_DECIMALS))


@dataclass(frozen=True)
class LineOutcome:
    """One batch line's estimate (``extrapolated`` when its media were not all probed), or why it has none."""

    line: int
    estimate: Estimate | None
    problem: str | None = None
    extrapolated: bool = False


@dataclass(frozen=True)
class Sampling:
    """How many of a batch's distinct media URLs its estimates read (probed now or known from before)."""

    probed: int
    distinct: int


@dataclass(frozen=True)
class LineEstimates:
    """Each line's outcome, in line order; ``sampling`` is set when some lines were extrapolated."""

    outcomes: list[LineOutcome]
    sampling: Sampling | None = None


class LineEstimator(Protocol):
    """What a batch dry run needs: each line's estimate, or why it has none."""

    async def estimate_lines(self, lines: Sequence[BatchLine[ValidPayload]]) -> LineEstimates: ...


@dataclass(frozen=True)
class Unprobed:
    """A line whose media were not all probed: its video (lines of one template share a length), its price."""

    line: int
    video: str
    price: float


def extrapolate(estimated: Sequence[tuple[str, Estimate]], unprobed: Sequence[Unprobed]) -> list[LineOutcome]:
    """Outcomes of the ``unprobed`` lines from the ``estimated`` ones, given as (video, estimate) pairs.

    A line gets the mean frames and output seconds of the estimated lines with the same video, or of all
    estimated lines when none has its video, priced at its own model's price; none when nothing was
    estimated.
    """
    groups: dict[str, list[Estimate]] = {}
    for video, found in estimated:
        groups.setdefault(video, []).append(found)
    means = {video: _mean(group) for video, group in groups.items()}
    overall = _mean([found for _, found in estimated]) if estimated else None
    outcomes = []
    for line in unprobed:
        mean = means.get(line.video, overall)
        if mean is None:
            outcomes.append(LineOutcome(line.line, None, "none of the probed media could be read"))
            continue
        frames, fps, seconds = mean
        guess = Estimate(frames, fps, round(seconds * line.price, COST_DECIMALS))
        outcomes.append(LineOutcome(line.line, guess, extrapolated=True))
    return outcomes


def _mean(group: Sequence[Estimate]) -> tuple[int, Fraction, float]:
    """Mean frames (rounded), the most common rate and mean output seconds of ``group``."""
    frames = round(sum(found.frame_count for found in group) / len(group))
    fps = Counter(found.fps for found in group).most_common(1)[0][0]
    return frames, fps, sum(found.seconds for found in group) / len(group)


def batch_estimate_fields(
    outcomes: Sequence[LineOutcome], sampling: Sampling | None = None
) -> dict[str, Any]:
    """The dry run's estimate fields: sums over the estimated lines, a warning per line that was not.

    At most ``MAX_LINE_WARNINGS`` line warnings, then one saying how many lines the sums cover, and one
    saying how many lines were extrapolated from how many probed media URLs. With no line estimated the
    sums are null.
    """
    estimated = [outcome.estimate for outcome in outcomes if outcome.estimate is not None]
    failed = [outcome for outcome in outcomes if outcome.estimate is None]
    warnings = [f"line {outcome.line}: {outcome.problem}" for outcome in failed[:MAX_LINE_WARNINGS]]
    if failed:
        listed = f"; the first {MAX_LINE_WARNINGS} are listed" if len(failed) > MAX_LINE_WARNINGS else ""
        warnings.append(f"estimates cover {len(estimated)} of {len(outcomes)} lines{listed}")
    guessed = sum(outcome.extrapolated for outcome in outcomes)
    if sampling is not None and guessed:
        warnings.append(
            f"estimates extrapolated from {sampling.probed} probed of {sampling.distinct} media URLs: "
            f"{guessed} of {len(outcomes)} lines are the mean of the probed lines with their video"
        )
    return {
        "estimatedFrameCount": sum(e.frame_count for e in estimated) if estimated else None,
        "estimatedGenerationCost": (
            round(sum(e.cost for e in estimated), COST_DECIMALS) if estimated else None
        ),
        "warnings": warnings,
    }
