"""The lease hot path's SQL, built once at import (Core, on the tables; parameters bound at execution).

Building and ORM-loading an ``UPDATE ... RETURNING`` per line cost more than running it, so the claim,
the fenced finish, the batch counter bump and the batch start are compiled here once; ``leases`` runs them.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Float,
    Integer,
    String,
    Table,
    Update,
    bindparam,
    exists,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from lipsync_api.store.models import RUNNING_BATCH_STATUSES, Batch, BatchStatus, Generation, GenerationStatus
from lipsync_api.store.types import UTCDateTime

_GENERATIONS = cast(Table, Generation.__table__)
_BATCHES = cast(Table, Batch.__table__)
_G, _B = _GENERATIONS.c, _BATCHES.c
_NOW = bindparam("p_now", type_=UTCDateTime())


def _claim_statement(*, rotate: bool) -> Update:
    """The claim (see ``claim_next``); ``rotate``: the batch after ``p_after`` first, else the oldest."""
    due = [_G.status == GenerationStatus.PENDING, or_(_G.not_before.is_(None), _G.not_before <= _NOW)]
    interactive = (
        select(_G.id)
        .where(_G.batch_id.is_(None), *due)
        .order_by(_G.created_at, _G.id)
        .limit(1)
        .with_for_update(skip_locked=True)
        .correlate(None)
        .scalar_subquery()
    )
    has_due_line = exists().where(_G.batch_id == _B.id, *due).correlate(_BATCHES)
    running = (
        select(_B.id)
        .where(
            _B.status.in_(list(RUNNING_BATCH_STATUSES)),
            or_(_B.expires_at.is_(None), _B.expires_at > _NOW),
            has_due_line,
        )
        .correlate(None)
    )
    if rotate:
        after = running.where(_B.id > bindparam("p_after", type_=String())).order_by(_B.id).limit(1)
        first = running.order_by(_B.id).limit(1)
        batch: ColumnElement[Any] = func.coalesce(after.scalar_subquery(), first.scalar_subquery())
    else:
        batch = running.order_by(_B.created_at, _B.id).limit(1).scalar_subquery()
    line = (
        select(_G.id)
        .where(_G.batch_id == batch, *due)
        .order_by(_G.line_no, _G.id)
        .limit(1)
        .with_for_update(skip_locked=True)
        .correlate(None)
        .scalar_subquery()
    )
    return (
        update(_GENERATIONS)
        .where(_G.id == func.coalesce(interactive, line), _G.status == GenerationStatus.PENDING)
        .values(
            status=GenerationStatus.PROCESSING,
            attempts=_G.attempts + 1,
            lease_owner=bindparam("p_owner", type_=String()),
            lease_expires_at=bindparam("p_until", type_=UTCDateTime()),
            heartbeat_at=_NOW,
            started_at=func.coalesce(_G.started_at, _NOW, type_=UTCDateTime()),
        )
        .returning(*_G)
    )


CLAIM_FIRST = _claim_statement(rotate=False)
CLAIM_AFTER = _claim_statement(rotate=True)

FINISH = (
    update(_GENERATIONS)
    .where(
        _G.id == bindparam("p_id", type_=String()),
        _G.status == GenerationStatus.PROCESSING,
        _G.lease_owner == bindparam("p_owner", type_=String()),
        _G.attempts == bindparam("p_attempt", type_=Integer()),
    )
    .values(
        status=bindparam("p_status", type_=String()),
        completed_at=bindparam("p_completed_at", type_=UTCDateTime()),
        output_key=bindparam("p_output_key", type_=String()),
        output_duration=bindparam("p_output_duration", type_=Float()),
        error=bindparam("p_error", type_=String()),
        error_code=bindparam("p_error_code", type_=String()),
        lease_expires_at=None,
        engine=func.coalesce(bindparam("p_engine", type_=String()), _G.engine),
    )
    .returning(_G.batch_id)
)

BUMP = (
    update(_BATCHES)
    .where(_B.id == bindparam("p_batch", type_=String()))
    .values(
        success_count=_B.success_count + bindparam("p_success", type_=Integer()),
        failed_count=_B.failed_count + bindparam("p_failed", type_=Integer()),
        canceled_count=_B.canceled_count + bindparam("p_canceled", type_=Integer()),
        version=_B.version + 1,
    )
    .returning(_B.success_count + _B.failed_count + _B.canceled_count, _B.total_generations)
)

START = (
    update(_BATCHES)
    .where(
        _B.id == bindparam("p_batch", type_=String()),
        _B.status.in_([BatchStatus.PENDING, BatchStatus.JOBS_CREATED]),
    )
    .values(status=BatchStatus.PROCESSING, started_at=_NOW, version=_B.version + 1)
)


async def update_batches(
    session: AsyncSession, bumps: dict[str, Counter[str]], starting: set[str], now: datetime
) -> list[str]:
    """Bump counters and start batches, in batch id order; the ids of batches whose lines are all final."""
    ended: list[str] = []
    for batch_id in sorted(bumps.keys() | starting):
        if batch_id in starting:
            await session.execute(START, {"p_batch": batch_id, "p_now": now})
        counts = bumps.get(batch_id)
        if counts is None:
            continue
        params = {
            "p_batch": batch_id,
            "p_success": counts["success_count"],
            "p_failed": counts["failed_count"],
            "p_canceled": counts["canceled_count"],
        }
        row = (await session.execute(BUMP, params)).first()
        if row is not None and row[0] >= row[1]:
            ended.append(batch_id)
    return ended
