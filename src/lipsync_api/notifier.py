"""In-process wake-ups for batch watchers: the scheduler pokes a batch when its lines or status change.

Only a hint: the database stays the source of truth, and watchers poll it anyway (another process may
be the one writing). Used from the event loop's thread only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager


class BatchNotifier:
    """Wakes the watchers of a batch; a poke with nobody watching costs a dictionary lookup."""

    def __init__(self) -> None:
        self._watchers: dict[str, set[asyncio.Event]] = {}

    def poke(self, batch_id: str | None) -> None:
        """Tell the batch's watchers that something may have changed."""
        if batch_id is None:
            return
        for event in self._watchers.get(batch_id, ()):
            event.set()

    @contextmanager
    def watch(self, batch_id: str) -> Iterator[asyncio.Event]:
        """An event set by each poke of ``batch_id`` while the block runs (clear it before each read)."""
        event = asyncio.Event()
        self._watchers.setdefault(batch_id, set()).add(event)
        try:
            yield event
        finally:
            watchers = self._watchers.get(batch_id)
            if watchers is not None:
                watchers.discard(event)
                if not watchers:
                    del self._watchers[batch_id]
