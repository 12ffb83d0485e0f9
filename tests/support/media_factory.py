"""Small synthetic media files for tests, written with PyAV (plus espeak-ng speech when installed).

Video frames are dark, with a white marker in the upright top-left corner (to check rotation), two
moving shapes in the middle band, and a grey bar at the bottom centre whose level encodes the frame
index (see ``frame_index``), so tests can tell which source frame a decoded frame shows.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
import pytest
from av.audio.stream import AudioStream
from av.container import OutputContainer
from av.video.stream import VideoStream

# name -> (file suffix, video encoder, audio encoder for a track in that container)
VIDEO_FORMATS: dict[str, tuple[str, str, str]] = {
    "mp4_h264": (".mp4", "libx264", "aac"),
    "mov_hevc": (".mov", "libx265", "aac"),
    "webm_vp9": (".webm", "libvpx-vp9", "libopus"),
    "avi_mpeg4": (".avi", "mpeg4", "pcm_s16le"),  # mp3's encoder delay makes the avi muxer skew video pts
}
# name -> (file suffix, audio encoder)
AUDIO_FORMATS: dict[str, tuple[str, str]] = {
    "wav16": (".wav", "pcm_s16le"),
    "wav24": (".wav", "pcm_s24le"),
    "mp3": (".mp3", "libmp3lame"),
    "ogg_opus": (".ogg", "libopus"),
    "flac": (".flac", "flac"),
    "m4a_aac": (".m4a", "aac"),
}
# FFmpeg's codec names as probed, per encoder
DECODER_NAMES = {
    "libx264": "h264",
    "libx265": "hevc",
    "libvpx-vp9": "vp9",
    "mpeg4": "mpeg4",
    "pcm_s16le": "pcm_s16le",
    "pcm_s24le": "pcm_s24le",
    "libmp3lame": "mp3",
    "libopus": "opus",
    "flac": "flac",
    "aac": "aac",
}
_FAST_OPTIONS = {
    "libx264": {"preset": "ultrafast"},
    "libx265": {"preset": "ultrafast", "x265-params": "log-level=error"},
    "libvpx-vp9": {"deadline": "realtime", "cpu-used": "8"},
}
Samples = npt.NDArray[np.float32]
_NATIVE_RATES = {"libopus": 48000}
_BAR_BASE, _BAR_STEP, _BAR_LEVELS = 16, 7, 32
MARKER = 255
BACKGROUND = 40


def tone(seconds: float, rate: int = 48000, channels: int = 1, freq: float = 440.0) -> Samples:
    """A sine tone as float32 (channels, samples); each channel a little higher than the last."""
    t = np.arange(round(seconds * rate)) / rate
    rows = [0.3 * np.sin(2 * np.pi * freq * (1 + 0.25 * c) * t) for c in range(channels)]
    return np.asarray(rows, dtype=np.float32)


def silence(seconds: float, rate: int = 48000, channels: int = 1) -> Samples:
    """Silence as float32 (channels, samples)."""
    return np.zeros((channels, round(seconds * rate)), dtype=np.float32)


def draw_frame(index: int, width: int, height: int) -> npt.NDArray[np.uint8]:
    """An upright RGB frame: corner marker, moving shapes, and an index bar."""
    img = np.full((height, width, 3), BACKGROUND, dtype=np.uint8)
    img[: height // 4, : width // 4] = MARKER
    band = slice(height * 3 // 8, height * 5 // 8)
    x = (index * 7) % max(1, width // 2) + width // 8
    img[band, x : x + width // 8] = (200, 30, 30)
    x2 = width - width // 4 - (index * 5) % max(1, width // 2)
    img[band, max(0, x2) : max(0, x2) + width // 10] = (30, 30, 200)
    level = _BAR_BASE + _BAR_STEP * (index % _BAR_LEVELS)
    img[height - height // 8 :, width // 4 : width * 3 // 4] = level
    return img


def frame_index(rgb: npt.NDArray[np.uint8]) -> int:
    """The source index (modulo 32) encoded in an upright RGB frame's bar by ``draw_frame``."""
    height, width = rgb.shape[:2]
    bar = rgb[height - height // 16 :, width * 3 // 8 : width * 5 // 8]
    return round((float(bar.mean()) - _BAR_BASE) / _BAR_STEP) % _BAR_LEVELS


def write_video(
    path: Path,
    *,
    codec: str = "libx264",
    width: int = 160,
    height: int = 120,
    fps: int = 25,
    frames: int = 25,
    audio_seconds: float | None = None,
    audio_codec: str | None = None,
    audio_rate: int = 48000,
    rotation: int = 0,
    pts: Sequence[int] | None = None,
    pix_fmt: str = "yuv420p",
    faststart: bool = False,
) -> Path:
    """Write a clip of ``frames`` frames, shown upright at ``width`` x ``height`` after ``rotation``.

    ``rotation`` is the clockwise turn a player applies (stored as a display matrix); ``pts`` gives
    irregular timestamps in frame units for a variable-rate clip.
    """
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), mode="w", options=options) as out:
        stream = out.add_stream(codec, rate=fps, options=_FAST_OPTIONS.get(codec, {}))
        assert isinstance(stream, VideoStream)
        stream.width, stream.height = (height, width) if rotation % 180 else (width, height)
        stream.pix_fmt = pix_fmt
        stream.codec_context.time_base = Fraction(1, fps)
        if rotation:
            stream.set_display_rotation(-rotation)  # PyAV takes counter-clockwise degrees
        audio = None
        if audio_seconds is not None:
            default_audio = next((a for s, _, a in VIDEO_FORMATS.values() if s == path.suffix), "aac")
            audio = _add_audio_stream(out, audio_codec or default_audio, audio_rate, 2)
        for i in range(frames):
            stored = np.ascontiguousarray(np.rot90(draw_frame(i, width, height), rotation // 90))
            frame = av.VideoFrame.from_ndarray(stored, format="rgb24")
            frame.pts = i if pts is None else pts[i]
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
        if audio is not None and audio_seconds is not None:
            _encode_audio(out, audio, tone(audio_seconds, audio_rate, 2), audio_rate)
    return path


def write_video_format(path_stem: Path, name: str, **kwargs: object) -> Path:
    """Write a clip in one of ``VIDEO_FORMATS`` (suffix and codecs chosen by name)."""
    suffix, codec, audio_codec = VIDEO_FORMATS[name]
    audio = {"audio_codec": audio_codec} if kwargs.get("audio_seconds") is not None else {}
    return write_video(path_stem.with_suffix(suffix), codec=codec, **audio, **kwargs)  # type: ignore[arg-type]


def write_audio(path: Path, samples: Samples, rate: int, codec: str = "pcm_s16le") -> Path:
    """Write float32 (channels, n) samples with ``codec``; the container follows the suffix."""
    with av.open(str(path), mode="w") as out:
        stream = _add_audio_stream(out, codec, rate, samples.shape[0])
        _encode_audio(out, stream, samples, rate)
    return path


def write_audio_format(path_stem: Path, name: str, samples: Samples, rate: int) -> Path:
    """Write samples in one of ``AUDIO_FORMATS``."""
    suffix, codec = AUDIO_FORMATS[name]
    return write_audio(path_stem.with_suffix(suffix), samples, rate, codec)


def _add_audio_stream(out: OutputContainer, codec: str, rate: int, channels: int) -> AudioStream:
    layout = "stereo" if channels == 2 else "mono"
    stream = out.add_stream(codec, rate=_NATIVE_RATES.get(codec, rate), layout=layout)
    assert isinstance(stream, AudioStream)
    stream.codec_context.open()  # to learn the encoder's frame size
    return stream


def _encode_audio(out: OutputContainer, stream: AudioStream, samples: Samples, rate: int) -> None:
    layout = "stereo" if samples.shape[0] == 2 else "mono"
    context = stream.codec_context
    resampler = av.AudioResampler(format=context.format, layout=layout, rate=context.sample_rate)
    source = av.AudioFrame.from_ndarray(
        np.ascontiguousarray(samples, np.float32), format="fltp", layout=layout
    )
    source.sample_rate, source.pts, source.time_base = rate, 0, Fraction(1, rate)
    fifo = av.AudioFifo()
    for frame in [*resampler.resample(source), *resampler.resample(None)]:
        fifo.write(frame)
    for frame in fifo.read_many(context.frame_size or 1024, partial=True):
        out.mux(stream.encode(frame))
    out.mux(stream.encode(None))


def write_vfr_video(path: Path, frames: int = 30, fps: int = 30) -> tuple[Path, list[int]]:
    """An mp4 whose frames skip slots irregularly (nominal ``fps``, lower average); returns the pts used."""
    pts, t = [], 0
    for i in range(frames):
        pts.append(t)
        t += 2 if i % 3 == 2 else 1
    return write_video(path, fps=fps, frames=frames, pts=pts), pts


def speech_wav(path: Path, text: str = "Hello there, this is a lipsync test.") -> Path:
    """Synthesise speech with espeak-ng (22.05 kHz mono wav); skips the test when it is missing."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    subprocess.run(["espeak-ng", "-w", str(path), text], check=True, capture_output=True)
    return path


def write_empty(path: Path) -> Path:
    """A zero-byte file."""
    path.write_bytes(b"")
    return path


def write_text(path: Path) -> Path:
    """A text file wearing a media suffix."""
    path.write_text("this is not a video\n" * 20)
    return path


def write_truncated(source: Path, path: Path, fraction: float = 0.3) -> Path:
    """The first ``fraction`` of ``source``'s bytes."""
    data = source.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path
