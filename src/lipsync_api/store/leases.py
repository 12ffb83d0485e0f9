"""The lease life cycle of a generation: claim, renew, retry, finish, and re-queue after expiry.

Each claim increments ``attempts``; (``lease_owner``, ``attempts``) is the fencing token. Every later
write of that attempt matches on the token and on status PROCESSING, so an attempt whose lease expired
and was re-queued (or re-claimed) can change nothing: its writes match no row and report False.

The hot path (claim, finish) runs Core statements built once at import, with bound parameters: building
and ORM-loading an ``UPDATE ... RETURNING`` per line cost more than running it. ``record_and_claim`` does
a scheduler round's writes in one transaction: the results its workers handed back (each under its own
fencing token, with its batch counter and its webhooks) and the claims for its free workers.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import (
    ColumnElement,
    Row,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import InstrumentedAttribute

from lipsync_api.errors import ErrorCode
from lipsync_api.store.lease_statements import CLAIM_AFTER, CLAIM_FIRST, FINISH, update_batches
from lipsync_api.store.models import (
    Batch,
    Generation,
    GenerationStatus,
    WebhookDelivery,
)
from lipsync_api.store.sql import rowcount
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


@dataclass(frozen=True)
class Ending:
    """A claim's final state, recorded only while its fencing token (``owner``, ``attempt``) holds.

    ``deliveries`` (the webhooks announcing it) are stored in the same transaction, and only if it is.
    """

    generation_id: str
    owner: str
    attempt: int
    status: str
    completed_at: datetime
    engine: str | None = None
    output_key: str | None = None
    output_duration: float | None = None
    error: str | None = None
    error_code: str | None = None
    deliveries: Sequence[WebhookDelivery] = ()


@dataclass(frozen=True)
class RoundResult:
    """What ``record_and_claim`` did, in one transaction.

    ``recorded``: per ending, in order, whether its token held (False: nothing of it was written).
    ``claims``: the generations claimed, in claim order. ``after_batch``: the round-robin position to pass
    to the next round. ``started``: the batches of this round's claims, each now PROCESSING (moved here or
    earlier). ``ended_batches``: batches whose every line is now final (ready to finalise).
    """

    recorded: list[bool]
    claims: list[Claim]
    after_batch: str | None
    started: list[str]
    ended_batches: list[str]


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

        Interactive generations go oldest first. Batch lines come from the first running batch (in id
        order) after ``after_batch`` that has a due line, wrapping around (without ``after_batch``: the
        oldest such batch), so a caller that passes the batch of its previous claim serves running batches
        round-robin; within a batch, lines go in input order. Lines of a canceled or expired batch are never
        claimed (the finaliser closes them).
        One statement, ``UPDATE ... WHERE id = coalesce(<interactive>, <line>) AND status = 'PENDING'``,
        each candidate an indexed ``LIMIT 1`` look-up: on PostgreSQL they take ``FOR UPDATE SKIP LOCKED``,
        so concurrent claimers pass over each other's rows; SQLite runs one writer at a time, so the
        look-ups see every earlier claim. The batch is not moved to PROCESSING here (the scheduler's
        ``record_and_claim`` does that).
        """
        result = await self.record_and_claim((), owner, lease_seconds, 1, now=now, after_batch=after_batch)
        return result.claims[0] if result.claims else None

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
        ending = Ending(
            generation_id,
            owner,
            attempt,
            status,
            now or utc_now(),
            engine=engine,
            output_key=output_key,
            output_duration=output_duration,
            error=error,
            error_code=error_code,
            deliveries=deliveries,
        )
        result = await self.record_and_claim([ending], owner, 0.0, 0)
        return result.recorded[0]

    async def record_and_claim(
        self,
        endings: Sequence[Ending],
        owner: str,
        lease_seconds: float,
        limit: int,
        *,
        now: datetime | None = None,
        clock: Callable[[], datetime] = utc_now,
        after_batch: str | None = None,
        started_batches: Collection[str] | None = None,
    ) -> RoundResult:
        """One transaction: record ``endings``, then claim up to ``limit`` generations as ``claim_next``
        does one after the other (each claim's batch is the next one's ``after_batch``).

        Each ending is fenced by its own token and counted in its batch's counters; the counters are
        bumped once per batch, in batch id order (so concurrent rounds lock batch rows in one order).
        With ``started_batches`` (the batches the caller knows are started), each claimed line's batch not
        in it is moved to PROCESSING in the same transaction (a no-op if it already is, or is canceled).
        Claims are stamped with ``now``, or else with ``clock``'s time read just before each claim (so a
        claim never looks older than the generation it claims).
        """
        for ending in endings:
            counter_for(ending.status)  # a status that is not final is a bug: refuse before writing
        recorded: list[bool] = []
        bumps: dict[str, Counter[str]] = {}
        claims: list[Claim] = []
        async with self._sessions.begin() as session:
            for ending in endings:
                row = (await session.execute(FINISH, _finish_params(ending))).first()
                recorded.append(row is not None)
                if row is None:
                    continue
                session.add_all(ending.deliveries)
                if row.batch_id is not None:
                    bumps.setdefault(row.batch_id, Counter())[_COUNTER_OF_STATUS[ending.status]] += 1
            for _ in range(limit):
                at = now or clock()
                until = at + timedelta(seconds=lease_seconds)
                params = {"p_now": at, "p_owner": owner, "p_until": until, "p_after": after_batch}
                statement = CLAIM_FIRST if after_batch is None else CLAIM_AFTER
                claimed = (await session.execute(statement, params)).first()
                if claimed is None:
                    break
                generation = _generation(claimed)
                claims.append(Claim(generation, generation.attempts))
                after_batch = generation.batch_id or after_batch
            starting: set[str] = set()
            if started_batches is not None:
                batches = {claim.generation.batch_id for claim in claims}
                starting = {b for b in batches if b is not None and b not in started_batches}
            ended = await update_batches(session, bumps, starting, now or clock())
        started = list(dict.fromkeys(c.generation.batch_id for c in claims if c.generation.batch_id))
        return RoundResult(recorded, claims, after_batch, started, ended)

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


def _finish_params(ending: Ending) -> dict[str, Any]:
    return {
        "p_id": ending.generation_id,
        "p_owner": ending.owner,
        "p_attempt": ending.attempt,
        "p_status": str(ending.status),
        "p_completed_at": ending.completed_at,
        "p_output_key": ending.output_key,
        "p_output_duration": ending.output_duration,
        "p_error": ending.error,
        "p_error_code": ending.error_code,
        "p_engine": ending.engine,
    }


def _generation(row: Row[Any]) -> Generation:
    """A claimed row as a (detached, never flushed) Generation."""
    return Generation(**row._mapping)
