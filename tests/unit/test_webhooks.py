"""Webhook signing and verification (webhooks.py), checked against an independent computation."""

from __future__ import annotations

import hashlib
import hmac

from hypothesis import given
from hypothesis import strategies as st

from lipsync_api.webhooks import (
    compact_json,
    parse_signature_header,
    signature,
    signature_header,
    verify,
)

SECRET = "whsec_test_123"
BODY = compact_json({"id": "b1", "status": "COMPLETED", "metrics": {"total_generations": 2}})


def test_body_is_compact_utf8_json() -> None:
    assert BODY == b'{"id":"b1","status":"COMPLETED","metrics":{"total_generations":2}}'
    assert compact_json({"name": "Zoë"}) == '{"name":"Zoë"}'.encode()


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    expected = hmac.new(SECRET.encode(), b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert signature(SECRET, 1700000000, BODY) == expected
    assert signature_header(SECRET, 1700000000, BODY) == f"t=1700000000,v1={expected}"


def test_receiver_accepts_a_fresh_signature_and_rejects_tampering() -> None:
    header = signature_header(SECRET, 1700000000, BODY)
    assert verify(SECRET, header, BODY, now=1700000010)
    assert not verify(SECRET, header, BODY + b" ", now=1700000010)
    assert not verify("other-secret", header, BODY, now=1700000010)
    assert not verify(SECRET, header, BODY, now=1700000000 + 301)


def test_several_v1_values_any_may_match() -> None:
    good = signature(SECRET, 5, BODY)
    assert verify(SECRET, f"t=5,v1=deadbeef,v1={good}", BODY, now=5)


def test_malformed_headers() -> None:
    for header in ("", "t=abc,v1=x", "v1=abc", "t=5", "t=5;v1=x", "garbage"):
        assert parse_signature_header(header) is None
        assert not verify(SECRET, header, BODY, now=5)


@given(st.text(max_size=40), st.binary(max_size=200), st.integers(min_value=0, max_value=2**40))
def test_sign_then_verify_round_trips(secret: str, body: bytes, timestamp: int) -> None:
    assert verify(secret, signature_header(secret, timestamp, body), body, now=timestamp)
