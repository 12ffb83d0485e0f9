"""The render pass: every planned frame read, its mouth re-rendered, and encoded with the soundtrack."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

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
                if step.driven and np.isfinite(points[0, 0]):
                    opening, spread = float(targets.opening[index]), float(targets.spread[index])
                    frame = renderer.render(frame, points, opening, spread)
                    animated += 1
                start, stop = chunks[index]
                encoder.put((frame, track[:, start:stop]))
                if progress is not None:
                    progress("render", index + 1, plan.frame_count)
        finally:
            encoder.finish()
    return animated
