"""In-process wake-ups: batch watchers, the scheduler and the webhook sender of one app.

The scheduler pokes a batch when its lines or status change (its watchers, e.g. the events stream, read
it again); the API wakes the scheduler when it creates work (a generation, a batch) or changes a batch
(a cancel); whoever stores webhook deliveries wakes the sender. Only hints: the database stays the source
of truth, and every loop still polls it (another process may be the one writing). Used from the event
loop's thread only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager


class BatchNotifier:
    """Wakes the watchers of a batch, the scheduler and the webhook sender; a wake nobody waits for costs
    next to nothing."""

    def __init__(self) -> None:
        self._watchers: dict[str, set[asyncio.Event]] = {}
        # Set when there may be work to claim (new work, or a worker handed a result back).
        self.scheduler_wake = asyncio.Event()
        # True when a batch changed outside the scheduler (a cancel): its next round sweeps too.
        self.sweep_wanted = False
        # Set when webhook deliveries were stored in this process.
        self.deliveries_wake = asyncio.Event()

    def poke(self, batch_id: str | None) -> None:
        """Tell the batch's watchers that something may have changed."""
        if batch_id is None:
            return
        for event in self._watchers.get(batch_id, ()):
            event.set()

    def work_created(self) -> None:
        """New generations may be PENDING: the scheduler claims at once instead of at its next poll."""
        self.scheduler_wake.set()

    def batch_changed(self) -> None:
        """A batch changed outside the scheduler (a cancel): its next round sweeps and finalises."""
        self.sweep_wanted = True
        self.scheduler_wake.set()

    def deliveries_stored(self) -> None:
        """Webhook deliveries were stored: the sender sends them at once instead of at its next poll."""
        self.deliveries_wake.set()

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
