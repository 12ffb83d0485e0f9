"""Source frames in plan order (engine/frames.py), on a synthetic clip that encodes each frame's index."""

from __future__ import annotations

import inspect
import threading
from collections.abc import Iterator, Sequence
from contextlib import closing
from fractions import Fraction
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from lipsync_api.engine import frames as frames_module
from lipsync_api.engine.frames import (
    SPOOL_FILE,
    FrameSource,
    SequentialFrames,
    SpooledFrames,
    open_frames,
    reads_backwards,
)
from lipsync_api.engine.media import VideoStreamInfo, i420_to_rgb, iter_video_frames, probe
from lipsync_api.engine.request import SegmentSpec, SyncMode
from lipsync_api.engine.timeline import VideoTiming, plan_timeline
from tests.support import media_factory as mf

WIDTH, HEIGHT, FRAMES, FPS = 160, 120, 12, 25  # FRAMES < 32: frame_index is taken modulo 32
I420_SHAPE = (HEIGHT * 3 // 2, WIDTH)
WAIT = 10.0  # seconds: only a bound on how long a broken implementation may hang the suite
HANG = 2.0  # seconds after which a close that should return at once counts as hung
Image = npt.NDArray[np.uint8]


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("frames") / "clip.mp4"
    return mf.write_video(path, width=WIDTH, height=HEIGHT, fps=FPS, frames=FRAMES)


@pytest.fixture(scope="module")
def info(clip: Path) -> VideoStreamInfo:
    video = probe(clip).video
    assert video is not None
    assert (video.width, video.height, video.frame_count) == (WIDTH, HEIGHT, FRAMES)
    return video


class DecodeLog:
    """Counts decoder starts in engine/frames.py and notes when a pass reached the end of the video."""

    def __init__(self) -> None:
        self.starts = 0
        self.finished = threading.Event()

    def __call__(self, path: Path, info: VideoStreamInfo) -> Iterator[Image]:
        self.starts += 1
        yield from iter_video_frames(path, info)
        self.finished.set()


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> DecodeLog:
    log = DecodeLog()
    monkeypatch.setattr(frames_module, "iter_video_frames", log)
    return log


@pytest.fixture
def no_stray_threads() -> Iterator[None]:
    """Fails the test if a decoder thread it started outlives it."""
    before = set(threading.enumerate())
    yield
    stray = [t for t in threading.enumerate() if t not in before and t.name in ("prefetch", "consumer")]
    for thread in stray:
        thread.join(timeout=WAIT)
    assert [t.name for t in stray if t.is_alive()] == []


def shown(frame: Image) -> int:
    """The source index drawn into a decoded I420 frame."""
    assert frame.shape == I420_SHAPE and frame.dtype == np.uint8
    return mf.frame_index(i420_to_rgb(frame))


def read_in_order(source: FrameSource, order: Sequence[int]) -> list[int]:
    return [shown(source.get(index)) for index in order]


# --- SequentialFrames --------------------------------------------------------------------------


def test_the_clip_decodes_to_its_indices(clip: Path, info: VideoStreamInfo) -> None:
    assert [shown(frame) for frame in iter_video_frames(clip, info)] == list(range(FRAMES))


@pytest.mark.usefixtures("no_stray_threads")
def test_sequential_forward_with_repeats_and_skips_decodes_once(
    clip: Path, info: VideoStreamInfo, decodes: DecodeLog
) -> None:
    order = [0, 0, 1, 3, 3, 3, 4, 7, 8, 8, 10, 11, 11]
    with closing(SequentialFrames(clip, info)) as source:
        assert read_in_order(source, order) == order
    assert decodes.starts == 1


@pytest.mark.usefixtures("no_stray_threads")
def test_sequential_may_start_past_frame_zero(clip: Path, info: VideoStreamInfo, decodes: DecodeLog) -> None:
    with closing(SequentialFrames(clip, info)) as source:
        assert read_in_order(source, [5, 9, 11]) == [5, 9, 11]
    assert decodes.starts == 1


@pytest.mark.usefixtures("no_stray_threads")
def test_sequential_loop_restarts_at_frame_zero(
    clip: Path, info: VideoStreamInfo, decodes: DecodeLog
) -> None:
    order = [*range(FRAMES), *range(FRAMES), *range(6)]  # what a loop plan asks for
    with closing(SequentialFrames(clip, info)) as source:
        assert read_in_order(source, order) == order
    assert decodes.starts == 3


@pytest.mark.usefixtures("no_stray_threads")
def test_sequential_going_back_anywhere_restarts_and_is_still_right(
    clip: Path, info: VideoStreamInfo, decodes: DecodeLog
) -> None:
    order = [0, 5, 9, 2, 6, 3, 3, 11, 1]
    with closing(SequentialFrames(clip, info)) as source:
        assert read_in_order(source, order) == order
    assert decodes.starts == 4  # the first pass and one per step back (9->2, 6->3, 11->1)


def test_sequential_close_is_idempotent_and_never_started_is_fine(clip: Path, info: VideoStreamInfo) -> None:
    source = SequentialFrames(clip, info)
    source.close()
    source.get(2)
    source.close()
    source.close()


def test_sequential_close_with_four_frames_left_unread_does_not_hang(
    clip: Path, info: VideoStreamInfo, decodes: DecodeLog
) -> None:
    source = SequentialFrames(clip, info)
    last = FRAMES - 5  # frames last+1 .. FRAMES-1 (four of them) are decoded but never read
    assert read_in_order(source, range(last + 1)) == list(range(last + 1))
    assert decodes.finished.wait(WAIT)  # the decoder ran ahead to the end of the video
    generator = source._frames  # kept to free a hung producer afterwards
    closer = threading.Thread(target=source.close, name="closer", daemon=True)
    closer.start()
    closer.join(timeout=HANG)
    hung = closer.is_alive()
    if hung and inspect.isgenerator(generator):  # free the blocked producer so no thread outlives the test
        inspect.getgeneratorlocals(generator)["buffer"].get_nowait()
        closer.join(timeout=WAIT)
    assert not hung


# --- SpooledFrames -----------------------------------------------------------------------------


@pytest.mark.usefixtures("no_stray_threads")
def test_spooled_reads_any_order_from_one_decode(
    clip: Path, info: VideoStreamInfo, decodes: DecodeLog, tmp_path: Path
) -> None:
    work = tmp_path / "work" / "frames"  # created on demand
    orders = [list(range(FRAMES - 1, -1, -1)), [7, 2, 2, 11, 0, 5, 4, 9], list(range(FRAMES))]
    with closing(SpooledFrames(clip, info, work)) as source:
        for order in orders:
            assert read_in_order(source, order) == order
    assert decodes.starts == 1


def test_spool_file_lies_in_the_work_dir(clip: Path, info: VideoStreamInfo, tmp_path: Path) -> None:
    work = tmp_path / "work"
    with closing(SpooledFrames(clip, info, work)):
        spool = work / SPOOL_FILE
        assert spool.is_file()
        assert spool.stat().st_size == FRAMES * WIDTH * HEIGHT * 3 // 2
    assert [p.name for p in work.iterdir()] == [SPOOL_FILE]


def test_spooled_frames_equal_the_decoded_frames(clip: Path, info: VideoStreamInfo, tmp_path: Path) -> None:
    decoded = list(iter_video_frames(clip, info))
    with closing(SpooledFrames(clip, info, tmp_path)) as source:
        for index in (3, 0, 11, 6):
            np.testing.assert_array_equal(source.get(index), decoded[index])


def test_spooled_frame_past_the_end_is_an_index_error(
    clip: Path, info: VideoStreamInfo, tmp_path: Path
) -> None:
    with closing(SpooledFrames(clip, info, tmp_path)) as source, pytest.raises(IndexError):
        source.get(FRAMES)


def test_spooled_close_is_idempotent(clip: Path, info: VideoStreamInfo, tmp_path: Path) -> None:
    source = SpooledFrames(clip, info, tmp_path)
    source.close()
    source.close()


# --- choosing a source -------------------------------------------------------------------------


def plan_order(mode: SyncMode, audio_seconds: float) -> list[int]:
    plan = plan_timeline(VideoTiming(FRAMES, Fraction(FPS)), {"main": audio_seconds}, mode)
    return [step.source_frame for step in plan.frames]


SHORTER, LONGER = (FRAMES - 4) / FPS, 3 * FRAMES / FPS  # audio seconds


@pytest.mark.parametrize(
    ("mode", "audio_seconds", "backwards"),
    [
        (SyncMode.CUT_OFF, SHORTER, False),
        (SyncMode.CUT_OFF, LONGER, False),
        (SyncMode.SILENCE, LONGER, False),
        (SyncMode.REMAP, SHORTER, False),
        (SyncMode.REMAP, LONGER, False),
        (SyncMode.LOOP, SHORTER, False),
        (SyncMode.LOOP, LONGER, False),  # restarts at frame 0 twice
        (SyncMode.BOUNCE, SHORTER, False),  # never turns
        (SyncMode.BOUNCE, LONGER, True),
    ],
)
def test_reads_backwards_on_typical_plans(mode: SyncMode, audio_seconds: float, backwards: bool) -> None:
    order = plan_order(mode, audio_seconds)
    if mode is SyncMode.LOOP and audio_seconds == LONGER:
        assert order.count(0) == 3  # the plan really does restart
    assert reads_backwards(order) is backwards


def test_reads_backwards_on_a_segment_plan() -> None:
    segment = SegmentSpec(start=0.1, end=0.3, ref_id="a")
    plan = plan_timeline(VideoTiming(FRAMES, Fraction(FPS)), {"a": 0.5}, SyncMode.CUT_OFF, [segment])
    assert reads_backwards([step.source_frame for step in plan.frames]) is False


@pytest.mark.parametrize(
    ("order", "backwards"),
    [
        ([], False),
        ([0], False),
        ([0, 0, 0], False),
        ([0, 1, 2, 0, 1, 2], False),
        ([3, 4, 0], False),
        ([0, 1, 0, 1, 0], False),  # a two-frame bounce only ever returns to frame 0
        ([0, 1, 2, 1, 0], True),
        ([2, 1], True),
        ([0, 5, 5, 4], True),
    ],
)
def test_reads_backwards_on_explicit_orders(order: list[int], backwards: bool) -> None:
    assert reads_backwards(order) is backwards


@pytest.mark.usefixtures("no_stray_threads")
@pytest.mark.parametrize(
    ("mode", "audio_seconds", "spooled"),
    [
        (SyncMode.CUT_OFF, SHORTER, False),
        (SyncMode.LOOP, LONGER, False),
        (SyncMode.REMAP, LONGER, False),
        (SyncMode.BOUNCE, LONGER, True),
    ],
)
def test_open_frames_spools_only_backward_orders(
    clip: Path, info: VideoStreamInfo, tmp_path: Path, mode: SyncMode, audio_seconds: float, spooled: bool
) -> None:
    order = plan_order(mode, audio_seconds)
    work = tmp_path / "frames"
    with closing(open_frames(clip, info, order, work)) as source:
        assert isinstance(source, SpooledFrames if spooled else SequentialFrames)
        assert (work / SPOOL_FILE).exists() is spooled
        assert read_in_order(source, order) == order
