"""Where outputs and results files live: a small protocol over object keys, and strict key validation.

A key is a relative POSIX path such as ``outputs/<org>/<generation>/clip.mp4``. Keys reach the
filesystem and URLs, so they are validated strictly before any backend touches them.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol, runtime_checkable

MAX_KEY_LENGTH = 1024
MAX_SEGMENT_LENGTH = 255
# A segment may not start with "." so "." / ".." / hidden names are impossible, and the local backend's
# temporary files (".<name>.<random>.tmp") can never collide with, or be listed as, a key.
_SEGMENT = re.compile(r"[A-Za-z0-9_\-][A-Za-z0-9_.\-]*")


class ObjectNotFoundError(LookupError):
    """The key names no stored object."""


def validate_key(key: str) -> str:
    """Return ``key`` unchanged if it is a safe relative POSIX key; raise ValueError naming the problem."""
    if not isinstance(key, str) or not key:
        raise ValueError("storage key must be a non-empty string")
    if len(key) > MAX_KEY_LENGTH:
        raise ValueError(f"storage key longer than {MAX_KEY_LENGTH} characters")
    if key.startswith("/"):
        raise ValueError(f"storage key must be relative, got {key!r}")
    for segment in key.split("/"):
        _validate_segment(key, segment)
    return key


def _validate_segment(key: str, segment: str) -> None:
    """One path segment: non-empty, bounded, limited charset, no leading dot."""
    if not segment:
        raise ValueError(f"storage key has an empty segment: {key!r}")
    if len(segment) > MAX_SEGMENT_LENGTH:
        raise ValueError(f"storage key segment longer than {MAX_SEGMENT_LENGTH} characters: {key!r}")
    if _SEGMENT.fullmatch(segment) is None:
        raise ValueError(
            f"storage key segment {segment!r} must use only A-Z a-z 0-9 _ - . and not start with '.': {key!r}"
        )


@runtime_checkable
class Storage(Protocol):
    """An object store addressed by validated keys; every method raises ValueError for a bad key."""

    async def put_file(self, key: str, source_path: Path) -> None:
        """Store a copy of a local file under ``key``, atomically replacing any previous object."""
        ...

    async def put_bytes(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key``, atomically replacing any previous object."""
        ...

    async def read_bytes(self, key: str) -> bytes:
        """The whole object; ObjectNotFoundError if absent."""
        ...

    def iter_bytes(self, key: str, chunk_size: int = 1 << 20) -> AsyncIterator[bytes]:
        """Stream the object in chunks; ObjectNotFoundError (on first iteration) if absent."""
        ...

    def local_path(self, key: str) -> Path | None:
        """A filesystem path the HTTP layer may serve directly, or None for remote backends."""
        ...

    async def exists(self, key: str) -> bool:
        """Whether an object is stored under ``key``."""
        ...

    async def size(self, key: str) -> int:
        """The object's size in bytes; ObjectNotFoundError if absent."""
        ...

    async def delete(self, key: str) -> bool:
        """Remove the object; True if it existed (deleting a missing key is not an error)."""
        ...

    async def list_older_than(self, cutoff: float, prefix: str = "") -> list[str]:
        """Keys (sorted) under ``prefix`` last modified before ``cutoff`` (unix seconds)."""
        ...


__all__ = ["MAX_KEY_LENGTH", "ObjectNotFoundError", "Storage", "validate_key"]
