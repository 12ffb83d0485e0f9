"""Integration tests for engine/media.py: probing, limits, decoding and the mp4 writer, on real files."""

from __future__ import annotations

import itertools
import math
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
import pytest

from lipsync_api.engine.media import (
    AudioStreamInfo,
    MediaInfo,
    Mp4Writer,
    VideoStreamInfo,
    check_audio_limits,
    check_video_limits,
    decode_audio,
    i420_to_rgb,
    iter_video_frames,
    output_audio_format,
    probe,
)
from lipsync_api.engine.request import EngineConfig
from lipsync_api.errors import ErrorCode, GenerationError
from tests.support import media_factory as mf
from tests.support.real_media import SHARED_MEDIA

needs_shared = pytest.mark.skipif(not SHARED_MEDIA.is_dir(), reason=f"real clips not found in {SHARED_MEDIA}")


def upright_corners(frame: npt.NDArray[np.uint8]) -> dict[str, float]:
    """Mean brightness of the four corners (an eighth of each side) of an I420 frame."""
    rgb = i420_to_rgb(frame)
    h, w = rgb.shape[0] // 8, rgb.shape[1] // 8
    return {
        "top_left": float(rgb[:h, :w].mean()),
        "top_right": float(rgb[:h, -w:].mean()),
        "bottom_left": float(rgb[-h:, :w].mean()),
        "bottom_right": float(rgb[-h:, -w:].mean()),
    }


def indices(path: Path, video: VideoStreamInfo) -> list[int]:
    return [mf.frame_index(i420_to_rgb(frame)) for frame in iter_video_frames(path, video)]


@contextmanager
def _raises(code: ErrorCode) -> Iterator[None]:
    """Expect a rejected GenerationError carrying ``code``."""
    with pytest.raises(GenerationError) as caught:
        yield
    assert caught.value.code is code, caught.value.message
    assert caught.value.rejected and caught.value.message


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="module")
def h264_clip(media_dir: Path) -> Path:
    return mf.write_video(media_dir / "clip.mp4", frames=50, audio_seconds=2.0)


# --- probing and frames -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(mf.VIDEO_FORMATS))
def test_probe_and_decode_each_container(media_dir: Path, name: str) -> None:
    path = mf.write_video_format(media_dir / f"fmt_{name}", name, frames=20, audio_seconds=0.8)
    info = probe(path)
    video, audio = info.video, info.audio
    assert video is not None and audio is not None
    assert video.codec == mf.DECODER_NAMES[mf.VIDEO_FORMATS[name][1]]
    assert (video.width, video.height, video.fps) == (160, 120, Fraction(25))
    assert video.duration == pytest.approx(0.8, abs=1 / 25)
    assert video.frame_count == 20
    assert video.rotation == 0 and not video.variable_rate
    assert audio.codec.startswith(mf.DECODER_NAMES[mf.VIDEO_FORMATS[name][2]][:3])
    assert audio.duration == pytest.approx(0.8, abs=0.02)
    frames = list(iter_video_frames(path, video))
    assert all(f.shape == (180, 160) and f.dtype == np.uint8 for f in frames)
    assert [mf.frame_index(i420_to_rgb(f)) for f in frames] == list(range(20))


def test_probe_identifies_by_content_not_extension(media_dir: Path) -> None:
    path = mf.write_video(media_dir / "mislabelled.mp4", frames=5).rename(media_dir / "mislabelled.wav")
    info = probe(path)
    assert info.video is not None and info.video.codec == "h264" and info.audio is None
    assert "mp4" in info.format_name


def test_vfr_clip_maps_to_constant_rate(media_dir: Path) -> None:
    path, pts = mf.write_vfr_video(media_dir / "vfr.mp4", frames=30, fps=30)
    video = probe(path).video
    assert video is not None and video.variable_rate and video.fps == Fraction(30)
    assert video.frame_count == pts[-1] + 1
    # Slot k shows the latest source frame whose timestamp is at or before k.
    expected = [max(i for i, p in enumerate(pts) if p <= k) for k in range(video.frame_count)]
    assert indices(path, video) == expected


def test_repeated_frames_are_separate_arrays(media_dir: Path) -> None:
    path, _ = mf.write_vfr_video(media_dir / "vfr_copies.mp4", frames=9, fps=30)
    video = probe(path).video
    assert video is not None
    frames = list(iter_video_frames(path, video))
    assert not any(np.shares_memory(a, b) for a, b in itertools.pairwise(frames))


def test_rate_above_max_fps_is_capped_by_dropping_frames(media_dir: Path) -> None:
    path = mf.write_video(media_dir / "fast.mp4", fps=75, frames=15)
    video = probe(path, max_fps=50).video
    assert video is not None and video.fps == Fraction(50) and video.frame_count == 10
    assert indices(path, video) == [math.floor(1.5 * k + 0.75) for k in range(10)]


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotation_is_honoured(media_dir: Path, rotation: int) -> None:
    path = mf.write_video(
        media_dir / f"rot{rotation}.mp4", width=120, height=160, frames=4, rotation=rotation
    )
    video = probe(path).video
    assert video is not None and video.rotation == rotation
    assert (video.width, video.height) == (120, 160)
    for frame in iter_video_frames(path, video):
        assert frame.shape == (240, 120)
        corners = upright_corners(frame)
        assert corners.pop("top_left") > 200
        assert all(level < 100 for level in corners.values()), corners


@pytest.mark.parametrize(
    ("codec", "suffix", "pix_fmt", "rotation"),
    [
        ("libvpx-vp9", ".webm", "yuv420p", 0),
        ("libx264", ".mp4", "yuv444p", 90),
        ("mpeg4", ".avi", "yuv420p", 0),
    ],
)
def test_odd_size_is_cropped_to_even(
    media_dir: Path, codec: str, suffix: str, pix_fmt: str, rotation: int
) -> None:
    path = media_dir / f"odd_{codec}{suffix}"
    mf.write_video(path, codec=codec, width=321, height=241, frames=3, pix_fmt=pix_fmt, rotation=rotation)
    video = probe(path).video
    assert video is not None and (video.width, video.height) == (320, 240)
    frames = list(iter_video_frames(path, video))
    assert [f.shape for f in frames] == [(360, 320)] * 3
    assert upright_corners(frames[0])["top_left"] > 200
    assert [mf.frame_index(i420_to_rgb(f)) for f in frames] == [0, 1, 2]


def test_long_clip_streams_without_growing_memory(media_dir: Path) -> None:
    path = mf.write_video(media_dir / "long.mp4", width=320, height=240, frames=600)
    video = probe(path).video
    assert video is not None
    frame_bytes = 320 * 240 * 3 // 2
    tracemalloc.start()
    try:
        count = sum(1 for _ in iter_video_frames(path, video))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 600
    assert peak < 20 * frame_bytes  # holding the whole clip would take 600 frames


# --- audio --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(mf.AUDIO_FORMATS))
@pytest.mark.parametrize(("rate", "channels"), [(16000, 1), (48000, 2)])
def test_decode_each_audio_format(media_dir: Path, name: str, rate: int, channels: int) -> None:
    path = media_dir / f"audio_{name}{mf.AUDIO_FORMATS[name][0]}"
    if not path.exists():
        mf.write_audio_format(path, name, mf.tone(1.5, 44100, 2), 44100)
    audio = probe(path).audio
    assert audio is not None and audio.codec.startswith(mf.DECODER_NAMES[mf.AUDIO_FORMATS[name][1]][:3])
    assert audio.duration == pytest.approx(1.5, abs=0.02)
    samples = decode_audio(path, rate, channels)
    assert samples.dtype == np.float32 and samples.shape[0] == channels
    assert samples.shape[1] / rate == pytest.approx(1.5, abs=0.02)
    rms = float(np.sqrt(np.mean(samples**2)))
    assert 0.1 < rms < 0.3  # the tone is there, at about its level (0.21, or a bit less mixed to mono)


@pytest.mark.parametrize(("name", "tolerance"), [("wav16", 2.0**-15), ("wav24", 2.0**-23)])
def test_pcm_keeps_its_bit_depth(media_dir: Path, name: str, tolerance: float) -> None:
    source = mf.tone(0.5, 48000, 2)
    path = mf.write_audio_format(media_dir / f"depth_{name}", name, source, 48000)
    assert np.abs(decode_audio(path, 48000, 2) - source).max() <= tolerance


def test_decode_audio_of_a_video_track(h264_clip: Path) -> None:
    samples = decode_audio(h264_clip, 16000, 1)
    assert samples.shape == (1, 32000)


def test_decode_espeak_speech(tmp_path: Path) -> None:
    path = mf.speech_wav(tmp_path / "speech.wav")
    audio = probe(path).audio
    assert audio is not None and audio.codec == "pcm_s16le" and audio.channels == 1
    samples = decode_audio(path, 16000, 1)
    assert samples.shape[1] / 16000 == pytest.approx(audio.duration, abs=0.02)
    assert float(np.abs(samples).max()) > 0.1


@pytest.mark.parametrize(
    ("rate", "channels", "expected"),
    [(96000, 2, (48000, 2)), (44100, 6, (44100, 2)), (16000, 1, (16000, 1)), (48000, 1, (48000, 1))],
)
def test_output_audio_format(rate: int, channels: int, expected: tuple[int, int]) -> None:
    assert output_audio_format(AudioStreamInfo("aac", rate, channels, 1.0)) == expected


# --- writing ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("rate", "channels", "fps"), [(44100, 2, Fraction(30)), (16000, 1, Fraction(25))])
def test_mp4_writer_round_trip(
    tmp_path: Path, h264_clip: Path, rate: int, channels: int, fps: Fraction
) -> None:
    frames = [f for f, _ in zip(iter_video_frames(h264_clip, _video(h264_clip)), range(40), strict=False)]
    soundtrack = mf.tone(float(len(frames) / fps), rate, channels)
    out = tmp_path / "out.mp4"
    with Mp4Writer(
        out, 160, 120, fps, crf=23, preset="ultrafast", audio_rate=rate, audio_channels=channels
    ) as w:
        position = 0
        for i, frame in enumerate(frames):
            w.add_video(frame)
            step = (333, 1500, 7)[i % 3]  # chunk sizes unrelated to AAC's frame size
            w.add_audio(soundtrack[:, position : position + step])
            position += step
        w.add_audio(soundtrack[:, position:])
    info = probe(out)
    video, audio = info.video, info.audio
    assert info.format_name.startswith("mov,mp4")
    assert video is not None and audio is not None
    assert (video.codec, video.width, video.height, video.fps) == ("h264", 160, 120, fps)
    assert video.frame_count == len(frames)
    assert (audio.codec, audio.sample_rate, audio.channels) == ("aac", rate, channels)
    assert abs(audio.duration - video.duration) <= 1 / fps
    with av.open(str(out)) as container:
        assert container.streams.video[0].codec_context.pix_fmt == "yuv420p"
    head = out.read_bytes()[:4096]
    assert 0 <= head.find(b"moov") < max(head.find(b"mdat"), 4096)  # faststart: index before the data
    assert indices(out, video)[:10] == list(range(10))


def test_mp4_writer_rejects_a_wrong_frame_shape(tmp_path: Path) -> None:
    with Mp4Writer(
        tmp_path / "x.mp4",
        64,
        48,
        Fraction(25),
        crf=23,
        preset="ultrafast",
        audio_rate=16000,
        audio_channels=1,
    ) as w:
        with pytest.raises(ValueError, match="I420"):
            w.add_video(np.zeros((48, 64), np.uint8))
        w.add_video(np.zeros((72, 64), np.uint8))
        with pytest.raises(ValueError, match="shape"):
            w.add_audio(np.zeros((2, 100), np.float32))
        w.add_audio(np.zeros((1, 640), np.float32))
    assert probe(tmp_path / "x.mp4").video is not None


def _video(path: Path) -> VideoStreamInfo:
    video = probe(path).video
    assert video is not None
    return video


# --- bad media ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [mf.write_empty, mf.write_text], ids=["empty", "text"])
def test_not_media_is_unsupported(tmp_path: Path, make: object) -> None:
    path = make(tmp_path / "input.mp4")  # type: ignore[operator]
    with _raises(ErrorCode.MEDIA_UNSUPPORTED):
        probe(path)
    with _raises(ErrorCode.MEDIA_UNSUPPORTED):
        decode_audio(path, 16000, 1)


def test_truncated_mp4_without_index_is_unsupported(tmp_path: Path, h264_clip: Path) -> None:
    path = mf.write_truncated(h264_clip, tmp_path / "truncated.mp4")  # moov sits at the end: lost
    with _raises(ErrorCode.MEDIA_UNSUPPORTED):
        probe(path)


def test_truncated_tail_is_padded_with_the_last_frame(tmp_path: Path) -> None:
    source = mf.write_video(tmp_path / "full.mp4", frames=60, faststart=True)
    path = mf.write_truncated(source, tmp_path / "truncated.mp4", 0.5)
    video = _video(path)
    frames = list(iter_video_frames(path, video))
    assert len(frames) == video.frame_count == 60
    assert np.array_equal(frames[-1], frames[-2])  # padding
    assert mf.frame_index(i420_to_rgb(frames[0])) == 0


def test_stream_with_no_decodable_frames_is_unsupported(tmp_path: Path) -> None:
    source = mf.write_video(tmp_path / "full.mp4", frames=10, faststart=True)
    data = source.read_bytes()
    path = tmp_path / "headless.mp4"
    path.write_bytes(data[: data.find(b"mdat") + 64])  # the index survives, the pictures do not
    with _raises(ErrorCode.MEDIA_UNSUPPORTED):
        probe(path)
    fake = VideoStreamInfo("h264", 160, 120, Fraction(25), 10, 0.4, 0, False)
    with _raises(ErrorCode.MEDIA_UNSUPPORTED):
        list(iter_video_frames(path, fake))


def test_audio_only_file_as_video_is_video_missing(tmp_path: Path) -> None:
    path = mf.write_audio(tmp_path / "audio_only.mp4", mf.tone(0.5), 48000, "aac")
    info = probe(path)
    assert info.video is None and info.audio is not None
    with _raises(ErrorCode.VIDEO_MISSING):
        check_video_limits(info, EngineConfig())
    with _raises(ErrorCode.VIDEO_MISSING):
        next(iter_video_frames(path, VideoStreamInfo("h264", 2, 2, Fraction(25), 1, 0.04, 0, False)))


def test_video_only_file_as_audio_is_audio_missing(tmp_path: Path) -> None:
    path = mf.write_video(tmp_path / "silent.mp4", frames=5)
    info = probe(path)
    with _raises(ErrorCode.AUDIO_MISSING):
        check_audio_limits(info, EngineConfig())
    with _raises(ErrorCode.AUDIO_MISSING):
        decode_audio(path, 16000, 1)


# --- limits ---------------------------------------------------------------------------------------------


def _info(width: int, height: int, video_seconds: float = 5.0, audio_seconds: float = 5.0) -> MediaInfo:
    video = VideoStreamInfo(
        "h264", width, height, Fraction(25), round(video_seconds * 25), video_seconds, 0, False
    )
    return MediaInfo("mp4", video_seconds, video, AudioStreamInfo("aac", 48000, 2, audio_seconds))


@pytest.mark.parametrize(("width", "height"), [(1920, 1080), (1080, 1920), (4096, 2160), (2160, 4096)])
def test_sizes_within_the_limit_pass_in_either_orientation(width: int, height: int) -> None:
    info = _info(width, height)
    assert check_video_limits(info, EngineConfig()) is info.video


@pytest.mark.parametrize(("width", "height"), [(4098, 2160), (2160, 4098), (3000, 2162), (2162, 3000)])
def test_too_large_video_is_rejected(width: int, height: int) -> None:
    with _raises(ErrorCode.MEDIA_TOO_LARGE):
        check_video_limits(_info(width, height), EngineConfig())


def test_too_large_synthetic_video_is_rejected(h264_clip: Path) -> None:
    with _raises(ErrorCode.MEDIA_TOO_LARGE):
        check_video_limits(probe(h264_clip), EngineConfig(max_width=128, max_height=96))


def test_too_long_media_is_rejected(h264_clip: Path) -> None:
    info = probe(h264_clip)
    with _raises(ErrorCode.VIDEO_LENGTH_EXCEEDED):
        check_video_limits(info, EngineConfig(max_video_seconds=1.5))
    with _raises(ErrorCode.AUDIO_LENGTH_EXCEEDED):
        check_audio_limits(info, EngineConfig(max_audio_seconds=1.5))
    config = EngineConfig(max_video_seconds=2.0, max_audio_seconds=2.0)
    assert check_video_limits(info, config) is info.video
    assert check_audio_limits(info, config) is info.audio


# --- the real clips ---------------------------------------------------------------------------------------


@needs_shared
def test_real_vfr_clip_gets_its_nominal_rate() -> None:
    path = SHARED_MEDIA / "vrt_face1.mp4"
    video = _video(path)
    assert video.variable_rate and video.fps == Fraction(30)
    assert (video.width, video.height) == (700, 700)
    assert video.frame_count == round(6.1 * 30)
    assert sum(1 for _ in iter_video_frames(path, video)) == video.frame_count


@needs_shared
def test_real_hevc_portrait_clip_decodes() -> None:
    path = SHARED_MEDIA / "latentsync_demo1_video.mp4"
    video = _video(path)
    assert (video.codec, video.width, video.height, video.fps) == ("hevc", 1080, 1920, Fraction(25))
    assert video.frame_count == 250 and not video.variable_rate
    frames = list(itertools.islice(iter_video_frames(path, video), 25))
    assert [f.shape for f in frames] == [(2880, 1080)] * 25
    assert len({f[:1920].mean().round(3) for f in frames}) > 1  # the picture moves


@needs_shared
def test_real_clip_audio_shorter_than_video() -> None:
    path = SHARED_MEDIA / "vrt_face4.mp4"
    info = probe(path)
    assert info.video is not None and info.audio is not None
    assert info.video.duration == pytest.approx(6.63, abs=0.02)
    assert info.audio.duration == pytest.approx(6.58, abs=0.02)
    assert decode_audio(path, 16000, 1).shape[1] / 16000 == pytest.approx(info.audio.duration, abs=0.02)


@needs_shared
@pytest.mark.parametrize(
    ("name", "rate", "seconds"),
    [("sadtalker_RD_Radio31_000_en.wav", 16000, 8.0), ("sadtalker_deyu_de.wav", 48000, 9.34)],
)
def test_real_speech_wavs(name: str, rate: int, seconds: float) -> None:
    audio = probe(SHARED_MEDIA / name).audio
    assert audio is not None and audio.sample_rate == rate and audio.channels == 2
    samples = decode_audio(SHARED_MEDIA / name, 16000, 1)
    assert samples.shape[1] / 16000 == pytest.approx(seconds, abs=0.02)
