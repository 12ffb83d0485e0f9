"""Storage key validation: the one gate between user-influenced names and the filesystem or a URL."""

from __future__ import annotations

from typing import cast

import pytest

from lipsync_api.storage import MAX_KEY_LENGTH, validate_key

GOOD_KEYS = [
    "outputs/org_1/gen-2/clip.mp4",
    "results/batch_01.jsonl",
    "a",
    "a/b/c.d.e",
    "x..y/z",
    "A-Z_0-9",
]

BAD_KEYS = [
    ("", "empty"),
    (".", "dot"),
    ("..", "dot-dot"),
    ("../x", "parent escape"),
    ("a/../b", "inner parent"),
    ("a/./b", "inner dot"),
    ("a/..", "trailing parent"),
    ("/abs", "absolute"),
    ("//host/share", "UNC-like"),
    ("a//b", "empty segment"),
    ("a/", "trailing slash"),
    ("a\\b", "backslash"),
    ("..\\x", "backslash escape"),
    ("a\x00b", "NUL"),
    ("a\nb", "newline (would break the signed message)"),
    ("a b", "space"),
    ("a%2Fb", "percent"),
    ("a?b", "query char"),
    ("a#b", "fragment char"),
    ("C:/x", "drive letter"),
    ("é", "non-ASCII"),
    (".hidden", "hidden file"),
    ("a/.x.tmp", "temp-file name"),
    ("~/x", "tilde"),
    ("a" * (MAX_KEY_LENGTH + 1), "too long"),
    ("a/" + "b" * 256, "segment too long"),
]


@pytest.mark.parametrize("key", GOOD_KEYS)
def test_good_keys_pass_unchanged(key: str) -> None:
    assert validate_key(key) == key


@pytest.mark.parametrize(("key", "why"), BAD_KEYS, ids=[why for _, why in BAD_KEYS])
def test_bad_keys_raise_value_error(key: str, why: str) -> None:
    with pytest.raises(ValueError, match="storage key"):
        validate_key(key)


def test_non_string_key_is_refused() -> None:
    with pytest.raises(ValueError):
        validate_key(cast(str, b"outputs/x"))
