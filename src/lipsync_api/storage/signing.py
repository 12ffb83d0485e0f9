"""Signed file URLs (pure): ``/v2/files/<key>?expires=<unix>&signature=<hex>``.

The signature is HMAC-SHA256(secret, ``f"{key}\\n{expires}"``) in lowercase hex. Keys cannot contain a
newline (see ``validate_key``), so the message is unambiguous. The URL works without the API key; the
HTTP layer answers 403 to anything but ``SignatureCheck.OK``.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
from urllib.parse import quote

from lipsync_api.storage import validate_key

FILES_ROUTE = "/v2/files/"
# Canonical decimal only (no leading zeros), so one expiry has exactly one spelling; 12 digits covers the
# next 30,000 years and keeps int() cheap on hostile input.
_EXPIRES = re.compile(r"0|[1-9][0-9]{0,11}")
_SIGNATURE = re.compile(r"[0-9a-f]{64}")


class SignatureCheck(enum.Enum):
    """The outcome of checking a signed URL."""

    OK = "ok"
    EXPIRED = "expired"
    INVALID = "invalid"


def url_signature(secret: str, key: str, expires_at: int) -> str:
    """HMAC-SHA256 of ``"<key>\\n<expires>"`` keyed by the UTF-8 secret, in hex."""
    if not secret:
        raise ValueError("URL signing secret must not be empty")
    message = f"{key}\n{expires_at}".encode()
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def sign_url_path(secret: str, key: str, expires_at: int) -> str:
    """The query string ``?expires=<unix>&signature=<hex>`` for ``key``; ValueError for a bad key."""
    validate_key(key)
    if expires_at < 0:
        raise ValueError("expires_at must be a non-negative unix time")
    return f"?expires={expires_at}&signature={url_signature(secret, key, expires_at)}"


def quote_key(key: str) -> str:
    """The key URL-quoted one segment at a time, keeping its slashes."""
    return "/".join(quote(segment, safe="") for segment in validate_key(key).split("/"))


def signed_file_url(secret: str, key: str, expires_at: int) -> str:
    """The full relative URL ``/v2/files/<key>?expires=..&signature=..``."""
    return f"{FILES_ROUTE}{quote_key(key)}{sign_url_path(secret, key, expires_at)}"


def verify(secret: str, key: str, expires: str, signature: str, now: float) -> SignatureCheck:
    """Check a URL's (decoded) key and raw query values; the signature is checked before the expiry.

    Checking authenticity first means EXPIRED is only ever said of a URL this service really issued.
    """
    if not _is_valid_key(key) or _EXPIRES.fullmatch(expires) is None:
        return SignatureCheck.INVALID
    if _SIGNATURE.fullmatch(signature) is None:
        return SignatureCheck.INVALID
    expected = url_signature(secret, key, int(expires))
    if not hmac.compare_digest(expected, signature):
        return SignatureCheck.INVALID
    return SignatureCheck.OK if now < int(expires) else SignatureCheck.EXPIRED


def _is_valid_key(key: str) -> bool:
    """validate_key as a predicate."""
    try:
        validate_key(key)
    except ValueError:
        return False
    return True
