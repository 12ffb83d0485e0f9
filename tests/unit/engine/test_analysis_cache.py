"""The content-addressed analysis cache (engine/analysis.py), with a fake analysis builder."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from lipsync_api.engine import analysis
from lipsync_api.engine.analysis import (
    LANDMARKS_FILE,
    META_FILE,
    AnalysisCache,
    VideoAnalysis,
    analysis_bytes,
    content_key,
    load_analysis,
)
from lipsync_api.engine.landmarks import LANDMARK_COUNT
from lipsync_api.engine.media import VideoStreamInfo
from lipsync_api.engine.request import SpeakerHint

Array = npt.NDArray[Any]

WIDTH, HEIGHT, FRAMES = 16, 12, 6


def stream_info(width: int = WIDTH, height: int = HEIGHT, frame_count: int = FRAMES) -> VideoStreamInfo:
    return VideoStreamInfo(
        codec="h264",
        width=width,
        height=height,
        fps=Fraction(25),
        frame_count=frame_count,
        duration=frame_count / 25,
        rotation=0,
        variable_rate=False,
    )


def content_tag(path: Path) -> int:
    """A small number that tells videos apart by their bytes (0 for a path that does not exist)."""
    return zlib.crc32(path.read_bytes()) % 1000 if path.exists() else 0


def landmark_pattern(info: VideoStreamInfo, tag: int) -> Array:
    """The track the fake stores: x = frame index, y = the video's content tag, in every point."""
    track = np.empty((info.frame_count, LANDMARK_COUNT, 2), dtype=np.float32)
    track[..., 0] = np.arange(info.frame_count, dtype=np.float32)[:, None]
    track[..., 1] = tag
    return track


class FakeBuilder:
    """Stands in for analyse_video: writes the two files load_analysis reads, logs each build to a file."""

    def __init__(self, log: Path, *, fail: bool = False, delay: float = 0.0) -> None:
        self.log, self.fail, self.delay = log, fail, delay

    def __call__(
        self,
        path: Path,
        info: VideoStreamInfo,
        speaker: SpeakerHint | None,
        directory: Path,
        progress: Callable[[int, int], None] | None = None,
    ) -> VideoAnalysis:
        with self.log.open("a") as log:  # one short append per build: atomic across processes
            log.write(f"{os.getpid()} {path.name}\n")
        time.sleep(self.delay)  # widens the window in which concurrent callers overlap
        directory.mkdir(parents=True, exist_ok=True)
        np.save(directory / LANDMARKS_FILE, landmark_pattern(info, content_tag(path)))
        if self.fail:  # after a partial write, as a tracker crashing mid-video would leave it
            raise RuntimeError("decoder exploded")
        meta = {
            "width": info.width,
            "height": info.height,
            "fps": str(info.fps),
            "frame_count": info.frame_count,
            "faces_detected": 1,
        }
        (directory / META_FILE).write_text(json.dumps(meta))
        return load_analysis(directory)


def builds(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return tmp_path / "builds.log"


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, log: Path) -> FakeBuilder:
    builder = FakeBuilder(log)
    monkeypatch.setattr(analysis, "analyse_video", builder)
    return builder


def video(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / "videos" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def entry_size(info: VideoStreamInfo, tmp_path: Path) -> int:
    """Bytes of one finished entry as the fake writes it."""
    directory = tmp_path / "measure"
    FakeBuilder(tmp_path / "measure.log")(tmp_path / "absent.mp4", info, None, directory)
    return sum(f.stat().st_size for f in directory.iterdir())


def cached_keys(cache: AnalysisCache) -> set[str]:
    return {entry.name for _, _, entry in cache.entries()}


def assert_usable(result: VideoAnalysis, info: VideoStreamInfo, video_path: Path) -> None:
    """``result`` describes ``info``'s geometry and holds the track built from ``video_path``'s bytes."""
    assert (result.width, result.height, result.frame_count) == (info.width, info.height, info.frame_count)
    assert result.landmarks.shape == (info.frame_count, LANDMARK_COUNT, 2)
    np.testing.assert_array_equal(result.landmarks, landmark_pattern(info, content_tag(video_path)))


# --- hits and misses ---------------------------------------------------------------------------


def test_second_request_for_the_same_file_is_a_hit(tmp_path: Path, fake: FakeBuilder, log: Path) -> None:
    cache = AnalysisCache(tmp_path / "cache", max_bytes=10**9)
    path, info = video(tmp_path, "a.mp4", b"video A"), stream_info()
    first, first_cached = cache.get_or_build(path, info, None)
    second, second_cached = cache.get_or_build(path, info, None)
    assert (first_cached, second_cached) == (False, True)
    assert len(builds(log)) == 1
    assert first.directory == second.directory == cache.root / content_key(path, None)
    assert second.fps == Fraction(25) and second.faces_detected == 1
    assert_usable(second, info, path)


def test_different_content_builds_again(tmp_path: Path, fake: FakeBuilder, log: Path) -> None:
    cache = AnalysisCache(tmp_path / "cache", max_bytes=10**9)
    info = stream_info()
    path_a, path_b = video(tmp_path, "a.mp4", b"video A"), video(tmp_path, "b.mp4", b"video B")
    assert content_tag(path_a) != content_tag(path_b)
    result_a, cached_a = cache.get_or_build(path_a, info, None)
    result_b, cached_b = cache.get_or_build(path_b, info, None)
    assert (cached_a, cached_b) == (False, False)
    assert len(builds(log)) == 2
    assert len(cached_keys(cache)) == 2
    assert_usable(result_a, info, path_a)
    assert_usable(result_b, info, path_b)
    assert_usable(cache.get_or_build(path_a, info, None)[0], info, path_a)  # each hit reads its own entry


def test_rewritten_file_at_the_same_path_builds_again(tmp_path: Path, fake: FakeBuilder, log: Path) -> None:
    cache = AnalysisCache(tmp_path / "cache", max_bytes=10**9)
    info = stream_info()
    cache.get_or_build(video(tmp_path, "a.mp4", b"first take"), info, None)
    _, cached = cache.get_or_build(video(tmp_path, "a.mp4", b"second take"), info, None)
    assert cached is False
    assert len(builds(log)) == 2


def test_same_content_under_another_path_is_a_hit(tmp_path: Path, fake: FakeBuilder, log: Path) -> None:
    cache = AnalysisCache(tmp_path / "cache", max_bytes=10**9)
    info = stream_info()
    cache.get_or_build(video(tmp_path, "a.mp4", b"same bytes"), info, None)
    copy = video(tmp_path, "copy/elsewhere.mov", b"same bytes")
    result, cached = cache.get_or_build(copy, info, None)
    assert cached is True
    assert len(builds(log)) == 1
    assert_usable(result, info, copy)


def test_speaker_hint_is_part_of_the_key(tmp_path: Path, fake: FakeBuilder, log: Path) -> None:
    cache = AnalysisCache(tmp_path / "cache", max_bytes=10**9)
    path, info = video(tmp_path, "a.mp4", b"two people"), stream_info()
    cache.get_or_build(path, info, None)
    _, cached = cache.get_or_build(path, info, SpeakerHint(frame_number=0, coordinates=(10.0, 5.0)))
    assert cached is False
    assert len(builds(log)) == 2


def test_content_key_depends_on_bytes_only(tmp_path: Path) -> None:
    a = video(tmp_path, "a.mp4", b"x" * 3_000_000)
    b = video(tmp_path, "sub/b.bin", b"x" * 3_000_000)
    c = video(tmp_path, "c.mp4", b"x" * 2_999_999 + b"y")
    assert content_key(a, None) == content_key(b, None) != content_key(c, None)


# --- size bound and eviction -------------------------------------------------------------------


def set_last_use(cache: AnalysisCache, path: Path, when: float) -> None:
    meta = cache.root / content_key(path, None) / META_FILE
    os.utime(meta, (when, when))


def test_eviction_removes_least_recently_used_first(tmp_path: Path, fake: FakeBuilder, log: Path) -> None:
    info = stream_info()
    size = entry_size(info, tmp_path)
    cache = AnalysisCache(tmp_path / "cache", max_bytes=int(2.5 * size))  # room for two entries
    paths = {name: video(tmp_path, f"{name}.mp4", name.encode() * 10) for name in "ABCD"}
    key = {name: content_key(path, None) for name, path in paths.items()}

    cache.get_or_build(paths["A"], info, None)
    cache.get_or_build(paths["B"], info, None)
    set_last_use(cache, paths["A"], 1_000_000)
    set_last_use(cache, paths["B"], 2_000_000)
    cache.get_or_build(paths["C"], info, None)
    assert cached_keys(cache) == {key["B"], key["C"]}
    assert sum(size for _, size, _ in cache.entries()) <= cache.max_bytes

    # B is older than C on disk, but a hit makes it the most recently used.
    set_last_use(cache, paths["B"], 1_000_000)
    set_last_use(cache, paths["C"], 2_000_000)
    _, cached = cache.get_or_build(paths["B"], info, None)
    assert cached is True
    cache.get_or_build(paths["D"], info, None)
    assert cached_keys(cache) == {key["B"], key["D"]}
    assert sum(size for _, size, _ in cache.entries()) <= cache.max_bytes
    assert len(builds(log)) == 4
    assert not any(p.name.startswith(".building-") for p in cache.root.iterdir())


def test_evict_trims_an_overfull_cache_to_its_bound(tmp_path: Path, fake: FakeBuilder) -> None:
    info = stream_info()
    size = entry_size(info, tmp_path)
    big = AnalysisCache(tmp_path / "cache", max_bytes=10**9)
    paths = [video(tmp_path, f"{k}.mp4", bytes([k]) * 5) for k in range(5)]
    for k, path in enumerate(paths):
        big.get_or_build(path, info, None)
        set_last_use(big, path, 1_000_000 + k)
    small = AnalysisCache(tmp_path / "cache", max_bytes=2 * size)
    small.evict()
    assert cached_keys(small) == {content_key(p, None) for p in paths[3:]}
    assert sum(s for _, s, _ in small.entries()) <= small.max_bytes


def test_fits_compares_the_stored_analysis_with_the_bound(tmp_path: Path) -> None:
    info = stream_info(width=64, height=48, frame_count=10)
    exact = analysis_bytes(info)
    assert AnalysisCache(tmp_path / "a", max_bytes=exact).fits(info)
    assert AnalysisCache(tmp_path / "b", max_bytes=10 * exact).fits(info)
    assert not AnalysisCache(tmp_path / "c", max_bytes=exact - 1).fits(info)
    assert not AnalysisCache(tmp_path / "d", max_bytes=0).fits(info)


def test_an_analysis_that_fits_stays_within_the_bound(tmp_path: Path, fake: FakeBuilder) -> None:
    info = stream_info(width=640, height=360, frame_count=20)
    cache = AnalysisCache(tmp_path / "cache", max_bytes=analysis_bytes(info))
    assert cache.fits(info)
    cache.get_or_build(video(tmp_path, "a.mp4", b"a"), info, None)
    assert sum(size for _, size, _ in cache.entries()) <= cache.max_bytes


def test_returned_analysis_keeps_its_landmarks_after_eviction(tmp_path: Path, fake: FakeBuilder) -> None:
    # Nothing on disk is needed once get_or_build returns: the track is in memory.
    info = stream_info()
    cache = AnalysisCache(tmp_path / "cache", max_bytes=int(1.5 * entry_size(info, tmp_path)))
    path_a = video(tmp_path, "a.mp4", b"a")
    first, _ = cache.get_or_build(path_a, info, None)
    cache.get_or_build(video(tmp_path, "b.mp4", b"b"), info, None)  # another request evicts the first
    assert not first.directory.exists()
    assert_usable(first, info, path_a)


def test_a_hit_returned_before_eviction_keeps_its_landmarks(tmp_path: Path, fake: FakeBuilder) -> None:
    info = stream_info()
    cache = AnalysisCache(tmp_path / "cache", max_bytes=int(1.5 * entry_size(info, tmp_path)))
    path_a = video(tmp_path, "a.mp4", b"a")
    cache.get_or_build(path_a, info, None)
    hit, cached = cache.get_or_build(path_a, info, None)
    assert cached is True
    cache.get_or_build(video(tmp_path, "b.mp4", b"b"), info, None)
    assert not hit.directory.exists()
    assert_usable(hit, info, path_a)


def test_entry_holds_only_landmarks_and_meta(tmp_path: Path, fake: FakeBuilder) -> None:
    info = stream_info()
    cache = AnalysisCache(tmp_path / "cache", max_bytes=10**9)
    result, _ = cache.get_or_build(video(tmp_path, "a.mp4", b"a"), info, None)
    assert sorted(f.name for f in result.directory.iterdir()) == sorted([LANDMARKS_FILE, META_FILE])
    assert not hasattr(result, "frames")


def test_analysis_bytes_counts_the_track_not_the_picture(tmp_path: Path) -> None:
    small, large = stream_info(16, 12, 50), stream_info(1920, 1080, 50)
    assert analysis_bytes(small) == analysis_bytes(large)
    assert analysis_bytes(stream_info(frame_count=100)) > analysis_bytes(stream_info(frame_count=50))
    assert entry_size(small, tmp_path) <= analysis_bytes(small)


# --- failures ----------------------------------------------------------------------------------


def test_failed_build_leaves_nothing_and_the_next_call_rebuilds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, log: Path
) -> None:
    cache = AnalysisCache(tmp_path / "cache", max_bytes=10**9)
    path, info = video(tmp_path, "a.mp4", b"flaky"), stream_info()
    monkeypatch.setattr(analysis, "analyse_video", FakeBuilder(log, fail=True))
    with pytest.raises(RuntimeError, match="decoder exploded"):
        cache.get_or_build(path, info, None)
    assert not (cache.root / content_key(path, None)).exists()
    assert [p.name for p in cache.root.iterdir() if not p.name.endswith(".lock")] == []
    assert cache.entries() == []

    monkeypatch.setattr(analysis, "analyse_video", FakeBuilder(log))
    result, cached = cache.get_or_build(path, info, None)
    assert cached is False
    assert len(builds(log)) == 2
    assert_usable(result, info, path)


# --- concurrency -------------------------------------------------------------------------------


def test_threads_requesting_one_video_share_a_single_build(
    tmp_path: Path, log: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(analysis, "analyse_video", FakeBuilder(log, delay=0.2))
    cache = AnalysisCache(tmp_path / "cache", max_bytes=10**9)
    path, info = video(tmp_path, "a.mp4", b"popular"), stream_info()
    barrier = threading.Barrier(4)
    results: list[tuple[VideoAnalysis, bool]] = []
    errors: list[BaseException] = []

    def request() -> None:
        try:
            barrier.wait(timeout=30)
            results.append(cache.get_or_build(path, info, None))
        except BaseException as error:  # surfaced below: a thread's exception would otherwise vanish
            errors.append(error)

    threads = [threading.Thread(target=request) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert len(results) == 4
    assert len(builds(log)) == 1
    assert sorted(cached for _, cached in results) == [False, True, True, True]
    for result, _ in results:
        assert_usable(result, info, path)


def _process_request(
    cache: AnalysisCache, path: Path, info: VideoStreamInfo, barrier: Any, queue: Any
) -> None:
    try:
        barrier.wait(timeout=30)
        result, cached = cache.get_or_build(path, info, None)
        ok = bool(np.array_equal(result.landmarks, landmark_pattern(info, content_tag(path))))
        queue.put((cached, result.frame_count, ok))
    except BaseException as error:  # reported to the parent, which would otherwise wait for a result
        queue.put((None, 0, repr(error)))


def test_processes_requesting_one_video_share_a_single_build(
    tmp_path: Path, log: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # fork: the children inherit the monkeypatched builder.
    monkeypatch.setattr(analysis, "analyse_video", FakeBuilder(log, delay=0.2))
    context = multiprocessing.get_context("fork")
    path, info = video(tmp_path, "a.mp4", b"popular across workers"), stream_info()
    barrier, queue = context.Barrier(3), context.Queue()
    processes = [
        context.Process(
            target=_process_request,
            args=(AnalysisCache(tmp_path / "cache", max_bytes=10**9), path, info, barrier, queue),
        )
        for _ in range(3)
    ]
    for process in processes:
        process.start()
    outcomes = [queue.get(timeout=60) for _ in processes]
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    assert len(builds(log)) == 1
    assert sorted(outcomes) == [(False, FRAMES, True), (True, FRAMES, True), (True, FRAMES, True)]
    assert len(AnalysisCache(tmp_path / "cache", max_bytes=10**9).entries()) == 1


def test_entries_tolerates_an_entry_evicted_while_listing(
    tmp_path: Path, fake: FakeBuilder, monkeypatch: pytest.MonkeyPatch
) -> None:
    info = stream_info()
    cache = AnalysisCache(tmp_path / "cache", max_bytes=10**9)
    path_a, path_b = video(tmp_path, "a.mp4", b"a"), video(tmp_path, "b.mp4", b"b")
    cache.get_or_build(path_a, info, None)
    cache.get_or_build(path_b, info, None)
    victim = content_key(path_a, None)
    listing = Path.iterdir

    def racing_iterdir(self: Path) -> Iterator[Path]:
        """Lists a directory; the victim entry is then removed, as another process's eviction would."""
        found = list(listing(self))
        if self.name == victim:
            shutil.rmtree(self)
        yield from found

    monkeypatch.setattr(Path, "iterdir", racing_iterdir)
    assert cached_keys(cache) == {content_key(path_b, None)}


# --- reading an entry back ---------------------------------------------------------------------


def test_load_analysis_reads_back_meta_and_landmarks(tmp_path: Path) -> None:
    info = stream_info(width=10, height=6, frame_count=5)
    directory = tmp_path / "entry"
    path = video(tmp_path, "v.mp4", b"some video")
    FakeBuilder(tmp_path / "log")(path, info, None, directory)
    loaded = load_analysis(directory)
    assert loaded.directory == directory
    assert (loaded.width, loaded.height, loaded.fps, loaded.frame_count) == (10, 6, Fraction(25), 5)
    assert loaded.faces_detected == 1
    assert loaded.landmarks.dtype == np.float32
    for index in (3, 0, 4, 1, 2):
        assert (loaded.landmarks[index, :, 0] == index).all()
    assert_usable(loaded, info, path)


def test_load_analysis_keeps_frames_without_a_face_as_nan(tmp_path: Path) -> None:
    info = stream_info(frame_count=4)
    directory = tmp_path / "entry"
    FakeBuilder(tmp_path / "log")(tmp_path / "absent.mp4", info, None, directory)
    track = landmark_pattern(info, 0)
    track[2] = np.nan
    np.save(directory / LANDMARKS_FILE, track)
    loaded = load_analysis(directory)
    assert np.isnan(loaded.landmarks[2]).all()
    assert np.isfinite(np.delete(loaded.landmarks, 2, axis=0)).all()
