"""Decoding input media with PyAV: constant-rate upright I420 frames and resampled float audio."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import av
import cv2
import numpy as np
from av.audio.frame import AudioFrame
from av.audio.stream import AudioStream
from av.container import InputContainer
from av.packet import Packet
from av.stream import Disposition, Stream
from av.video.frame import VideoFrame
from av.video.plane import VideoPlane
from av.video.stream import VideoStream

from lipsync_api.engine.arrays import Floats, Image
from lipsync_api.errors import audio_missing, media_unsupported, video_missing

if TYPE_CHECKING:
    from lipsync_api.engine.media import VideoStreamInfo

F = TypeVar("F")
_LAYOUTS = {1: "mono", 2: "stereo"}
_MAX_PADDING = 0.1  # seconds of decoded audio past the declared end that are taken as encoder padding


def open_input(path: Path) -> InputContainer:
    """Open ``path`` for reading, mapping anything FFmpeg cannot open to media_unsupported."""
    try:
        return av.open(str(path), mode="r")
    except FileNotFoundError:
        raise  # a missing file is our bug, not the user's media
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise media_unsupported(f"input is not a decodable media file: {reason}") from exc


def first_video_stream(container: InputContainer) -> VideoStream | None:
    """The first real video stream (cover art in audio files does not count)."""
    for stream in container.streams.video:
        if stream.codec_context is not None and not stream.disposition & Disposition.attached_pic:
            return stream
    return None


def first_audio_stream(container: InputContainer) -> AudioStream | None:
    """The first audio stream FFmpeg has a decoder for, if any."""
    return next((s for s in container.streams.audio if s.codec_context is not None), None)


def decode_tolerant(
    container: InputContainer, stream: Stream, decode: Callable[[Packet[Stream]], list[F]]
) -> Iterator[F]:
    """Decode one stream, skipping corrupt packets; a broken container tail simply ends the stream."""
    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return
        except av.error.FFmpegError:
            return
        try:
            frames = decode(packet)
        except av.error.FFmpegError:
            # A truncated or damaged packet: the frame-slot mapping keeps the last good frame on screen.
            continue
        yield from frames


def iter_video_frames(path: Path, info: VideoStreamInfo) -> Iterator[Image]:
    """Yield exactly ``info.frame_count`` upright, even-sized I420 frames at ``info.fps``."""
    with open_input(path) as container:
        stream = first_video_stream(container)
        if stream is None:
            raise video_missing("video input has no video stream")
        stream.thread_type = "AUTO"
        stream.thread_count = 0
        frames = decode_tolerant(container, stream, stream.decode)
        yield from _constant_rate(_timed(frames, stream.time_base, info.fps), info)


def _timed(
    frames: Iterator[VideoFrame], time_base: Fraction | None, fps: Fraction
) -> Iterator[tuple[float, VideoFrame]]:
    """Pair each frame with its presentation time in seconds from the first frame."""
    first: int | None = None
    last = -1.0 / float(fps)
    for frame in frames:
        if frame.pts is None or time_base is None:
            seconds = last + 1.0 / float(fps)  # no timestamp: assume it follows at the nominal rate
        else:
            first = frame.pts if first is None else first
            seconds = float((frame.pts - first) * time_base)
        last = seconds
        yield seconds, frame


def _constant_rate(timed: Iterator[tuple[float, VideoFrame]], info: VideoStreamInfo) -> Iterator[Image]:
    """Map frames to constant-rate slots: slot k shows the latest frame due by k/fps (half-frame slack)."""
    fps, count = float(info.fps), info.frame_count
    slot = 0
    current: VideoFrame | None = None
    image: Image | None = None
    for seconds, frame in timed:
        # Every slot whose time (plus slack) the new frame misses still shows the current frame.
        while current is not None and slot < count and (slot + 0.5) / fps < seconds:
            image = _to_i420(current, info) if image is None else image
            slot += 1
            # Consumers may edit frames in place, so a frame shown again is handed out as a copy.
            yield image if (slot + 0.5) / fps >= seconds or slot >= count else image.copy()
        if slot >= count:
            return
        current, image = frame, None  # frames never reached by a slot are dropped unconverted
    if current is None:
        raise media_unsupported("video stream decodes to no frames")
    image = _to_i420(current, info) if image is None else image
    while slot < count:  # the stream ended early (or was truncated): hold the last frame
        slot += 1
        yield image if slot >= count else image.copy()


def _to_i420(frame: VideoFrame, info: VideoStreamInfo) -> Image:
    """Convert a decoded frame to an upright I420 array of the probed (even) display size."""
    turns = info.rotation // 90
    width, height = (info.height, info.width) if turns % 2 else (info.width, info.height)
    if (frame.width - frame.width % 2, frame.height - frame.height % 2) != (width, height):
        frame = frame.reformat(width=width, height=height, format="yuv420p")  # a mid-stream size change
    elif frame.format.name != "yuv420p":
        frame = frame.reformat(format="yuv420p")
    planes = (
        _plane(frame.planes[0], width, height),
        _plane(frame.planes[1], width // 2, height // 2),
        _plane(frame.planes[2], width // 2, height // 2),
    )
    out = np.empty(width * height * 3 // 2, dtype=np.uint8)
    offset = 0
    for plane in planes:
        upright = np.rot90(plane, -turns)  # negative k: clockwise quarter turns
        size = upright.size
        np.copyto(out[offset : offset + size].reshape(upright.shape), upright)
        offset += size
    return out.reshape(info.height * 3 // 2, info.width)


def _plane(plane: VideoPlane, width: int, height: int) -> Image:
    """A view of a plane's top-left ``width`` x ``height`` pixels (this crops odd sizes to even)."""
    rows = np.frombuffer(memoryview(plane), dtype=np.uint8).reshape(-1, plane.line_size)
    return rows[:height, :width]


def i420_to_rgb(frame: Image) -> Image:
    """Convert an I420 array of shape (h * 3 // 2, w) to RGB (h, w, 3) uint8."""
    return np.asarray(cv2.cvtColor(frame, cv2.COLOR_YUV2RGB_I420), dtype=np.uint8)


def decode_audio(path: Path, sample_rate: int, channels: int) -> Floats:
    """Decode the first audio stream of ``path`` to float32 (channels, samples) at ``sample_rate``."""
    if channels not in _LAYOUTS:
        raise ValueError(f"channels must be 1 or 2, not {channels}")
    resampler = av.AudioResampler(format="flt", layout=_LAYOUTS[channels], rate=sample_rate)
    chunks: list[Floats] = []
    with open_input(path) as container:
        stream = first_audio_stream(container)
        if stream is None:
            raise audio_missing("audio input has no audio stream")
        try:
            for frame in decode_tolerant(container, stream, stream.decode):
                chunks.extend(_packed(resampler.resample(frame), channels))
            chunks.extend(_packed(resampler.resample(None), channels))
        except (av.error.FFmpegError, ValueError) as exc:
            raise media_unsupported(f"audio stream cannot be decoded: {exc}") from exc
        declared = stream.duration * stream.time_base if stream.duration and stream.time_base else None
    if not chunks:
        raise media_unsupported("audio stream decodes to no samples")
    samples = np.concatenate(chunks)
    if declared is not None:
        # Decoders keep the encoder's padding of the last frame (AAC); the stream header knows the true end.
        expected = round(declared * sample_rate)
        if expected < len(samples) <= expected + sample_rate * _MAX_PADDING:
            samples = samples[:expected]
    return np.ascontiguousarray(samples.T)


def _packed(frames: list[AudioFrame], channels: int) -> list[Floats]:
    """Packed float frames as (samples, channels) arrays."""
    return [frame.to_ndarray().astype(np.float32, copy=False).reshape(-1, channels) for frame in frames]
