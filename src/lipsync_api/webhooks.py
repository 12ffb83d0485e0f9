"""Webhook signing (pure): ``Sync-Signature: t=<unix seconds>,v1=<hex>`` over ``"<t>." + body``.

The body sent is exactly the bytes that were signed: compact JSON, built once by ``compact_json`` and
stored in the outbox as is, so a retry after a restart sends (and signs) the very same bytes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass

SIGNATURE_HEADER = "Sync-Signature"
WEBHOOK_ID_HEADER = "Sync-Webhook-Id"
DEFAULT_TOLERANCE_SECONDS = 300


def compact_json(payload: object) -> bytes:
    """The exact bytes a webhook body is: compact separators, UTF-8, keys in the order given."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """HMAC-SHA256 (key: the organization's webhook secret as UTF-8) of ``"<t>." + body``, in hex."""
    message = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    """The ``Sync-Signature`` header value for one delivery."""
    return f"t={timestamp},v1={signature(secret, timestamp, body)}"


@dataclass(frozen=True)
class ParsedSignature:
    """The parts of a ``Sync-Signature`` header."""

    timestamp: int
    signatures: tuple[str, ...]


def parse_signature_header(value: str) -> ParsedSignature | None:
    """``t=...,v1=...`` (several v1 allowed, for secret rotation) -> its parts; None if malformed."""
    timestamp: int | None = None
    signatures: list[str] = []
    for part in value.split(","):
        key, sep, item = part.strip().partition("=")
        if not sep:
            return None
        if key == "t" and item.isdigit():
            timestamp = int(item)
        elif key == "v1" and item:
            signatures.append(item)
    if timestamp is None or not signatures:
        return None
    return ParsedSignature(timestamp, tuple(signatures))


def verify(
    secret: str, header: str, body: bytes, now: int, tolerance: int = DEFAULT_TOLERANCE_SECONDS
) -> bool:
    """What a receiver does: the header parses, is recent enough, and one v1 matches (constant time)."""
    parsed = parse_signature_header(header)
    if parsed is None or abs(now - parsed.timestamp) > tolerance:
        return False
    expected = signature(secret, parsed.timestamp, body)
    return any(hmac.compare_digest(expected, candidate) for candidate in parsed.signatures)
