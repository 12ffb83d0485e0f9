"""Probe a media URL for estimates (durations, frame rate), reading the headers rather than the file.

When the host honours HTTP Range requests, PyAV opens a seekable view of the remote file that fetches
blocks on demand, so a probe reads the container headers (FFmpeg's stream analysis held to 64 kB: a WAV
takes one 256 kB request), not the whole file; a temporary folder is made only when a file must be saved.
A host that answers the first Range request with the whole body gets a capped download, probed exactly as
the engine probes. Every request goes through the engine's guarded client: the same address guard,
timeouts, redirect limit and size cap as the fetch a generation makes.

A header probe decodes no frame, so a stream that cannot be decoded is only found when the generation
runs; its rotation and variable-rate flag come from the headers alone (estimates need neither).
"""

from __future__ import annotations

import contextlib
import functools
import io
import re
import tempfile
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import av
import httpx
from av.container import InputContainer
from av.stream import Stream

from lipsync_api.engine.decode import first_audio_stream, first_video_stream
from lipsync_api.engine.fetch import (
    FetchFailure,
    _check_status,
    _client,
    _describe,
    _error,
    _redirect_target,
    _save,
    _too_large,
    fetch_input,
)
from lipsync_api.engine.media import MediaInfo, _audio_info, _Sample, _tag_seconds, _video_info, probe
from lipsync_api.engine.request import FetchLimits
from lipsync_api.errors import media_unsupported
from lipsync_api.netguard import BlockedAddressError, Resolver, system_resolver

BLOCK = 64 * 1024
FIRST_BLOCKS = 4  # the first request's read-ahead: most containers' headers fit
MAX_RUN_BLOCKS = 16  # most blocks one request fetches (a sequential reader asks for more at once)
MAX_CACHED_BLOCKS = 256  # 16 MB held per open file at most; the oldest blocks go first
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)")
_FIRST_RANGE = {"Range": f"bytes=0-{FIRST_BLOCKS * BLOCK - 1}"}
_AVSEEK_FORCE = 0x20000  # a flag FFmpeg may add to a seek's whence
_NO_PATH = Path("/nonexistent")  # header probes only run when no duration has to be scanned from a file
# FFmpeg's stream analysis reads 5 MB or 5 s of packets by default; the headers already say what an estimate
# needs (a WAV's duration, an MP4's moov), and a WAV's analysis alone cost three requests and 1.8 MB.
HEADER_PROBE_OPTIONS = {"probesize": "65536", "analyzeduration": "0"}


class RangeReader(io.RawIOBase):
    """A seekable, read-only view of a remote file of ``size`` bytes, fetched in blocks on demand."""

    def __init__(
        self, client: httpx.Client, url: str, size: int, first: bytes, deadline: float | None
    ) -> None:
        super().__init__()
        self._client, self._url, self._size, self._deadline = client, url, size, deadline
        self._blocks: OrderedDict[int, bytes] = OrderedDict()
        self._pos = 0
        self._run = FIRST_BLOCKS  # blocks per request: doubles while reading on, back to 1 after a seek
        self._fetched_to = len(first)
        self.requests = 1  # the first one, made by the caller
        self.bytes_fetched = len(first)
        self._store(0, first)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        whence &= ~_AVSEEK_FORCE
        if whence not in (io.SEEK_SET, io.SEEK_CUR, io.SEEK_END):
            raise ValueError(f"unsupported whence {whence}")
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def read(self, size: int | None = -1) -> bytes:
        wanted = self._size - self._pos if size is None or size < 0 else size
        out = bytearray()
        while len(out) < wanted and self._pos < self._size:
            index, offset = divmod(self._pos, BLOCK)
            block = self._block(index, wanted - len(out))
            piece = block[offset : offset + wanted - len(out)]
            if not piece:
                break
            out += piece
            self._pos += len(piece)
        return bytes(out)

    def _block(self, index: int, wanted: int) -> bytes:
        if index not in self._blocks:
            self._fetch(index, wanted)
        self._blocks.move_to_end(index)
        return self._blocks[index]

    def _fetch(self, index: int, wanted: int) -> None:
        """Fetch the missing blocks from ``index`` on, enough for ``wanted`` bytes (within the limits)."""
        if self._deadline is not None and time.monotonic() > self._deadline:
            raise FetchFailure("not read within the estimate's time limit", transient=True)
        start = index * BLOCK
        self._run = min(MAX_RUN_BLOCKS, 2 * self._run) if start == self._fetched_to else 1
        count = min(MAX_RUN_BLOCKS, max(self._run, -(-wanted // BLOCK)))
        while count > 1 and index + count - 1 in self._blocks:
            count -= 1
        end = min(self._size, start + count * BLOCK) - 1
        with self._client.stream("GET", self._url, headers={"Range": f"bytes={start}-{end}"}) as response:
            self.requests += 1
            data = _ranged_body(response, start, end, self._size)
        self.bytes_fetched += len(data)
        self._fetched_to = end + 1
        self._store(start, data)

    def _store(self, start: int, data: bytes) -> None:
        for offset in range(0, len(data), BLOCK):
            self._blocks[(start + offset) // BLOCK] = data[offset : offset + BLOCK]
        while len(self._blocks) > MAX_CACHED_BLOCKS:
            self._blocks.popitem(last=False)


class RangeUnsupported(FetchFailure):
    """The host's answers to Range requests cannot be relied on; the file is fetched whole instead."""


def _content_range(response: httpx.Response) -> tuple[int, int, int] | None:
    """(first byte, last byte, file size) of a 206's ``Content-Range``; None when absent or unreadable."""
    found = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", "").strip())
    return (int(found[1]), int(found[2]), int(found[3])) if found else None


def _ranged_body(response: httpx.Response, start: int, end: int, size: int) -> bytes:
    """The body of a 206 answering exactly bytes ``start``-``end`` of a ``size``-byte file."""
    if response.status_code != 206:
        _check_status(response)
        raise RangeUnsupported(f"a Range request was answered with HTTP {response.status_code}")
    if _content_range(response) != (start, end, size):
        raise RangeUnsupported("a Range request was answered with another range, or the file changed")
    data = bytearray()
    for chunk in response.iter_bytes(BLOCK):
        data += chunk
        if len(data) > end - start + 1:
            raise RangeUnsupported("a Range request was answered with more bytes than asked for")
    if len(data) != end - start + 1:
        raise RangeUnsupported("a Range request was answered with fewer bytes than announced")
    return bytes(data)


@dataclass(frozen=True)
class _Job:
    """One probe's fixed inputs, and a temporary folder made only if the probe must save a file."""

    limits: FetchLimits
    max_fps: int
    deadline: float | None
    folders: contextlib.ExitStack
    resolver: Resolver

    @functools.cached_property
    def work(self) -> Path:
        """The probe's temporary folder (removed when the probe ends)."""
        return Path(self.folders.enter_context(tempfile.TemporaryDirectory(prefix="probe-")))

    def fetch_whole(self, url: str) -> MediaInfo:
        """The engine's own download of ``url``, probed as the engine probes."""
        return probe(
            fetch_input(url, self.work, self.limits, allow_local=False, resolver=self.resolver), self.max_fps
        )


class UrlProber:
    """Probes URLs through one guarded client shared by its calls (and threads), kept until closed.

    Building a client costs tens of milliseconds (its TLS context), and a shared one keeps connections to a
    host alive from one probe to the next: a campaign's thousand audio tracks usually share a host.
    """

    def __init__(self, limits: FetchLimits, max_fps: int, resolver: Resolver = system_resolver) -> None:
        self.limits, self.max_fps, self.resolver = limits, max_fps, resolver
        self._client = _client(limits, resolver)

    def __call__(self, url: str, deadline: float | None = None) -> MediaInfo:
        """Describe the media at ``url`` as ``media.probe`` would (headers only when the host allows ranges).

        Raises GenerationError: ``generation_media_fetch_failed`` naming the URL, or the probe's own codes.
        ``deadline`` (a ``time.monotonic()`` value) stops further requests once passed.
        """
        with contextlib.ExitStack() as folders:
            job = _Job(self.limits, self.max_fps, deadline, folders, self.resolver)
            if urlsplit(url).scheme not in ("http", "https"):
                return job.fetch_whole(url)  # refuses it with the engine's own message
            return _probe_http(self._client, url, job)

    def close(self) -> None:
        """Close the shared client's connections."""
        self._client.close()


def probe_url(
    url: str,
    limits: FetchLimits,
    max_fps: int,
    *,
    deadline: float | None = None,
    resolver: Resolver = system_resolver,
) -> MediaInfo:
    """One probe with a client of its own (see ``UrlProber``)."""
    prober = UrlProber(limits, max_fps, resolver)
    try:
        return prober(url, deadline)
    finally:
        prober.close()


def _probe_http(client: httpx.Client, url: str, job: _Job) -> MediaInfo:
    """Ask for the first blocks, following redirects by hand as the engine's fetch does."""
    current = url
    try:
        for _ in range(job.limits.max_redirects + 1):
            with client.stream("GET", current, headers=_FIRST_RANGE) as response:
                if not response.is_redirect:
                    return _probe_answer(client, response, current, job)
                current = _redirect_target(response)
        raise FetchFailure(f"too many redirects (max {job.limits.max_redirects})")
    except BlockedAddressError as exc:
        raise _error(url, current, FetchFailure(exc.reason)) from exc
    except (FetchFailure, httpx.HTTPError, httpx.InvalidURL) as exc:
        failure = exc if isinstance(exc, FetchFailure) else _describe(exc, job.limits)
        raise _error(url, current, failure) from exc


def _probe_answer(client: httpx.Client, response: httpx.Response, url: str, job: _Job) -> MediaInfo:
    """Probe from the answer to the first Range request: through ranges, or from the whole body."""
    if response.status_code == 200:  # the host ignores Range: this is the whole file
        return probe(_save(response, job.work, job.limits.max_bytes), job.max_fps)
    found = _content_range(response)
    if response.status_code != 206 or found is None:
        if response.status_code != 416:  # "range not satisfiable": the file is empty
            _check_status(response)
        return job.fetch_whole(url)  # the engine's download decides, as it will for the generation
    size = found[2]
    if size > job.limits.max_bytes:
        raise _too_large(job.limits.max_bytes)
    try:
        first = _ranged_body(response, 0, min(size, FIRST_BLOCKS * BLOCK) - 1, size)
        return _probe_ranged(RangeReader(client, url, size, first, job.deadline), job)
    except RangeUnsupported:
        return job.fetch_whole(url)


def _probe_ranged(reader: RangeReader, job: _Job) -> MediaInfo:
    """Probe through ``reader``; when the headers declare no duration, copy the file and probe the copy."""
    found = probe_headers(reader, job.max_fps)
    if found is not None:
        return found
    reader.seek(0)
    copy = job.work / "whole"
    with copy.open("wb") as out:
        while chunk := reader.read(MAX_RUN_BLOCKS * BLOCK):
            out.write(chunk)
    return probe(copy, job.max_fps)


def probe_headers(source: io.RawIOBase, max_fps: int) -> MediaInfo | None:
    """What ``media.probe`` reports, from the headers alone; None when a duration is not declared."""
    with _open(source) as container:
        video, audio = first_video_stream(container), first_audio_stream(container)
        if video is None and audio is None:
            raise media_unsupported("input has no audio or video stream")
        if not all(_declares_duration(container, s) for s in (video, audio) if s is not None):
            return None
        unsampled = _Sample(None, [])
        video_info = _video_info(_NO_PATH, container, video, unsampled, max_fps) if video else None
        audio_info = _audio_info(_NO_PATH, container, audio) if audio else None
        if container.duration:
            duration = container.duration / av.time_base
        else:
            duration = max(info.duration for info in (video_info, audio_info) if info is not None)
        return MediaInfo(container.format.name, duration, video_info, audio_info)


def _open(source: io.RawIOBase) -> InputContainer:
    try:
        return av.open(source, mode="r", options=HEADER_PROBE_OPTIONS)
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise media_unsupported(f"input is not a decodable media file: {reason}") from exc


def _declares_duration(container: InputContainer, stream: Stream) -> bool:
    """Whether ``media`` can tell the stream's duration without scanning its packets."""
    declared = stream.duration and stream.time_base
    return bool(declared or _tag_seconds(stream.metadata.get("DURATION", "")) or container.duration)
