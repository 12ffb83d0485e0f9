"""Assemble the output soundtrack from the timeline's audio clips."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import cast

import numpy as np

from lipsync_api.engine.arrays import Floats
from lipsync_api.engine.timeline import AudioClip


def assemble(
    clips: Sequence[AudioClip], sources: Mapping[str, Floats], rate: int, channels: int, duration: float
) -> Floats:
    """A (channels, samples) float32 track of ``duration`` seconds: each clip placed, silence between."""
    total = round(duration * rate)
    track = np.zeros((channels, total), dtype=np.float32)
    for clip in clips:
        source = sources.get(clip.source)
        if source is None:
            continue
        start, stop = round(clip.src_start * rate), round(clip.src_end * rate)
        piece = source[:, start : min(stop, source.shape[1])]
        at = round(clip.out_start * rate)
        length = max(0, min(piece.shape[1], total - at))
        track[:, at : at + length] = _with_channels(piece[:, :length], channels)
    return track


def _with_channels(samples: Floats, channels: int) -> Floats:
    """Mix down or duplicate so the samples have ``channels`` rows."""
    if samples.shape[0] == channels:
        return samples
    if channels == 1:
        return cast(Floats, samples.mean(axis=0, keepdims=True))  # float32 stays float32
    return np.repeat(samples[:1], channels, axis=0)


def frame_chunks(track: Floats, rate: int, fps: float, frame_count: int) -> list[tuple[int, int]]:
    """Sample ranges of the track that belong to each output frame (contiguous, covering all of it)."""
    edges = [round(i * rate / fps) for i in range(frame_count)] + [track.shape[1]]
    return list(itertools.pairwise(edges))
