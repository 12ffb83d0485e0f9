"""A batch input file (JSON Lines) -> its validated requests, or every problem with its line number.

Each line is ``{"request_id": "...", "endpoint": "/v2/generate", "payload": {...}}``; the payload is
checked by the same validator as the body of ``POST /v2/generate`` (passed in, so this module stays
independent of the wire schema). Blank lines are skipped; a UTF-8 byte order mark and CRLF line ends are
accepted; anything else malformed is a problem of its line. The whole file is judged at once: a caller
gets every problem, never just the first (up to ``MAX_PROBLEMS``, then a note that the rest went unread).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from lipsync_api.text import is_unicode, shorten

GENERATE_ENDPOINT = "/v2/generate"
MAX_REQUEST_ID = 255
# Past this many problems the file is not read further: a 5 MB file of broken lines would otherwise
# cost seconds of CPU and answer with hundreds of megabytes of messages.
MAX_PROBLEMS = 1000
T = TypeVar("T")


class PayloadProblem(Protocol):
    """One problem the payload validator found: where, and what."""

    @property
    def field(self) -> str: ...

    @property
    def message(self) -> str: ...


PayloadValidator = Callable[[object], tuple[T | None, Sequence[PayloadProblem]]]


@dataclass(frozen=True)
class LineProblem:
    """One problem of the file: its line (1-based, None for the file as a whole) and what is wrong."""

    line: int | None
    request_id: str | None
    field: str | None
    message: str

    def describe(self) -> str:
        """``line 7: request_id 'a' duplicates line 3`` (the form API.md's 400 ``message`` list uses)."""
        where = f"line {self.line}: " if self.line is not None else ""
        field = f"{self.field}: " if self.field else ""
        return f"{where}{field}{self.message}"


@dataclass(frozen=True)
class BatchLine(Generic[T]):
    """A valid request: its line number, its request_id and its validated payload."""

    line: int
    request_id: str
    payload: T


@dataclass(frozen=True)
class BatchFile(Generic[T]):
    """The outcome of reading a batch file: its requests in input order, or its problems."""

    lines: tuple[BatchLine[T], ...]
    problems: tuple[LineProblem, ...]

    @property
    def ok(self) -> bool:
        """Whether the file may be accepted (no problem at all)."""
        return not self.problems


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


class _Reader(Generic[T]):
    """Checks lines one by one, remembering request_ids to spot duplicates."""

    def __init__(self, validate: PayloadValidator[T], max_requests: int) -> None:
        self.validate, self.max_requests = validate, max_requests
        self.seen: dict[str, int] = {}
        self.lines: list[BatchLine[T]] = []
        self.problems: list[LineProblem] = []
        self.count = 0

    def read(self, number: int, raw: bytes) -> None:
        text = self._text(number, raw)
        if text is None:
            return
        try:
            entry = json.loads(text, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as error:
            reason = "nested too deeply" if isinstance(error, RecursionError) else str(error)
            if "integer string conversion" in reason:  # Python's guard against huge integers
                reason = "a number has too many digits"
            if isinstance(error, json.JSONDecodeError):
                reason = f"{error.msg} at column {error.colno}"
            self._problem(number, None, None, f"not valid JSON: {reason}")
            return
        if not isinstance(entry, dict):
            self._problem(number, None, None, f"expected a JSON object, got {_kind(entry)}")
            return
        self._entry(number, entry)

    def _text(self, number: int, raw: bytes) -> str | None:
        """The line as text (None when blank or broken; a broken one is recorded)."""
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        raw = raw[:-1] if raw.endswith(b"\r") else raw
        if not raw.strip():
            return None
        self.count += 1
        if self.count == self.max_requests + 1:
            self._problem(number, None, None, f"more than {self.max_requests} requests (the limit)")
        if b"\x00" in raw:
            self._problem(number, None, None, "contains a NUL byte")
            return None
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as error:
            self._problem(number, None, None, f"not valid UTF-8 (at byte {error.start} of the line)")
            return None

    def _entry(self, number: int, entry: dict[str, object]) -> None:
        request_id = self._request_id(number, entry.get("request_id"))
        endpoint = entry.get("endpoint")
        if endpoint != GENERATE_ENDPOINT:
            shown = "missing" if endpoint is None else f"got {_kind(endpoint)}"
            if isinstance(endpoint, str):
                shown = f"{shorten(endpoint, 60)!r} is not supported"
            self._problem(number, request_id, "endpoint", f"{shown}; it must be {GENERATE_ENDPOINT!r}")
        if "payload" not in entry:
            self._problem(number, request_id, "payload", "missing")
            return
        payload, payload_problems = self.validate(entry["payload"])
        for problem in payload_problems:
            field = f"payload.{problem.field}" if problem.field else "payload"
            self._problem(number, request_id, field, problem.message)
        if payload is None and not payload_problems:  # a validator must say why; never drop a line silently
            self._problem(number, request_id, "payload", "invalid")
        if payload is not None and request_id is not None and not payload_problems:
            self.lines.append(BatchLine(number, request_id, payload))

    def _request_id(self, number: int, value: object) -> str | None:
        if value is None:
            self._problem(number, None, "request_id", "missing")
            return None
        if not isinstance(value, str) or not value.strip():
            self._problem(number, None, "request_id", f"must be a non-empty string, got {_kind(value)}")
            return None
        if len(value) > MAX_REQUEST_ID:
            self._problem(number, None, "request_id", f"longer than {MAX_REQUEST_ID} characters")
            return None
        if not is_unicode(value):  # e.g. "\ud800": it could be neither stored nor sent back as JSON
            self._problem(number, None, "request_id", "must be valid Unicode text (a lone surrogate)")
            return None
        if value in self.seen:
            self._problem(number, value, "request_id", f"{value!r} duplicates line {self.seen[value]}")
            return value
        self.seen[value] = number
        return value

    def _problem(self, number: int, request_id: str | None, field: str | None, message: str) -> None:
        self.problems.append(LineProblem(number, request_id, field, message))


def _kind(value: object) -> str:
    """A JSON value's kind, for messages."""
    if value is None:
        return "null"
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "an array"}
    return names.get(type(value), "an object")


def parse_batch_file(data: bytes, validate: PayloadValidator[T], *, max_requests: int) -> BatchFile[T]:
    """Read a whole batch file: its valid requests in order, or every problem found in it."""
    reader: _Reader[T] = _Reader(validate, max_requests)
    for number, raw in enumerate(data.split(b"\n"), start=1):
        reader.read(number, raw)
        if len(reader.problems) > MAX_PROBLEMS:
            del reader.problems[MAX_PROBLEMS:]
            message = f"only the first {MAX_PROBLEMS} problems are listed; lines after {number} were not read"
            reader.problems.append(LineProblem(None, None, None, message))
            break
    if reader.count == 0:
        reader.problems.append(LineProblem(None, None, None, "the file contains no requests"))
    if reader.problems:
        return BatchFile((), tuple(reader.problems))
    return BatchFile(tuple(reader.lines), ())


def error_body(problems: Sequence[LineProblem], status_code: int = 400) -> dict[str, object]:
    """The 400/413 body API.md describes: every problem as a message, plus (ext) structured errors."""
    return {
        "statusCode": status_code,
        "message": [problem.describe() for problem in problems],
        "errorCode": "invalid_batch_file" if status_code == 400 else "batch_file_too_large",
        "errors": [
            {"line": p.line, "request_id": p.request_id, "field": p.field, "message": p.message}
            for p in problems
        ],
    }
