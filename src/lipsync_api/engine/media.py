"""Input media: probing (by content, not extension) and limit checks; decoding and encoding re-exported."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.audio.stream import AudioStream
from av.container import InputContainer
from av.video.frame import VideoFrame
from av.video.stream import VideoStream

from lipsync_api.engine.decode import (
    decode_audio,
    first_audio_stream,
    first_video_stream,
    i420_to_rgb,
    iter_video_frames,
    open_input,
)
from lipsync_api.engine.encode import Mp4Writer
from lipsync_api.engine.request import EngineConfig
from lipsync_api.errors import ErrorCode, GenerationError, audio_missing, media_unsupported, video_missing

__all__ = [
    "AudioStreamInfo",
    "MediaInfo",
    "Mp4Writer",
    "VideoStreamInfo",
    "check_audio_limits",
    "check_video_limits",
    "decode_audio",
    "i420_to_rgb",
    "iter_video_frames",
    "output_audio_format",
    "probe",
]

_PROBE_PACKETS = 400  # demuxing is cheap; this bounds probing of long files
_PTS_SAMPLE = 120  # video packet timestamps looked at to spot a variable frame rate
_REORDER_DEPTH = 16  # packets by which decode order may run ahead of presentation order
_RATE_SLACK = 0.05  # average vs nominal rate difference that marks a variable frame rate
_FALLBACK_FPS = Fraction(25)


@dataclass(frozen=True)
class VideoStreamInfo:
    """The first video stream, as the engine will see it (upright, even-sized, constant rate)."""

    codec: str
    width: int
    height: int
    fps: Fraction
    frame_count: int
    duration: float
    rotation: int
    variable_rate: bool


@dataclass(frozen=True)
class AudioStreamInfo:
    """The first audio stream."""

    codec: str
    sample_rate: int
    channels: int
    duration: float


@dataclass(frozen=True)
class MediaInfo:
    """What a media file holds."""

    format_name: str
    duration: float
    video: VideoStreamInfo | None
    audio: AudioStreamInfo | None


@dataclass(frozen=True)
class _Sample:
    """What decoding the first packets revealed."""

    first_video: VideoFrame | None
    video_pts: list[int]


def probe(path: Path, max_fps: int = 60) -> MediaInfo:
    """Describe ``path``'s first video and audio streams; undecodable input raises media_unsupported."""
    with open_input(path) as container:
        video, audio = first_video_stream(container), first_audio_stream(container)
        if video is None and audio is None:
            raise media_unsupported("input has no audio or video stream")
        sample = _sample(container, video, audio)
        video_info = _video_info(path, container, video, sample, max_fps) if video is not None else None
        audio_info = _audio_info(path, container, audio) if audio is not None else None
        if container.duration:
            duration = container.duration / av.time_base
        else:
            duration = max(info.duration for info in (video_info, audio_info) if info is not None)
        return MediaInfo(container.format.name, duration, video_info, audio_info)


def _sample(container: InputContainer, video: VideoStream | None, audio: AudioStream | None) -> _Sample:
    """Decode until each stream yields a frame, proving it decodable; collect early video timestamps."""
    streams = [stream for stream in (video, audio) if stream is not None]
    pending = {stream.index for stream in streams}
    first_video: VideoFrame | None = None
    pts: list[int] = []
    exhausted = True
    try:
        for count, packet in enumerate(container.demux(streams)):
            index = packet.stream.index
            if video is not None and index == video.index and packet.pts is not None:
                pts.append(packet.pts)
            if index in pending:
                try:
                    frames = packet.decode()
                except av.error.FFmpegError:
                    continue  # a damaged packet; a later one may still decode
                if frames:
                    pending.discard(index)
                    first_video = frames[0] if isinstance(frames[0], VideoFrame) else first_video
            if count >= _PROBE_PACKETS or (not pending and len(pts) >= _PTS_SAMPLE):
                exhausted = False
                break
    except av.error.FFmpegError:
        pass  # a broken tail: judge by what decoded before it
    if exhausted and pending:
        names = ", ".join(f"{s.type} ({s.codec_context.name})" for s in streams if s.index in pending)
        raise media_unsupported(f"input stream cannot be decoded: {names}")
    return _Sample(first_video, pts)


def _video_info(
    path: Path, container: InputContainer, stream: VideoStream, sample: _Sample, max_fps: int
) -> VideoStreamInfo:
    """Nominal rate, duration, rotation and display size of the video stream."""
    fps = stream.guessed_rate or stream.average_rate or stream.base_rate or _FALLBACK_FPS
    fps = min(Fraction(fps), Fraction(max_fps))
    duration = _seconds(path, container, stream)
    rotation = _rotation(stream, sample.first_video)
    width, height = stream.codec_context.width, stream.codec_context.height
    width, height = width - width % 2, height - height % 2
    if width < 2 or height < 2:
        raise media_unsupported(
            f"video frame size {stream.codec_context.width}x{stream.codec_context.height} is unusable"
        )
    if rotation in (90, 270):
        width, height = height, width
    return VideoStreamInfo(
        codec=stream.codec_context.name,
        width=width,
        height=height,
        fps=fps,
        frame_count=max(1, round(duration * fps)),
        duration=duration,
        rotation=rotation,
        variable_rate=_variable_rate(stream, sample.video_pts),
    )


def _audio_info(path: Path, container: InputContainer, stream: AudioStream) -> AudioStreamInfo:
    """Codec, format and duration of the audio stream."""
    context = stream.codec_context
    return AudioStreamInfo(
        context.name, context.sample_rate, context.channels, _seconds(path, container, stream)
    )


def _seconds(path: Path, container: InputContainer, stream: VideoStream | AudioStream) -> float:
    """The stream's duration: its own, else the container's, else measured from packet timestamps."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    tagged = _tag_seconds(stream.metadata.get("DURATION", ""))  # Matroska/WebM keep it as a tag
    if tagged:
        return tagged
    if container.duration:
        return container.duration / av.time_base
    return _scan_seconds(path, stream.index)


def _tag_seconds(tag: str) -> float | None:
    """Parse a Matroska ``DURATION`` tag (HH:MM:SS.fraction)."""
    try:
        hours, minutes, seconds = tag.split(":")
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    except ValueError:
        return None


def _scan_seconds(path: Path, index: int) -> float:
    """Measure a stream's duration by demuxing it (for inputs whose headers do not say)."""
    start: int | None = None
    end = 0
    with open_input(path) as container:
        stream = container.streams[index]
        for packet in container.demux(stream):
            if packet.pts is not None and stream.time_base is not None:
                start = packet.pts if start is None else min(start, packet.pts)
                end = max(end, packet.pts + (packet.duration or 0))
        if start is None or stream.time_base is None:
            raise media_unsupported(f"{stream.type} stream has no timestamps to measure its duration")
        return float((end - start) * stream.time_base)


def _rotation(stream: VideoStream, first: VideoFrame | None) -> int:
    """Clockwise degrees that show the video upright, from the display matrix or a legacy ``rotate`` tag."""
    if first is not None and first.rotation:
        degrees = -first.rotation  # the display matrix angle is counter-clockwise
    else:
        try:
            degrees = round(float(stream.metadata.get("rotate", "0")))
        except ValueError:
            degrees = 0
    return round(degrees / 90) % 4 * 90


def _variable_rate(stream: VideoStream, pts: list[int]) -> bool:
    """Heuristic: the average rate strays from the nominal one, or frame intervals are uneven."""
    average, nominal = stream.average_rate, stream.guessed_rate
    if average and nominal and abs(float(average / nominal) - 1) > _RATE_SLACK:
        return True
    ordered = np.unique(pts)  # sorted, so B-frame reordering does not matter
    if len(pts) > 2 * _REORDER_DEPTH:
        # Frames shown before the sample's last packets may not have been read yet: leave that tail out.
        ordered = ordered[ordered < min(pts[-_REORDER_DEPTH:])]
    deltas = np.diff(ordered)
    if deltas.size < 2:
        return False
    median = float(np.median(deltas))
    return float(deltas.max() - deltas.min()) > max(1.0, 0.1 * median)


def check_video_limits(info: MediaInfo, config: EngineConfig) -> VideoStreamInfo:
    """Return the video stream, or reject a missing, oversized or overlong one."""
    video = info.video
    if video is None:
        raise video_missing("video input has no video stream")
    long_side, short_side = max(video.width, video.height), min(video.width, video.height)
    if long_side > config.max_width or short_side > config.max_height:
        raise GenerationError(
            ErrorCode.MEDIA_TOO_LARGE,
            f"video is {video.width}x{video.height}; the limit is {config.max_width}x{config.max_height}"
            " (in either orientation)",
            rejected=True,
        )
    _check_length("video", video.duration, config.max_video_seconds, ErrorCode.VIDEO_LENGTH_EXCEEDED)
    return video


def check_audio_limits(info: MediaInfo, config: EngineConfig) -> AudioStreamInfo:
    """Return the audio stream, or reject a missing or overlong one."""
    audio = info.audio
    if audio is None:
        raise audio_missing("audio input has no audio stream")
    _check_length("audio", audio.duration, config.max_audio_seconds, ErrorCode.AUDIO_LENGTH_EXCEEDED)
    return audio


def _check_length(kind: str, seconds: float, limit: float, code: ErrorCode) -> None:
    """Reject (REJECTED, ``code``) an input longer than its limit, naming both lengths."""
    if seconds > limit:
        raise GenerationError(
            code, f"{kind} is {seconds:.2f} s long; the limit is {limit:g} s", rejected=True
        )


def output_audio_format(info: AudioStreamInfo) -> tuple[int, int]:
    """The output soundtrack's (sample rate, channels): at most 48 kHz, stereo kept, anything else mono."""
    return min(info.sample_rate, 48000), 2 if info.channels >= 2 else 1
