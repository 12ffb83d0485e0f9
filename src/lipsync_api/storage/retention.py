"""Retention: delete stored objects older than the configured window."""

from __future__ import annotations

import logging

from lipsync_api.storage import Storage

logger = logging.getLogger(__name__)


async def delete_older_than(storage: Storage, cutoff: float, prefix: str = "") -> list[str]:
    """Delete objects under the folder key ``prefix`` last modified before ``cutoff`` (unix seconds).

    Returns the keys actually deleted; one that vanished meanwhile (a concurrent sweep) is left out.
    """
    deleted: list[str] = []
    for key in await storage.list_older_than(cutoff, prefix):
        if await storage.delete(key):
            deleted.append(key)
    if deleted:
        logger.info("retention deleted %d stored objects older than %s", len(deleted), cutoff)
    return deleted


def retention_cutoff(now: float, retention_seconds: float) -> float:
    """The unix time before which objects are past a retention window of ``retention_seconds``."""
    if retention_seconds <= 0:
        raise ValueError("retention window must be positive")
    return now - retention_seconds
