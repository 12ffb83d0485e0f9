"""Small helpers for text that reaches error messages: shortening, and checking it can be encoded."""

from __future__ import annotations


def shorten(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, ending in ``...`` when cut."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def is_unicode(text: str) -> bool:
    """Whether ``text`` is valid Unicode (JSON's ``"\\ud800"`` decodes to a lone surrogate, which is not)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
