"""The lease life cycle of a generation: claim, renew, retry, finish, and re-queue after expiry.

Each claim increments ``attempts``; (``lease_owner``, ``attempts``) is the fencing token. Every later
write of that attempt matches on the token and on status PROCESSING, so an attempt whose lease expired
and was re-queued (or re-claimed) can change nothing: its writes match no row and report False.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, case, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import InstrumentedAttribute

from lipsync_api.errors import ErrorCode
from lipsync_api.store.models import Batch, Generation, GenerationStatus, WebhookDelivery
from lipsync_api.store.sql import rowcount, utc_literal
from lipsync_api.store.types import utc_now

_COUNTER_OF_STATUS: dict[str, str] = {
    GenerationStatus.COMPLETED: "success_count",
    GenerationStatus.FAILED: "failed_count",
    GenerationStatus.REJECTED: "failed_count",
    GenerationStatus.CANCELED: "canceled_count",
}


Announce = Callable[[Generation], Sequence[WebhookDelivery]]
"""The webhooks announcing a generation's final state; stored in the transaction that ends it."""


class Claim(NamedTuple):
    """A claimed generation and its fencing token (the attempt number this claim made)."""

    generation: Generation
    attempt: int


@dataclass(frozen=True)
class RequeueResult:
    """What ``requeue_expired`` did: ids put back to PENDING, and ids failed for using up their attempts."""

    requeued: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


class LeaseRepository:
    """Claims and finishes generations under leases; the database decides every race."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def claim_next(
        self,
        owner: str,
        lease_seconds: float,
        now: datetime | None = None,
        *,
        after_batch: str | None = None,
    ) -> Claim | None:
        """Claim the next PENDING generation that is due: interactive ones first, then batch lines.

        Batch lines come from the first batch (in id order) after ``after_batch``, wrapping around, so a
        caller that passes the batch of its previous claim serves running batches round-robin; within a
        batch, lines go in input order. One statement, ``UPDATE ... WHERE id = (SELECT ... LIMIT 1) AND
        status = 'PENDING'``: on PostgreSQL the sub-select takes ``FOR UPDATE SKIP LOCKED``, so concurrent
        claimers pass over each other's rows; SQLite runs one writer at a time, so the sub-select sees
        every earlier claim.
        """
        now = now or utc_now()
        interactive_first = case((Generation.batch_id.is_(None), 0), else_=1)
        ordering: list[ColumnElement[Any] | InstrumentedAttribute[Any]] = [
            interactive_first,
            Generation.created_at,
        ]
        if after_batch is not None:
            ordering = [interactive_first, case((Generation.batch_id > after_batch, 0), else_=1)]
        candidate = (
            select(Generation.id)
            .where(Generation.status == GenerationStatus.PENDING, _due(now))
            .order_by(
                *ordering, Generation.batch_id, Generation.line_no, Generation.created_at, Generation.id
            )
            .limit(1)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        statement = (
            update(Generation)
            .where(Generation.id == candidate, Generation.status == GenerationStatus.PENDING)
            .values(
                status=GenerationStatus.PROCESSING,
                attempts=Generation.attempts + 1,
                lease_owner=owner,
                lease_expires_at=now + timedelta(seconds=lease_seconds),
                heartbeat_at=now,
                started_at=func.coalesce(Generation.started_at, utc_literal(now)),
            )
            .returning(Generation)
            .execution_options(synchronize_session=False)
        )
        async with self._sessions.begin() as session:
            claimed = (await session.scalars(statement)).first()
        return None if claimed is None else Claim(claimed, claimed.attempts)

    async def renew_lease(
        self, generation_id: str, owner: str, attempt: int, until: datetime, *, now: datetime | None = None
    ) -> bool:
        """Extend the lease to ``until`` (a heartbeat); False when the token no longer holds."""
        values = {"lease_expires_at": until, "heartbeat_at": now or utc_now()}
        return await self._fenced_update(generation_id, owner, attempt, values)

    async def retry_later(
        self,
        generation_id: str,
        owner: str,
        attempt: int,
        not_before: datetime,
        *,
        error: str | None = None,
        error_code: str | None = None,
    ) -> bool:
        """Hand the generation back for another attempt from ``not_before`` (backoff after a failure).

        The error is kept on the PENDING row as the last failure seen, for operators.
        """
        values = {
            "status": GenerationStatus.PENDING,
            "not_before": not_before,
            "error": error,
            "error_code": error_code,
            **_released(),
        }
        return await self._fenced_update(generation_id, owner, attempt, values)

    async def finish(
        self,
        generation_id: str,
        owner: str,
        attempt: int,
        status: str,
        *,
        now: datetime | None = None,
        engine: str | None = None,
        output_key: str | None = None,
        output_duration: float | None = None,
        error: str | None = None,
        error_code: str | None = None,
        deliveries: Sequence[WebhookDelivery] = (),
    ) -> bool:
        """Record the final state, and count it in its batch in the same transaction.

        Commits only while the token holds (status PROCESSING, same owner and attempt); False otherwise,
        and then nothing at all is written. ``deliveries`` (webhooks announcing this result) are stored in
        the same transaction, so a result is never recorded without its webhook or the other way round.
        """
        now = now or utc_now()
        values: dict[str, Any] = {
            "status": status,
            "completed_at": now,
            "output_key": output_key,
            "output_duration": output_duration,
            "error": error,
            "error_code": error_code,
            "lease_expires_at": None,
        }
        if engine is not None:
            values["engine"] = engine
        async with self._sessions.begin() as session:
            finished = await _finish(session, _fence(generation_id, owner, attempt), status, values)
            if finished is not None:
                session.add_all(deliveries)
        return finished is not None

    async def requeue_expired(
        self,
        now: datetime | None = None,
        *,
        max_attempts: int | None = None,
        announce: Announce | None = None,
    ) -> RequeueResult:
        """Put PROCESSING generations whose lease has expired back to PENDING.

        With ``max_attempts``, one that has already been claimed that many times is failed instead
        (``generation_timeout``), so work that kills its worker every time cannot loop forever;
        ``announce`` gives the webhooks stored with each such failure.
        """
        now = now or utc_now()
        expired = [Generation.status == GenerationStatus.PROCESSING, Generation.lease_expires_at < now]
        failed = (
            [] if max_attempts is None else await self._fail_exhausted(expired, max_attempts, now, announce)
        )
        if max_attempts is not None:
            # A row that used up its attempts between the two statements waits for the next sweep.
            expired.append(Generation.attempts < max_attempts)
        requeue = (
            update(Generation)
            .where(*expired)
            .values(status=GenerationStatus.PENDING, **_released())
            .returning(Generation.id)
            .execution_options(synchronize_session=False)
        )
        async with self._sessions.begin() as session:
            requeued = list((await session.scalars(requeue)).all())
        return RequeueResult(requeued=requeued, failed=failed)

    async def _fail_exhausted(
        self,
        expired: list[ColumnElement[bool]],
        max_attempts: int,
        now: datetime,
        announce: Announce | None,
    ) -> list[str]:
        query = select(Generation.id, Generation.lease_owner, Generation.attempts).where(
            *expired, Generation.attempts >= max_attempts
        )
        failed: list[str] = []
        async with self._sessions.begin() as session:
            for generation_id, owner, attempt in await session.execute(query):
                values = {
                    "status": GenerationStatus.FAILED,
                    "completed_at": now,
                    "error": f"the generation's lease expired after {attempt} attempts",
                    "error_code": ErrorCode.TIMEOUT.value,
                    "lease_expires_at": None,
                }
                fence = _fence(generation_id, owner or "", attempt)
                ended = await _finish(session, fence, GenerationStatus.FAILED, values)
                if ended is not None:
                    failed.append(generation_id)
                    if announce is not None:
                        session.add_all(announce(ended))
        return failed

    async def _fenced_update(
        self, generation_id: str, owner: str, attempt: int, values: dict[str, Any]
    ) -> bool:
        statement = (
            update(Generation)
            .where(*_fence(generation_id, owner, attempt))
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        async with self._sessions.begin() as session:
            return rowcount(await session.execute(statement)) == 1


def _due(now: datetime) -> ColumnElement[bool]:
    return or_(Generation.not_before.is_(None), Generation.not_before <= now)


def _fence(generation_id: str, owner: str, attempt: int) -> list[ColumnElement[bool]]:
    return [
        Generation.id == generation_id,
        Generation.status == GenerationStatus.PROCESSING,
        Generation.lease_owner == owner,
        Generation.attempts == attempt,
    ]


def _released() -> dict[str, Any]:
    return {"lease_owner": None, "lease_expires_at": None, "heartbeat_at": None}


def counter_for(status: str) -> InstrumentedAttribute[int]:
    """The batch counter a generation ending in ``status`` is counted in (REJECTED counts as failed)."""
    name = _COUNTER_OF_STATUS.get(status)
    if name is None:
        raise ValueError(f"{status!r} is not a final generation status")
    column: InstrumentedAttribute[int] = getattr(Batch, name)
    return column


async def _finish(
    session: AsyncSession, fence: list[ColumnElement[bool]], status: str, values: dict[str, Any]
) -> Generation | None:
    """End the fenced generation and count it in its batch; the ended row, or None when the fence failed."""
    counter = counter_for(status)
    statement = (
        update(Generation)
        .where(*fence)
        .values(**values)
        .returning(Generation)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    ended = (await session.scalars(statement)).first()
    if ended is None:
        return None
    if ended.batch_id is not None:
        bump = (
            update(Batch)
            .where(Batch.id == ended.batch_id)
            .values({counter: counter + 1, Batch.version: Batch.version + 1})
            .execution_options(synchronize_session=False)
        )
        await session.execute(bump)
    return ended
