"""Per-video analysis (the animated face's landmarks in every frame), cached by content hash, bounded and
process-safe."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from lipsync_api.engine.arrays import Floats
from lipsync_api.engine.faces import FaceTracker, smooth_landmarks
from lipsync_api.engine.landmarks import LANDMARK_COUNT
from lipsync_api.engine.media import VideoStreamInfo, iter_video_frames
from lipsync_api.engine.request import SpeakerHint
from lipsync_api.engine.threads import prefetched

ANALYSIS_VERSION = "2"  # bump when the stored format or the tracking changes
LANDMARKS_FILE, META_FILE = "landmarks.npy", "meta.json"
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class VideoAnalysis:
    """The video's constant-rate geometry and the animated face's track."""

    directory: Path
    width: int
    height: int
    fps: Fraction
    frame_count: int
    faces_detected: int
    landmarks: Floats  # (frames, 468, 2), NaN where no face


def analysis_bytes(info: VideoStreamInfo) -> int:
    """Disk space an analysis of this video takes: its landmarks and a little metadata."""
    return info.frame_count * LANDMARK_COUNT * 2 * 4 + 4096


def content_key(path: Path, speaker: SpeakerHint | None) -> str:
    """Hash of the file's bytes and of what changes the analysis (version, speaker choice)."""
    digest = hashlib.blake2b(digest_size=20)
    digest.update(f"{ANALYSIS_VERSION}|{speaker!r}|".encode())
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def analyse_video(
    path: Path,
    info: VideoStreamInfo,
    speaker: SpeakerHint | None,
    directory: Path,
    progress: Progress | None = None,
) -> VideoAnalysis:
    """Track the face in every frame (decoding runs ahead on its own thread); store the result."""
    directory.mkdir(parents=True, exist_ok=True)
    track = np.full((info.frame_count, LANDMARK_COUNT, 2), np.nan, dtype=np.float32)
    with FaceTracker(info.width, info.height, speaker) as tracker:
        for index, frame in enumerate(prefetched(iter_video_frames(path, info))):
            points = tracker.track(index, frame)
            if points is not None:
                track[index] = points
            if progress is not None:
                progress(index + 1, info.frame_count)
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
    return VideoAnalysis(
        directory,
        meta["width"],
        meta["height"],
        Fraction(meta["fps"]),
        meta["frame_count"],
        meta["faces_detected"],
        landmarks,
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
                analyse_video(path, info, speaker, staging, progress)
                os.rename(staging, entry)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
            analysis = load_analysis(entry)  # read under the lock: an eviction cannot pull it away
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
        """(last use, bytes, directory) of every finished entry; one evicted meanwhile is skipped."""
        found = []
        for entry in self.root.iterdir():
            if entry.name.startswith("."):
                continue
            try:
                last_use = (entry / META_FILE).stat().st_mtime
                size = sum(f.stat().st_size for f in entry.iterdir())
            except FileNotFoundError:  # not finished, or removed by another process while we looked
                continue
            found.append((last_use, size, entry))
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
