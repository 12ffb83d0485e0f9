"""Operational counts read at scrape time: generations by status, the due queue, running batches.

Each is one aggregate over an index (``ix_generations_status_not_before``, ``ix_batches_status``), so a
scrape stays cheap; being read from the database, the numbers are right across restarts and processes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from lipsync_api.store.models import RUNNING_BATCH_STATUSES, Batch, Generation, GenerationStatus


@dataclass(frozen=True)
class QueueStats:
    """Generations by status, PENDING ones due now and the oldest's wait, batches not final."""

    generations_by_status: dict[str, int]
    queue_depth: int
    oldest_wait_seconds: float
    running_batches: int


async def read_queue_stats(engine: AsyncEngine, now: datetime) -> QueueStats:
    """One snapshot per statement; a due generation waits since it became due (``not_before``) or was made."""
    by_status = select(Generation.status, func.count()).group_by(Generation.status)
    waiting_since = func.coalesce(Generation.not_before, Generation.created_at)
    due = select(func.count(), func.min(waiting_since)).where(
        Generation.status == GenerationStatus.PENDING,
        or_(Generation.not_before.is_(None), Generation.not_before <= now),
    )
    running = select(func.count()).select_from(Batch).where(Batch.status.in_(RUNNING_BATCH_STATUSES))
    async with engine.connect() as connection:
        counts = {str(status): int(count) for status, count in await connection.execute(by_status)}
        depth, oldest = (await connection.execute(due)).one()
        batches = (await connection.scalar(running)) or 0
    wait = max((now - oldest).total_seconds(), 0.0) if oldest is not None else 0.0
    return QueueStats(counts, int(depth), wait, int(batches))
