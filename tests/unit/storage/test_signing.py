"""Signed file URLs: round trip, every kind of tampering, expiry and malformed input."""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lipsync_api.storage.signing import (
    SignatureCheck,
    sign_url_path,
    signed_file_url,
    url_signature,
    verify,
)

SECRET = "test-url-secret"
KEY = "outputs/org_1/gen_1/clip.mp4"
EXPIRES = 1_700_000_600
NOW = 1_700_000_000


def _query(secret: str = SECRET, key: str = KEY, expires: int = EXPIRES) -> tuple[str, str]:
    """The (expires, signature) values a signed query string carries."""
    params = parse_qs(sign_url_path(secret, key, expires).removeprefix("?"), strict_parsing=True)
    return params["expires"][0], params["signature"][0]


def test_signature_is_hmac_sha256_of_key_newline_expires() -> None:
    expected = hmac.new(SECRET.encode(), f"{KEY}\n{EXPIRES}".encode(), hashlib.sha256).hexdigest()
    assert sign_url_path(SECRET, KEY, EXPIRES) == f"?expires={EXPIRES}&signature={expected}"


def test_round_trip_is_ok_before_expiry() -> None:
    expires, signature = _query()
    assert verify(SECRET, KEY, expires, signature, NOW) is SignatureCheck.OK


def test_full_url_shape_and_round_trip() -> None:
    url = signed_file_url(SECRET, KEY, EXPIRES)
    parts = urlsplit(url)
    assert parts.path == f"/v2/files/{KEY}"
    params = parse_qs(parts.query)
    assert verify(SECRET, KEY, params["expires"][0], params["signature"][0], NOW) is SignatureCheck.OK


def test_full_url_quotes_per_segment() -> None:
    # Every valid key is URL-safe already; quoting must keep slashes and change nothing else.
    assert signed_file_url(SECRET, "a/b-c_d.e", 5).startswith("/v2/files/a/b-c_d.e?expires=5&")


@pytest.mark.parametrize(
    ("key", "expires_delta", "secret"),
    [
        ("outputs/org_1/gen_1/clip2.mp4", 0, SECRET),
        ("outputs/org_2/gen_1/clip.mp4", 0, SECRET),
        (KEY, 1, SECRET),
        (KEY, -1, SECRET),
        (KEY, 0, "another-secret"),
    ],
    ids=["other-file", "other-org", "later-expiry", "earlier-expiry", "other-secret"],
)
def test_tampered_key_expiry_or_secret_is_invalid(key: str, expires_delta: int, secret: str) -> None:
    expires, signature = _query()
    assert verify(secret, key, str(int(expires) + expires_delta), signature, NOW) is SignatureCheck.INVALID


def test_tampered_signature_is_invalid() -> None:
    expires, signature = _query()
    flipped = ("0" if signature[0] != "0" else "1") + signature[1:]
    assert verify(SECRET, KEY, expires, flipped, NOW) is SignatureCheck.INVALID


def test_past_expiry_is_expired_and_the_boundary_is_exclusive() -> None:
    expires, signature = _query()
    assert verify(SECRET, KEY, expires, signature, EXPIRES) is SignatureCheck.EXPIRED
    assert verify(SECRET, KEY, expires, signature, EXPIRES + 3600) is SignatureCheck.EXPIRED
    assert verify(SECRET, KEY, expires, signature, EXPIRES - 0.5) is SignatureCheck.OK


def test_expired_and_tampered_is_invalid_not_expired() -> None:
    expires, signature = _query()
    assert verify(SECRET, "outputs/x", expires, signature, EXPIRES + 1) is SignatureCheck.INVALID


@pytest.mark.parametrize(
    "expires",
    [
        "",
        "-1",
        "+1700000600",
        " 1700000600",
        "1700000600 ",
        "1.5",
        "1e9",
        "0x10",
        "١٢٣",
        "01700000600",
        "9" * 13,
    ],
)
def test_malformed_expires_is_invalid(expires: str) -> None:
    _, signature = _query()
    assert verify(SECRET, KEY, expires, signature, NOW) is SignatureCheck.INVALID


def test_leading_zero_expiry_is_not_an_alias() -> None:
    # "0600" and "600" are the same int: accepting both would make one signature fit two URLs.
    expires, signature = _query()
    assert verify(SECRET, KEY, "0" + expires, signature, NOW) is SignatureCheck.INVALID


@pytest.mark.parametrize(
    "signature",
    ["", "abc", "z" * 64, "0" * 63, "0" * 65, "g" * 64, " " + "0" * 63],
)
def test_malformed_signature_is_invalid(signature: str) -> None:
    expires, _ = _query()
    assert verify(SECRET, KEY, expires, signature, NOW) is SignatureCheck.INVALID


def test_uppercase_hex_signature_is_invalid() -> None:
    expires, signature = _query()
    assert verify(SECRET, KEY, expires, signature.upper(), NOW) is SignatureCheck.INVALID


@pytest.mark.parametrize("key", ["../x", "/abs", "a//b", "a\\b", "", "a\nb"])
def test_bad_key_is_invalid_on_verify_and_refused_on_sign(key: str) -> None:
    assert verify(SECRET, key, str(EXPIRES), "0" * 64, NOW) is SignatureCheck.INVALID
    with pytest.raises(ValueError):
        sign_url_path(SECRET, key, EXPIRES)


def test_empty_secret_and_negative_expiry_are_refused() -> None:
    with pytest.raises(ValueError, match="secret"):
        url_signature("", KEY, EXPIRES)
    with pytest.raises(ValueError, match="expires_at"):
        sign_url_path(SECRET, KEY, -1)


_segment = st.from_regex(r"[A-Za-z0-9_\-][A-Za-z0-9_.\-]{0,20}", fullmatch=True)
_keys = st.lists(_segment, min_size=1, max_size=5).map("/".join)


@given(
    secret=st.text(min_size=1, max_size=40),
    key=_keys,
    expires=st.integers(min_value=0, max_value=10**12 - 1),
    ttl=st.integers(min_value=1, max_value=10**6),
)
def test_round_trip_for_any_key_secret_and_expiry(secret: str, key: str, expires: int, ttl: int) -> None:
    params = parse_qs(urlsplit(signed_file_url(secret, key, expires)).query)
    got_expires, got_signature = params["expires"][0], params["signature"][0]
    assert verify(secret, key, got_expires, got_signature, expires - ttl) is SignatureCheck.OK
    assert verify(secret, key, got_expires, got_signature, expires) is SignatureCheck.EXPIRED
