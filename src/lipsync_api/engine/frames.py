"""Source frames in the order a frame plan asks for them, with memory that does not grow with length.

Most plans read the video forwards (cut_off, silence, remap, segments) or restart it (loop): those are
decoded again as they are needed, which costs less than storing raw frames. Plans that also read it
backwards (bounce) spool the decoded frames to a raw file in the work folder for random access.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from lipsync_api.engine.arrays import Image
from lipsync_api.engine.media import VideoStreamInfo, iter_video_frames
from lipsync_api.engine.threads import Consumer, prefetched

SPOOL_FILE = "frames.i420"


class FrameSource(Protocol):
    """Gives frame ``index`` of a video (a read-only array the caller must not modify)."""

    def get(self, index: int) -> Image: ...

    def close(self) -> None: ...


class SequentialFrames:
    """Decodes forwards, a few frames ahead on a thread; a request for an earlier frame restarts."""

    def __init__(self, path: Path, info: VideoStreamInfo) -> None:
        self._path, self._info = path, info
        self._frames: Iterator[Image] | None = None
        self._position = -1
        self._current: Image | None = None

    def get(self, index: int) -> Image:
        """Frame ``index``; repeats and forward skips are cheap, going back re-decodes from the start."""
        if self._frames is None or index < self._position:
            self.close()
            self._frames, self._position = prefetched(iter_video_frames(self._path, self._info)), -1
        while self._position < index:
            self._current = next(self._frames)
            self._position += 1
        assert self._current is not None
        return self._current

    def close(self) -> None:
        """Stop the decoder thread."""
        if self._frames is not None:
            self._frames.close()  # type: ignore[attr-defined]
            self._frames = None


class SpooledFrames:
    """All frames decoded once to a raw I420 file, then read at random, one frame at a time."""

    def __init__(self, path: Path, info: VideoStreamInfo, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        spool = directory / SPOOL_FILE
        spool_frames(path, info, spool)
        self._fd = os.open(spool, os.O_RDONLY)
        self._shape = (info.height * 3 // 2, info.width)
        self._size = info.width * info.height * 3 // 2

    def get(self, index: int) -> Image:
        """Frame ``index``."""
        data = os.pread(self._fd, self._size, index * self._size)
        if len(data) != self._size:
            raise IndexError(f"frame {index} is beyond the end of the video")
        return np.frombuffer(data, dtype=np.uint8).reshape(self._shape)

    def close(self) -> None:
        """Release the spool file (idempotent)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def spool_frames(path: Path, info: VideoStreamInfo, spool: Path) -> None:
    """Decode every constant-rate frame of ``path`` into one raw file; decoding and writing overlap."""
    with open(spool, "wb") as out:

        def write(frame: Image) -> None:
            out.write(frame.data)

        writer: Consumer[Image] = Consumer(write, depth=4)
        try:
            for frame in prefetched(iter_video_frames(path, info)):
                writer.put(frame)
        finally:
            writer.finish()


def reads_backwards(order: Sequence[int]) -> bool:
    """Whether a frame order steps back anywhere other than a restart from frame 0."""
    return any(b < a and b != 0 for a, b in itertools.pairwise(order))


def open_frames(path: Path, info: VideoStreamInfo, order: Sequence[int], work_dir: Path) -> FrameSource:
    """The cheapest source of ``path``'s frames for reading them in ``order``."""
    if reads_backwards(order):
        return SpooledFrames(path, info, work_dir)
    return SequentialFrames(path, info)
