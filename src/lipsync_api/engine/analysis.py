"""Per-video analysis (decoded frames + face track), cached by content hash, bounded and process-safe."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from lipsync_api.engine.faces import FaceTracker, smooth_landmarks
from lipsync_api.engine.landmarks import LANDMARK_COUNT
from lipsync_api.engine.media import VideoStreamInfo, iter_video_frames
from lipsync_api.engine.request import SpeakerHint
from lipsync_api.engine.threads import Consumer, prefetched

ANALYSIS_VERSION = "1"  # bump when the stored format or the tracking changes
FRAMES_FILE, LANDMARKS_FILE, META_FILE = "frames.i420", "landmarks.npy", "meta.json"
Progress = Callable[[int, int], None]


class FrameStore:
    """Random access to the I420 frames of one raw file, one frame in memory at a time.

    The descriptor is opened at once and kept: the frames stay readable even if the cache evicts
    (unlinks) the file while a render is using it.
    """

    def __init__(self, path: Path, width: int, height: int) -> None:
        self._fd = os.open(path, os.O_RDONLY)
        self._shape = (height * 3 // 2, width)
        self._size = width * height * 3 // 2

    def read(self, index: int) -> np.ndarray:
        """Frame ``index`` as a writable (height * 3 // 2, width) uint8 array."""
        data = os.pread(self._fd, self._size, index * self._size)
        if len(data) != self._size:
            raise IndexError(f"frame {index} is beyond the end of the frame store")
        return np.frombuffer(data, dtype=np.uint8).reshape(self._shape).copy()

    def close(self) -> None:
        """Release the file descriptor (idempotent)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


@dataclass(frozen=True)
class VideoAnalysis:
    """A video decoded to constant-rate upright I420 frames on disk, plus the animated face's track."""

    directory: Path
    width: int
    height: int
    fps: Fraction
    frame_count: int
    faces_detected: int
    landmarks: np.ndarray  # (frames, 468, 2), NaN where no face
    frames: FrameStore = field(compare=False)

    def close(self) -> None:
        """Release the frame store."""
        self.frames.close()

    def __enter__(self) -> VideoAnalysis:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def analysis_bytes(info: VideoStreamInfo) -> int:
    """Disk space an analysis of this video takes: its frames and its landmarks."""
    frame = info.width * info.height * 3 // 2
    return info.frame_count * (frame + LANDMARK_COUNT * 2 * 4) + 4096


def content_key(path: Path, speaker: SpeakerHint | None) -> str:
    """Hash of the file's bytes and of what changes the analysis (version, speaker choice)."""
    digest = hashlib.blake2b(digest_size=20)
    digest.update(f"{ANALYSIS_VERSION}|{speaker!r}|".encode())
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def store_frames(
    path: Path,
    info: VideoStreamInfo,
    directory: Path,
    on_frame: Callable[[int, np.ndarray], None] | None = None,
) -> None:
    """Decode every constant-rate frame of ``path`` into ``directory``'s frame file, streaming.

    Decoding runs ahead on one thread and writing trails on another, so ``on_frame`` (face tracking)
    overlaps with both.
    """
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / FRAMES_FILE, "wb") as out:
        writer: Consumer[np.ndarray] = Consumer(lambda frame: out.write(memoryview(frame)), depth=4)
        try:
            for index, frame in enumerate(prefetched(iter_video_frames(path, info))):
                writer.put(frame)
                if on_frame is not None:
                    on_frame(index, frame)
        finally:
            writer.finish()


def analyse_video(
    path: Path,
    info: VideoStreamInfo,
    speaker: SpeakerHint | None,
    directory: Path,
    progress: Progress | None = None,
) -> VideoAnalysis:
    """Decode every frame to ``directory`` and track the face in each: one streaming pass."""
    track = np.full((info.frame_count, LANDMARK_COUNT, 2), np.nan, dtype=np.float32)
    with FaceTracker(info.width, info.height, speaker) as tracker:

        def on_frame(index: int, frame: np.ndarray) -> None:
            points = tracker.track(index, frame)
            if points is not None:
                track[index] = points
            if progress is not None:
                progress(index + 1, info.frame_count)

        store_frames(path, info, directory, on_frame)
        faces = tracker.faces_detected
    landmarks = smooth_landmarks(track)
    np.save(directory / LANDMARKS_FILE, landmarks)
    meta = {
        "width": info.width,
        "height": info.height,
        "fps": str(info.fps),
        "frame_count": info.frame_count,
        "faces_detected": faces,
    }
    (directory / META_FILE).write_text(json.dumps(meta))
    return load_analysis(directory)


def load_analysis(directory: Path) -> VideoAnalysis:
    """Open a finished analysis directory."""
    meta = json.loads((directory / META_FILE).read_text())
    landmarks = np.load(directory / LANDMARKS_FILE)
    frames = FrameStore(directory / FRAMES_FILE, meta["width"], meta["height"])
    return VideoAnalysis(
        directory,
        meta["width"],
        meta["height"],
        Fraction(meta["fps"]),
        meta["frame_count"],
        meta["faces_detected"],
        landmarks,
        frames,
    )


class AnalysisCache:
    """Analyses keyed by content hash under ``root``; least recently used evicted past ``max_bytes``.

    Safe across threads and processes: a per-key lock file makes concurrent requests for one video
    wait for a single build, entries appear by atomic rename, and readers keep working on an entry
    evicted under them because their file descriptors stay valid after unlink.
    """

    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes
        root.mkdir(parents=True, exist_ok=True)

    def fits(self, info: VideoStreamInfo) -> bool:
        """Whether an analysis of this video could be kept within the size bound at all."""
        return analysis_bytes(info) <= self.max_bytes

    def get_or_build(
        self, path: Path, info: VideoStreamInfo, speaker: SpeakerHint | None, progress: Progress | None = None
    ) -> tuple[VideoAnalysis, bool]:
        """The cached analysis of ``path`` (and True), or a freshly built and stored one (and False)."""
        key = content_key(path, speaker)
        entry = self.root / key
        with self._locked(key):
            if (entry / META_FILE).exists():
                os.utime(entry / META_FILE)
                return load_analysis(entry), True
            staging = self.root / f".building-{uuid.uuid4().hex}"
            try:
                analyse_video(path, info, speaker, staging, progress).close()
                os.rename(staging, entry)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
            analysis = load_analysis(entry)  # opened under the lock: eviction can no longer pull it away
        self.evict(keep=key)
        return analysis, False

    @contextmanager
    def _locked(self, key: str) -> Iterator[None]:
        with open(self.root / f".{key}.lock", "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def entries(self) -> list[tuple[float, int, Path]]:
        """(last use, bytes, directory) of every finished entry."""
        found = []
        for entry in self.root.iterdir():
            meta = entry / META_FILE
            if entry.name.startswith(".") or not meta.exists():
                continue
            size = sum(f.stat().st_size for f in entry.iterdir())
            found.append((meta.stat().st_mtime, size, entry))
        return found

    def evict(self, keep: str | None = None) -> None:
        """Remove least recently used entries until the total fits ``max_bytes``."""
        entries = sorted(self.entries())
        total = sum(size for _, size, _ in entries)
        for _, size, entry in entries:
            if total <= self.max_bytes:
                break
            if entry.name == keep:
                continue
            with self._locked(entry.name):
                shutil.rmtree(entry, ignore_errors=True)
            total -= size
