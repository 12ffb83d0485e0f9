"""Streaming ``multipart/form-data`` reading: each part is refused as soon as it passes its limit.

Starlette's form parser spools a whole upload before the route runs; this parser reads the request
stream itself and stops at the first byte past a part's limit, so an oversize part costs at most that
limit. Text fields are kept in memory (``MAX_FIELD_BYTES`` each). A file part is kept in memory (the
batch file) or, when its ``FilePart`` names a folder, written to a temporary file there as it arrives,
never held whole in memory; ``spooled_form`` removes those files when the request ends, whatever happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header
from starlette.requests import Request

from lipsync_api.domain.batchfile import LineProblem, error_body
from lipsync_api.errors import BatchFileTooLarge, InvalidRequestError, LipsyncError

FILE_FIELD = "input"
MAX_FIELD_BYTES = 64 * 1024
MAX_HEADER_BYTES = 16 * 1024
MAX_PARTS = 100
_FLUSH_BYTES = 1 << 20  # spooled data is written out (off the event loop) in pieces of about this size
_CALLBACKS = (
    "on_part_begin",
    "on_header_field",
    "on_header_value",
    "on_header_end",
    "on_headers_finished",
    "on_part_data",
    "on_part_end",
)

TooLarge = Callable[[str, int], LipsyncError]  # (part name, limit in bytes) -> the error to raise


class UploadTooLarge(LipsyncError):
    """An uploaded file over the size limit (HTTP 413)."""

    status_code = 413
    error_code = "upload_too_large"


def upload_too_large(name: str, limit: int) -> LipsyncError:
    """The 413 of an uploaded media file."""
    return UploadTooLarge(f"{name}: the file is larger than the {limit} bytes allowed")


def _batch_file_too_large(_name: str, limit: int) -> LipsyncError:
    problem = LineProblem(None, None, None, f"the file is larger than {limit} bytes")
    return BatchFileTooLarge(error_body([problem], 413))


@dataclass(frozen=True)
class FilePart:
    """How a named file part is read: its byte limit, the error past it, and where it goes.

    ``spool_dir`` None keeps the part in memory (in ``MultipartForm.parts``); a folder writes it to a
    temporary file there (in ``MultipartForm.files``).
    """

    limit: int
    too_large: TooLarge
    spool_dir: Path | None = None


@dataclass(frozen=True)
class SpooledFile:
    """A file part written to disk: where, how big, its SHA-256, and what the client called it."""

    path: Path
    size: int
    sha256: str
    filename: str | None
    content_type: str | None


class _Spool:
    """A temporary file being written: data waits in ``pending`` until it is flushed off the loop."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix="upload-", dir=folder)
        self.path = Path(name)
        self.out: BinaryIO = os.fdopen(fd, "wb")
        self.pending = bytearray()
        self.size = 0
        self.digest = hashlib.sha256()

    def write_pending(self) -> None:
        data, self.pending = bytes(self.pending), bytearray()
        self.digest.update(data)
        self.out.write(data)

    def finish(self) -> None:
        self.write_pending()
        self.out.close()

    def discard(self) -> None:
        self.out.close()
        self.path.unlink(missing_ok=True)


@dataclass
class MultipartForm:
    """The parts of a form by name (the last one wins): text and in-memory files, and spooled files."""

    file_parts: Mapping[str, FilePart]
    parts: dict[str, bytes] = field(default_factory=dict)
    files: dict[str, SpooledFile] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    _name: str = ""
    _filename: str | None = None
    _content_type: str | None = None
    _data: bytearray = field(default_factory=bytearray)
    _headers: dict[bytes, bytes] = field(default_factory=dict)
    _header_field: bytearray = field(default_factory=bytearray)
    _header_value: bytearray = field(default_factory=bytearray)
    _header_bytes: int = 0
    _part_count: int = 0
    _spool: _Spool | None = None
    _finished: list[tuple[str, _Spool, str | None, str | None]] = field(default_factory=list)
    _spools: list[_Spool] = field(default_factory=list)

    # --- parser callbacks: synchronous, so they never write file data (``drain`` does, off the loop) ----

    def on_part_begin(self) -> None:
        self._part_count += 1
        if self._part_count > MAX_PARTS:
            raise InvalidRequestError(f"the form has more than {MAX_PARTS} parts")
        self._name, self._data, self._headers, self._header_bytes = "", bytearray(), {}, 0

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]
        self._count_header_bytes(end - start)

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]
        self._count_header_bytes(end - start)

    def _count_header_bytes(self, count: int) -> None:
        self._header_bytes += count
        if self._header_bytes > MAX_HEADER_BYTES:
            raise InvalidRequestError(f"a form part's headers are larger than {MAX_HEADER_BYTES} bytes")

    def on_header_end(self) -> None:
        self._headers[bytes(self._header_field).lower()] = bytes(self._header_value)
        self._header_field, self._header_value = bytearray(), bytearray()

    def on_headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        self._name = params.get(b"name", b"").decode("utf-8", "replace")
        filename = params.get(b"filename")
        self._filename = filename.decode("utf-8", "replace") if filename is not None else None
        content_type = self._headers.get(b"content-type")
        self._content_type = content_type.decode("latin-1") if content_type else None
        policy = self.file_parts.get(self._name)
        if policy is not None and policy.spool_dir is not None:
            self._spool = _Spool(policy.spool_dir)
            self._spools.append(self._spool)

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        policy = self.file_parts.get(self._name)
        limit = policy.limit if policy is not None else MAX_FIELD_BYTES
        size = (self._spool.size if self._spool is not None else len(self._data)) + end - start
        if size > limit:
            if policy is not None:
                raise policy.too_large(self._name, limit)
            raise InvalidRequestError(f"form field {self._name!r} is larger than {MAX_FIELD_BYTES} bytes")
        if self._spool is not None:
            self._spool.pending += data[start:end]
            self._spool.size = size
        else:
            self._data += data[start:end]

    def on_part_end(self) -> None:
        if self._name:
            self.counts[self._name] = self.counts.get(self._name, 0) + 1
        if self._spool is not None:
            self._finished.append((self._name, self._spool, self._filename, self._content_type))
            self._spool = None
        elif self._name:
            self.parts[self._name] = bytes(self._data)

    # --- the rest runs in the request's task -----------------------------------------------------------

    async def drain(self) -> None:
        """Write out what the last chunk left: a finished spool whole, the current one past the threshold."""
        while self._finished:
            name, spool, filename, content_type = self._finished.pop(0)
            await asyncio.to_thread(spool.finish)
            self._keep(
                name, SpooledFile(spool.path, spool.size, spool.digest.hexdigest(), filename, content_type)
            )
        if self._spool is not None and len(self._spool.pending) >= _FLUSH_BYTES:
            await asyncio.to_thread(self._spool.write_pending)

    def _keep(self, name: str, spooled: SpooledFile) -> None:
        previous = self.files.get(name)
        if previous is not None:  # the last part of a name wins, as with text fields
            previous.path.unlink(missing_ok=True)
        self.files[name] = spooled

    def discard(self) -> None:
        """Close and remove every temporary file (synchronous: it must also run while being cancelled)."""
        for spool in self._spools:
            with contextlib.suppress(OSError):
                spool.discard()
        self._spools.clear()
        self.files.clear()

    def text(self, name: str) -> str | None:
        """A text field's value, or None when absent."""
        raw = self.parts.get(name)
        if raw is None:
            return None
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidRequestError(f"{name}: must be UTF-8 text") from exc


def is_multipart(request: Request) -> bool:
    """Whether the request's body is ``multipart/form-data``."""
    content_type, _ = parse_options_header(request.headers.get("content-type"))
    return content_type == b"multipart/form-data"


async def _read(request: Request, form: MultipartForm, expected: str) -> None:
    content_type, params = parse_options_header(request.headers.get("content-type"))
    boundary = params.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise InvalidRequestError(expected)
    callbacks = {name: getattr(form, name) for name in _CALLBACKS}
    parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]
    try:
        async for chunk in request.stream():
            parser.write(chunk)
            await form.drain()
        parser.finalize()
    except MultipartParseError as exc:
        raise InvalidRequestError(f"malformed multipart body: {exc}") from exc
    if parser.state != MultipartState.END:
        raise InvalidRequestError("malformed multipart body: it ends before its closing boundary")


async def read_multipart(request: Request, file_limit: int) -> MultipartForm:
    """A batch upload, parsed as it arrives; 413 as soon as the ``input`` file passes ``file_limit``."""
    form = MultipartForm({FILE_FIELD: FilePart(file_limit, _batch_file_too_large)})
    await _read(request, form, "the body must be multipart/form-data with an 'input' file")
    return form


@contextlib.asynccontextmanager
async def spooled_form(
    request: Request,
    file_parts: Mapping[str, FilePart],
    expected: str = "the body must be multipart/form-data",
) -> AsyncIterator[MultipartForm]:
    """The form, its spooled files on disk for the duration of the block, removed after it."""
    form = MultipartForm(file_parts)
    try:
        await _read(request, form, expected)
        yield form
    finally:
        form.discard()


def remove_stale_spools(folder: Path, cutoff: float) -> int:
    """Delete upload spools untouched since ``cutoff`` (unix time), left by a process killed mid-upload."""
    removed = 0
    for path in folder.glob("upload-*") if folder.is_dir() else ():
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
    return removed
