"""The real clips in ../shared/media (tests only; see its README) and a helper to cut them short."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from av.audio.stream import AudioStream
from av.container import OutputContainer
from av.video.stream import VideoStream

SHARED_MEDIA = (Path(__file__).resolve().parents[2] / ".." / "shared" / "media").resolve()


def require_shared_media() -> Path:
    """The clips folder, or a skip that says why."""
    if not SHARED_MEDIA.is_dir():
        pytest.skip(f"real clips not found: {SHARED_MEDIA} is absent (see ../shared/media/README.md)")
    return SHARED_MEDIA


def _layout(channels: int) -> str:
    return "stereo" if channels >= 2 else "mono"


class _AudioTrim:
    """Re-encodes the first ``seconds`` of an audio stream as AAC, in the encoder's fixed-size frames."""

    def __init__(self, out: OutputContainer, source: AudioStream, seconds: float) -> None:
        rate, self.layout = source.codec_context.sample_rate, _layout(source.codec_context.channels)
        stream = out.add_stream("aac", rate=rate, layout=self.layout)
        assert isinstance(stream, AudioStream)
        stream.codec_context.open()  # to learn the encoder's frame size
        self.out, self.stream, self.rate = out, stream, rate
        self.resampler = av.AudioResampler(format="fltp", layout=self.layout, rate=rate)
        self.fifo = av.AudioFifo()
        self.left = round(seconds * rate)
        self.written = 0

    def add(self, frame: av.AudioFrame) -> None:
        for resampled in self.resampler.resample(frame):
            take = min(resampled.samples, self.left)
            if take <= 0:
                continue
            chunk = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(resampled.to_ndarray()[:, :take]), format="fltp", layout=self.layout
            )
            chunk.sample_rate, chunk.pts, chunk.time_base = self.rate, self.written, Fraction(1, self.rate)
            self.fifo.write(chunk)
            self.left -= take
            self.written += take
        self._drain(partial=False)

    def close(self) -> None:
        self._drain(partial=True)
        self.out.mux(self.stream.encode(None))

    def _drain(self, *, partial: bool) -> None:
        for chunk in self.fifo.read_many(self.stream.codec_context.frame_size, partial=partial):
            self.out.mux(self.stream.encode(chunk))


def _video_trim(out: OutputContainer, source: VideoStream, max_side: int | None) -> VideoStream:
    rate: Fraction = source.guessed_rate or source.average_rate or Fraction(25)
    stream = out.add_stream("libx264", rate=rate, options={"preset": "ultrafast"})
    assert isinstance(stream, VideoStream)
    width, height = source.codec_context.width, source.codec_context.height
    if max_side and max(width, height) > max_side:
        scale = max_side / max(width, height)
        width, height = round(width * scale), round(height * scale)
    stream.width, stream.height, stream.pix_fmt = width - width % 2, height - height % 2, "yuv420p"
    assert source.time_base is not None
    stream.codec_context.time_base = source.time_base  # keeps a variable-rate source's irregular timestamps
    return stream


def trim_media(source: Path, dest: Path, seconds: float, *, max_side: int | None = None) -> Path:
    """The first ``seconds`` of ``source``, re-encoded (libx264 ultrafast / AAC) and optionally downscaled."""
    with av.open(str(source)) as inp, av.open(str(dest), "w") as out:
        video_in = inp.streams.video[0] if inp.streams.video else None
        audio_in = inp.streams.audio[0] if inp.streams.audio else None
        video_out = _video_trim(out, video_in, max_side) if video_in is not None else None
        audio = _AudioTrim(out, audio_in, seconds) if audio_in is not None else None
        for packet in inp.demux([s for s in (video_in, audio_in) if s is not None]):
            for frame in packet.decode():
                if not isinstance(frame, av.VideoFrame | av.AudioFrame) or frame.time is None:
                    continue
                if frame.time >= seconds:
                    continue
                if isinstance(frame, av.VideoFrame) and video_out is not None:
                    scaled = frame.reformat(width=video_out.width, height=video_out.height, format="yuv420p")
                    scaled.pts, scaled.time_base = frame.pts, frame.time_base
                    out.mux(video_out.encode(scaled))
                elif isinstance(frame, av.AudioFrame) and audio is not None:
                    audio.add(frame)
        if video_out is not None:
            out.mux(video_out.encode(None))
        if audio is not None:
            audio.close()
    return dest
