"""The render pass: every planned frame read, its mouth re-rendered, and encoded with the soundtrack."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import cast

import cv2
import numpy as np

from lipsync_api.engine.analysis import VideoAnalysis
from lipsync_api.engine.arrays import Floats, Image
from lipsync_api.engine.frames import FrameSource
from lipsync_api.engine.media import Mp4Writer
from lipsync_api.engine.render import MouthRenderer
from lipsync_api.engine.request import EngineConfig
from lipsync_api.engine.soundtrack import frame_chunks
from lipsync_api.engine.speech import MouthTargets
from lipsync_api.engine.threads import Consumer
from lipsync_api.engine.timeline import FramePlan

Progress = Callable[[str, int, int], None]
ENCODE_QUEUE = 3  # frames waiting for the encoder thread: enough to overlap, little memory
FADE_FRAMES = 3  # the new mouth fades in and out over this many frames where it starts or stops


def mouth_weights(animated: Sequence[bool], fade: int = FADE_FRAMES) -> Floats:
    """How much of each frame is the re-rendered mouth: 0 where it is not animated, ramping up to 1
    over ``fade`` frames next to such a frame (segment edges, frames without a face), so it never pops."""
    flags = np.asarray(animated, dtype=bool)
    weights = np.zeros(len(flags), dtype=np.float32)
    if not flags.any():
        return weights
    still = np.flatnonzero(~flags)
    if still.size == 0:
        weights[:] = 1.0
        return weights
    index = np.arange(len(flags))
    after = np.searchsorted(still, index)
    before_gap = index - still[np.clip(after - 1, 0, len(still) - 1)]
    after_gap = still[np.clip(after, 0, len(still) - 1)] - index
    before_gap = np.where(after > 0, before_gap, len(flags))
    after_gap = np.where(after < len(still), after_gap, len(flags))
    distance = np.minimum(before_gap, after_gap)  # frames to the nearest frame that is not animated
    weights[:] = np.clip(distance / (fade + 1), 0.0, 1.0)
    weights[~flags] = 0.0
    return weights


def write_output(
    output_path: Path,
    plan: FramePlan,
    analysis: VideoAnalysis,
    frames: FrameSource,
    track: Floats,
    rate: int,
    channels: int,
    targets: MouthTargets,
    config: EngineConfig,
    progress: Progress | None,
) -> int:
    """Encode every planned frame, the mouth re-rendered where driven and a face shows; returns how many."""
    renderer = MouthRenderer(analysis.width, analysis.height)
    chunks = frame_chunks(track, rate, float(plan.fps), plan.frame_count)
    face = np.isfinite(analysis.landmarks[:, 0, 0])
    weights = mouth_weights([step.driven and bool(face[step.source_frame]) for step in plan.frames])
    animated = 0
    writer = Mp4Writer(
        output_path,
        analysis.width,
        analysis.height,
        plan.fps,
        crf=config.encode_crf,
        preset=config.encode_preset,
        audio_rate=rate,
        audio_channels=channels,
    )

    def encode(item: tuple[Image, Floats]) -> None:
        writer.add_video(item[0])
        writer.add_audio(item[1])

    with writer:
        encoder: Consumer[tuple[Image, Floats]] = Consumer(encode, ENCODE_QUEUE)
        try:
            for index, step in enumerate(plan.frames):
                frame = frames.get(step.source_frame)
                points = analysis.landmarks[step.source_frame]
                weight = float(weights[index])
                if weight > 0:
                    opening, spread = float(targets.opening[index]), float(targets.spread[index])
                    rendered = renderer.render(frame, points, opening, spread)
                    frame = (
                        rendered
                        if weight >= 1
                        else cast(Image, cv2.addWeighted(frame, 1 - weight, rendered, weight, 0))
                    )
                    animated += 1
                start, stop = chunks[index]
                encoder.put((frame, track[:, start:stop]))
                if progress is not None:
                    progress("render", index + 1, plan.frame_count)
        finally:
            encoder.finish()
    return animated
