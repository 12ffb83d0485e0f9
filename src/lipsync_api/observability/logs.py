"""Structured logs: one event per line, JSON when stderr is not a terminal, ids attached, secrets redacted.

``configure_logging`` puts one handler on the root logger (uvicorn's loggers, access log included,
propagate to it). Each line carries timestamp, level, logger, message and the request, batch and
generation ids known where it was logged (``observability.context``). A redaction filter on the handler
is the safety net: API keys, webhook secrets, signatures of signed URLs and any registered secret value
(the URL-signing secret, a configured bootstrap key) are replaced before a line is written.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Literal, TextIO

from lipsync_api.observability.context import current_ids

LogFormat = Literal["auto", "json", "text"]

REDACTED = "[REDACTED]"
ID_FIELDS = ("request_id", "batch_id", "generation_id")
_HANDLER_MARK = "_lipsync_handler"
_MIN_SECRET_LENGTH = 8

# (pattern, replacement): each keeps the name and hides the value.
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Query parameters and key=value pairs that carry credentials: signature=, X-Amz-Signature=, token=...
    (
        re.compile(
            r"(?i)\b([\w.\-]*(?:signature|token|secret|password|passwd|api[_-]?key|credential)=)"
            r"(?!\[REDACTED\])[^&#\s\"'<>,;)]+"
        ),
        r"\1" + REDACTED,
    ),
    # Headers written out: "x-api-key: ...", "Authorization: Bearer ...", "Sync-Signature: t=..,v1=..".
    (
        re.compile(
            r"(?i)((?:x-api-key|authorization|sync-signature)[\"']?\s*[:=]\s*[\"']?)"
            r"(?:(?:bearer|basic)\s+)?(?!\[REDACTED\])[^\s\"',}]+"
        ),
        r"\1" + REDACTED,
    ),
    (re.compile(r"\blsk_[A-Za-z0-9_\-]{8,}"), "lsk_" + REDACTED),  # API keys
    (re.compile(r"\bwhsec_[A-Za-z0-9_\-]{8,}"), "whsec_" + REDACTED),  # webhook secrets
    (re.compile(r"\bv1=[0-9a-fA-F]{16,}"), "v1=" + REDACTED),  # a webhook signature's HMAC
)

# Every pattern above needs one of these words; a line without any (most lines: an access log line) skips
# the five substitutions, which cost more than writing the line.
_MAY_HOLD_SECRET = re.compile(
    r"(?i)signature|token|secret|passw|api[_-]?key|credential|authorization|lsk_|whsec_|v1="
)

_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def register_secret(*values: str | None) -> None:
    """Values that must never appear in a log line (shorter than 8 characters: ignored, too common)."""
    with _secrets_lock:
        _secrets.update(value for value in values if value and len(value) >= _MIN_SECRET_LENGTH)


def redact(text: str) -> str:
    """``text`` with credentials and registered secrets replaced by ``[REDACTED]``."""
    with _secrets_lock:
        literals = sorted(_secrets, key=len, reverse=True)
    for literal in literals:
        text = text.replace(literal, REDACTED)
    if _MAY_HOLD_SECRET.search(text) is None:
        return text
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """Rewrites a record's message, traceback and stack so that no secret reaches any handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


class ContextFilter(logging.Filter):
    """Puts the ids of the logging call's context on the record (unless it carries its own)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in current_ids().items():
            if getattr(record, name, None) is None:
                setattr(record, name, value)
        return True


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _ids(record: logging.LogRecord) -> dict[str, str]:
    return {name: str(value) for name in ID_FIELDS if (value := getattr(record, name, None)) is not None}


def _trace(formatter: logging.Formatter, record: logging.LogRecord) -> str | None:
    if record.exc_info and not record.exc_text:
        record.exc_text = formatter.formatException(record.exc_info)
    parts = [part for part in (record.exc_text, record.stack_info) if part]
    return redact("\n".join(parts)) if parts else None


class JsonFormatter(logging.Formatter):
    """One JSON object per line: timestamp, level, logger, message, known ids, exception."""

    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, str] = {
            "timestamp": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
            **_ids(record),
        }
        if (trace := _trace(self, record)) is not None:
            event["exception"] = trace
        return json.dumps(event, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """A readable line for a terminal: time, level, logger, message, then the known ids."""

    def format(self, record: logging.LogRecord) -> str:
        ids = " ".join(f"{name}={value}" for name, value in _ids(record).items())
        line = f"{_timestamp(record)} {record.levelname:<7} {record.name}: {redact(record.getMessage())}"
        line += f"  [{ids}]" if ids else ""
        if (trace := _trace(self, record)) is not None:
            line += "\n" + trace
        return line


def configure_logging(
    level: str | int = "INFO",
    fmt: LogFormat = "auto",
    *,
    stream: TextIO | None = None,
    secrets: Iterable[str | None] = (),
) -> logging.Handler:
    """Log every logger (uvicorn's included) through one redacting handler on ``stream`` (stderr).

    ``auto`` writes JSON unless the stream is a terminal. Calling it again replaces the handler it added
    before (and leaves any other handler alone). Returns the handler.
    """
    register_secret(*secrets)
    out = stream or sys.stderr
    as_json = fmt == "json" or (fmt == "auto" and not _is_terminal(out))
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter() if as_json else TextFormatter())
    handler.addFilter(ContextFilter())
    handler.addFilter(RedactingFilter())
    setattr(handler, _HANDLER_MARK, True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
    # aiosqlite's debug lines repeat SQL parameters (key hashes, webhook secrets): never wanted.
    logging.getLogger("aiosqlite").setLevel(logging.WARNING)
    return handler


def remove_handler(handler: logging.Handler) -> None:
    """Take a handler ``configure_logging`` added off the root logger again."""
    logging.getLogger().removeHandler(handler)


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
