"""Retention: delete stored objects older than the configured window."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

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


def sweep_interval(retention_seconds: float) -> float:
    """How often to sweep: a quarter of the window, at least every hour, at most every second."""
    return max(1.0, min(retention_seconds / 4, 3600.0))


RETAINED_PREFIXES = ("outputs", "results")

Sweep = Callable[[float], Awaitable[object]]


async def run_retention(
    storage: Storage,
    retention_seconds: float,
    stop: asyncio.Event,
    *,
    prefixes: Sequence[str] = RETAINED_PREFIXES,
    sweeps: Sequence[Sweep] = (),
    clock: Callable[[], float] = time.time,
) -> None:
    """Until ``stop`` is set, delete objects under ``prefixes`` past the window, and run ``sweeps``.

    A sweep gets the cutoff (unix time) and removes what it owns, e.g. uploaded assets with their rows.
    """
    interval = sweep_interval(retention_seconds)
    while not stop.is_set():
        cutoff = retention_cutoff(clock(), retention_seconds)
        try:
            for prefix in prefixes:
                await delete_older_than(storage, cutoff, prefix)
            for sweep in sweeps:
                await sweep(cutoff)
        except Exception:  # a full disk or a vanished folder must not end the loop
            logger.exception("retention sweep failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
