"""Opaque listing cursors: the last (created_at, id) a page showed, as URL-safe text."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime

from lipsync_api.errors import InvalidRequestError


class InvalidCursorError(InvalidRequestError):
    """A ``cursor`` that this service did not hand out (HTTP 400)."""

    error_code = "invalid_cursor"


def encode_cursor(created_at: datetime, row_id: str) -> str:
    """The cursor that continues a newest-first listing after this row."""
    raw = json.dumps([created_at.isoformat(), row_id], separators=(",", ":")).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The (created_at, id) inside a cursor; ``InvalidCursorError`` when it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, row_id = json.loads(raw.decode("utf-8"))
        when = datetime.fromisoformat(created)
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError) as exc:
        raise InvalidCursorError("cursor is not valid") from exc
    if not isinstance(row_id, str) or when.tzinfo is None:
        raise InvalidCursorError("cursor is not valid")
    return when, row_id
