"""Batches: insert with all their lines, read with metrics, list with filters and cursors, transitions.

Metrics: the final counts (success, failed, canceled) are the batch's counters, which change in the same
transaction as each line's final state; ``processing_count`` is counted from the lines over the
(batch_id, status) index, and ``pending_count`` is what remains. Both come from one statement, so one
snapshot: the numbers always add up to ``total_generations``, and a 1000-line batch costs no full scan.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, Select, and_, bindparam, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from lipsync_api.store.cursor import decode_cursor, encode_cursor
from lipsync_api.store.leases import Announce, counter_for
from lipsync_api.store.models import (
    RUNNING_BATCH_STATUSES,
    Batch,
    BatchStatus,
    Generation,
    GenerationStatus,
    WebhookDelivery,
)
from lipsync_api.store.sql import fill_generation_defaults, lock_organization, rowcount
from lipsync_api.store.types import new_id, utc_now


@dataclass(frozen=True)
class BatchMetrics:
    """A batch's progress; the five counts add up to ``total_generations``."""

    total_generations: int
    success_count: int
    failed_count: int
    canceled_count: int
    processing_count: int
    pending_count: int


class BatchRecord(NamedTuple):
    """A batch row with its metrics."""

    batch: Batch
    metrics: BatchMetrics


@dataclass(frozen=True)
class BatchPage:
    """One page of a listing; ``next_cursor`` None on the last page."""

    items: list[BatchRecord]
    next_cursor: str | None


class BatchRepository:
    """Reads and writes batch rows (and, on insert and bulk close, their lines)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def insert(
        self, batch: Batch, generations: Sequence[Generation], *, running_cap: int | None = None
    ) -> bool:
        """Store the batch and one generation per line in one transaction; False (nothing stored) over cap.

        Each generation gets the batch's id and organization; the caller sets ``line_no`` and ``request_id``.
        The organization is locked first, so two uploads at the cap cannot both pass it.
        """
        _fill_batch_defaults(batch, len(generations))
        for generation in generations:
            generation.batch_id = batch.id
            generation.organization_id = batch.organization_id
            fill_generation_defaults(generation)
        async with self._sessions.begin() as session:
            if not await lock_organization(session, batch.organization_id):
                raise LookupError(f"no organization {batch.organization_id}")
            if (
                running_cap is not None
                and await _count_running(session, batch.organization_id) >= running_cap
            ):
                return False
            session.add(batch)
            await session.flush()  # the batch row must exist before rows that refer to it
            session.add_all(generations)
        return True

    async def get(self, batch_id: str) -> BatchRecord | None:
        """The batch with its metrics, whoever owns it (for the scheduler)."""
        async with self._sessions() as session:
            return _first(await session.execute(_with_metrics().where(Batch.id == batch_id)))

    async def get_for_organization(self, organization_id: str, batch_id: str) -> BatchRecord | None:
        """The batch if it belongs to the organization, else None (another tenant's looks absent)."""
        # Core rather than the ORM session: this is the read clients poll, and it costs a tenth less so.
        engine: AsyncEngine = self._sessions.kw["bind"]
        params = {"batch_id": batch_id, "organization_id": organization_id}
        async with engine.connect() as connection:
            row = (await connection.execute(_FOR_ORGANIZATION, params)).first()
        if row is None:
            return None
        columns = dict(row._mapping)
        processing = columns.pop("processing_count")
        return _record((Batch(**columns), processing))

    async def list_for_organization(
        self,
        organization_id: str,
        *,
        statuses: Collection[str] | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> BatchPage:
        """The organization's batches newest first; both time bounds are exclusive.

        ``cursor`` is a page's ``next_cursor``: it encodes the last (created_at, id) shown, so paging is
        stable while new batches arrive. A malformed cursor raises ``InvalidCursorError``.
        """
        conditions = [Batch.organization_id == organization_id]
        if statuses:
            conditions.append(Batch.status.in_(list(statuses)))
        if created_after is not None:
            conditions.append(Batch.created_at > created_after)
        if created_before is not None:
            conditions.append(Batch.created_at < created_before)
        if cursor is not None:
            conditions.append(_after_cursor(*decode_cursor(cursor)))
        query = (
            _with_metrics()
            .where(*conditions)
            .order_by(Batch.created_at.desc(), Batch.id.desc())
            .limit(limit + 1)
        )
        async with self._sessions() as session:
            records = [_record(row) for row in (await session.execute(query)).all()]
        if len(records) <= limit:
            return BatchPage(records, None)
        last = records[limit - 1].batch
        return BatchPage(records[:limit], encode_cursor(last.created_at, last.id))

    async def list_running(self) -> list[Batch]:
        """Every organization's batches that are not final, oldest first (for the scheduler)."""
        query = select(Batch).where(Batch.status.in_(RUNNING_BATCH_STATUSES)).order_by(Batch.created_at)
        async with self._sessions() as session:
            return list((await session.scalars(query)).all())

    async def list_canceled_unfinalised(self) -> list[str]:
        """Ids of CANCELED batches whose results file is not written yet (for the finaliser)."""
        query = select(Batch.id).where(Batch.status == BatchStatus.CANCELED, Batch.results_key.is_(None))
        async with self._sessions() as session:
            return list((await session.scalars(query)).all())

    async def count_running(self, organization_id: str) -> int:
        """The organization's batches that are not final (what the per-plan batch cap counts)."""
        async with self._sessions() as session:
            return await _count_running(session, organization_id)

    async def transition(
        self,
        batch_id: str,
        to: str,
        *,
        from_statuses: Collection[str],
        expected_version: int | None = None,
        deliveries: Sequence[WebhookDelivery] = (),
        **fields: Any,
    ) -> bool:
        """Move the batch to ``to`` if it is in one of ``from_statuses`` (and at ``expected_version``).

        ``fields`` sets columns in the same statement, e.g. ``started_at``, ``completed_at``,
        ``canceled_at``, ``results_key``. ``deliveries`` (the batch's webhook) are stored in the same
        transaction when the move happens. False when the batch was not in a state to move.
        """
        conditions = [Batch.id == batch_id, Batch.status.in_(list(from_statuses))]
        if expected_version is not None:
            conditions.append(Batch.version == expected_version)
        statement = (
            update(Batch)
            .where(*conditions)
            .values(status=to, version=Batch.version + 1, **fields)
            .execution_options(synchronize_session=False)
        )
        async with self._sessions.begin() as session:
            moved = rowcount(await session.execute(statement)) == 1
            if moved:
                session.add_all(deliveries)
        return moved

    async def close_pending_lines(
        self,
        batch_id: str,
        status: str,
        *,
        now: datetime | None = None,
        error: str | None = None,
        error_code: str | None = None,
        announce: Announce | None = None,
    ) -> int:
        """End every PENDING line of the batch with ``status`` (cancel, expiry) and count them in the batch.

        Lines already PROCESSING are left to their lease holders. ``announce`` gives the webhooks of each
        closed line, stored in the same transaction. Returns how many lines were closed.
        """
        counter = counter_for(status)
        closing = (
            update(Generation)
            .where(Generation.batch_id == batch_id, Generation.status == GenerationStatus.PENDING)
            .values(status=status, completed_at=now or utc_now(), error=error, error_code=error_code)
            .returning(Generation)
            .execution_options(synchronize_session=False, populate_existing=True)
        )
        async with self._sessions.begin() as session:
            lines = list((await session.scalars(closing)).all())
            closed = len(lines)
            if announce is not None:
                session.add_all([delivery for line in lines for delivery in announce(line)])
            if closed:
                bump = (
                    update(Batch)
                    .where(Batch.id == batch_id)
                    .values({counter: counter + closed, Batch.version: Batch.version + 1})
                    .execution_options(synchronize_session=False)
                )
                await session.execute(bump)
        return closed


def _fill_batch_defaults(batch: Batch, lines: int) -> None:
    batch.id = batch.id or new_id()
    batch.created_at = batch.created_at or utc_now()
    batch.status = batch.status or BatchStatus.PENDING
    batch.total_generations = lines
    for name in ("success_count", "failed_count", "canceled_count", "version"):
        if getattr(batch, name) is None:
            setattr(batch, name, 0)


def _processing_count() -> ColumnElement[int]:
    return (
        select(func.count())
        .where(Generation.batch_id == Batch.id, Generation.status == GenerationStatus.PROCESSING)
        .correlate(Batch)
        .scalar_subquery()
    )


def _with_metrics() -> Select[Batch, int]:
    return select(Batch, _processing_count().label("processing_count"))


# Built once: constructing the statement cost a polled GET /v2/batch/{id} as much as running it.
_FOR_ORGANIZATION = select(*Batch.__table__.columns, _processing_count().label("processing_count")).where(
    Batch.id == bindparam("batch_id"), Batch.organization_id == bindparam("organization_id")
)


def _record(row: Any) -> BatchRecord:
    batch, processing = row
    done = batch.success_count + batch.failed_count + batch.canceled_count
    metrics = BatchMetrics(
        total_generations=batch.total_generations,
        success_count=batch.success_count,
        failed_count=batch.failed_count,
        canceled_count=batch.canceled_count,
        processing_count=processing,
        pending_count=max(batch.total_generations - done - processing, 0),
    )
    return BatchRecord(batch, metrics)


def _first(result: Any) -> BatchRecord | None:
    row = result.first()
    return None if row is None else _record(row)


def _after_cursor(created_at: datetime, batch_id: str) -> ColumnElement[bool]:
    # Spelled out rather than a row-value comparison so the timestamp is bound with the column's type.
    return or_(Batch.created_at < created_at, and_(Batch.created_at == created_at, Batch.id < batch_id))


async def _count_running(session: AsyncSession, organization_id: str) -> int:
    query = select(func.count()).where(
        Batch.organization_id == organization_id, Batch.status.in_(RUNNING_BATCH_STATUSES)
    )
    return (await session.scalar(query)) or 0
