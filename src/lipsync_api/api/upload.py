"""Streaming multipart reading for batch uploads: the file part is refused once it passes the limit.

Starlette's form parser spools a whole upload before the route runs; this parser reads the request
stream itself and stops at the first byte past the limit, so an oversize file costs at most the limit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from lipsync_api.domain.batchfile import LineProblem, error_body
from lipsync_api.errors import BatchFileTooLarge, InvalidRequestError

FILE_FIELD = "input"
MAX_FIELD_BYTES = 64 * 1024


@dataclass
class MultipartForm:
    """The parts of a form by name (the last one wins), with a byte cap per part."""

    file_limit: int
    parts: dict[str, bytes] = field(default_factory=dict)
    _name: str = ""
    _data: bytearray = field(default_factory=bytearray)
    _header_field: bytearray = field(default_factory=bytearray)
    _header_value: bytearray = field(default_factory=bytearray)
    _disposition: bytes = b""

    def on_part_begin(self) -> None:
        self._name, self._data, self._disposition = "", bytearray(), b""

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        if bytes(self._header_field).lower() == b"content-disposition":
            self._disposition = bytes(self._header_value)
        self._header_field, self._header_value = bytearray(), bytearray()

    def on_headers_finished(self) -> None:
        _, params = parse_options_header(self._disposition)
        self._name = params.get(b"name", b"").decode("utf-8", "replace")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        self._data += data[start:end]
        if self._name == FILE_FIELD and len(self._data) > self.file_limit:
            problem = LineProblem(None, None, None, f"the file is larger than {self.file_limit} bytes")
            raise BatchFileTooLarge(error_body([problem], 413))
        if self._name != FILE_FIELD and len(self._data) > MAX_FIELD_BYTES:
            raise InvalidRequestError(f"form field {self._name!r} is larger than {MAX_FIELD_BYTES} bytes")

    def on_part_end(self) -> None:
        if self._name:
            self.parts[self._name] = bytes(self._data)

    def text(self, name: str) -> str | None:
        """A text field's value, or None when absent."""
        raw = self.parts.get(name)
        if raw is None:
            return None
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidRequestError(f"{name}: must be UTF-8 text") from exc


async def read_multipart(request: Request, file_limit: int) -> MultipartForm:
    """Parse a ``multipart/form-data`` body as it arrives; 413 as soon as the file part passes the limit."""
    content_type, params = parse_options_header(request.headers.get("content-type"))
    boundary = params.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise InvalidRequestError("the body must be multipart/form-data with an 'input' file")
    form = MultipartForm(file_limit)
    callbacks = {
        name: getattr(form, name)
        for name in (
            "on_part_begin",
            "on_header_field",
            "on_header_value",
            "on_header_end",
            "on_headers_finished",
            "on_part_data",
            "on_part_end",
        )
    }
    parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]
    try:
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError as exc:
        raise InvalidRequestError(f"malformed multipart body: {exc}") from exc
    return form
