"""Writing the output: H.264 (yuv420p, CRF) + AAC in an mp4 with the index up front (faststart)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import numpy as np
from av.audio.stream import AudioStream
from av.packet import Packet
from av.video.stream import VideoStream

from lipsync_api.engine.arrays import Floats, Image

_AAC_FRAME = 1024  # samples per AAC frame
_LAYOUTS = {1: "mono", 2: "stereo"}
_AUDIO_BIT_RATES = {1: 128_000, 2: 192_000}


class Mp4Writer:
    """Encodes I420 frames and float32 audio into an mp4; use as a context manager or call close()."""

    def __init__(
        self,
        path: Path,
        width: int,
        height: int,
        fps: Fraction,
        *,
        crf: int,
        preset: str,
        audio_rate: int,
        audio_channels: int,
    ) -> None:
        if width <= 0 or height <= 0 or width % 2 or height % 2:
            raise ValueError(f"frame size must be positive and even, not {width}x{height}")
        if audio_channels not in _LAYOUTS:
            raise ValueError(f"audio_channels must be 1 or 2, not {audio_channels}")
        self._width, self._height = width, height
        self._rate, self._channels = audio_rate, audio_channels
        self._time_base = 1 / Fraction(fps)
        self._frames = 0
        self._samples = 0
        self._closed = False
        self._fifo = av.AudioFifo()
        self._container = av.open(str(path), mode="w", format="mp4", options={"movflags": "+faststart"})
        try:
            self._video = self._add_video(fps, crf, preset)
            self._audio = self._add_audio()
        except BaseException:
            self._container.close()
            raise

    def _add_video(self, fps: Fraction, crf: int, preset: str) -> VideoStream:
        stream = self._container.add_stream(
            "libx264", rate=Fraction(fps), options={"crf": str(crf), "preset": preset}
        )
        stream.width, stream.height, stream.pix_fmt = self._width, self._height, "yuv420p"
        stream.codec_context.time_base = self._time_base
        # x264's frame threads keep every core busy; PyAV's default (slice threads) leaves one mostly idle.
        stream.codec_context.thread_type = "FRAME"
        stream.codec_context.thread_count = 0
        return stream

    def _add_audio(self) -> AudioStream:
        stream = self._container.add_stream("aac", rate=self._rate, layout=_LAYOUTS[self._channels])
        stream.bit_rate = _AUDIO_BIT_RATES[self._channels]
        return stream

    def add_video(self, frame_i420: Image) -> None:
        """Append one I420 frame of shape (height * 3 // 2, width)."""
        expected = (self._height * 3 // 2, self._width)
        if frame_i420.shape != expected or frame_i420.dtype != np.uint8:
            raise ValueError(
                f"expected a uint8 I420 frame of shape {expected}, got {frame_i420.dtype}{frame_i420.shape}"
            )
        frame = av.VideoFrame.from_ndarray(frame_i420, format="yuv420p")
        frame.pts, frame.time_base = self._frames, self._time_base
        self._frames += 1
        self._mux(self._video.encode(frame))

    def add_audio(self, samples: Floats) -> None:
        """Append float32 samples of shape (channels, n); any n, buffered into whole AAC frames."""
        if samples.ndim != 2 or samples.shape[0] != self._channels:
            raise ValueError(f"expected audio of shape ({self._channels}, n), got {samples.shape}")
        if samples.shape[1] == 0:
            return
        planar = np.ascontiguousarray(samples, dtype=np.float32)
        frame = av.AudioFrame.from_ndarray(planar, format="fltp", layout=_LAYOUTS[self._channels])
        frame.sample_rate = self._rate
        frame.pts, frame.time_base = self._samples, Fraction(1, self._rate)
        self._samples += planar.shape[1]
        self._fifo.write(frame)
        for chunk in self._fifo.read_many(_AAC_FRAME):
            self._mux(self._audio.encode(chunk))

    def close(self) -> None:
        """Flush both encoders and finish the file; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        try:
            rest = self._fifo.read() if self._fifo.samples else None
            if rest is not None:
                self._mux(self._audio.encode(rest))
            self._mux(self._audio.encode(None))
            self._mux(self._video.encode(None))
        finally:
            self._container.close()

    def _mux(self, packets: list[Packet[VideoStream]] | list[Packet[AudioStream]]) -> None:
        if packets:
            self._container.mux(packets)

    def __enter__(self) -> Mp4Writer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
