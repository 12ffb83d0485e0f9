"""Small SQL helpers the repositories share."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, literal, update
from sqlalchemy.engine import CursorResult, Result
from sqlalchemy.ext.asyncio import AsyncSession

from lipsync_api.store.models import Generation, GenerationStatus, Organization
from lipsync_api.store.types import UTCDateTime, new_id, utc_now


def rowcount(result: Result[Any]) -> int:
    """Rows an UPDATE or DELETE matched."""
    if not isinstance(result, CursorResult):
        raise TypeError("rowcount needs the result of an UPDATE or DELETE")
    return result.rowcount


def utc_literal(value: Any) -> ColumnElement[Any]:
    """A timestamp bound with the UTC column type (plain binds inside functions would lose it)."""
    return literal(value, type_=UTCDateTime())


async def lock_organization(session: AsyncSession, organization_id: str) -> bool:
    """Serialise this transaction with every other one that locks the same organization.

    A no-op UPDATE does it on both backends: PostgreSQL locks the row until commit, and SQLite takes its
    database write lock. Checks made after it (caps, idempotency keys) cannot race. False: no such org.
    """
    statement = (
        update(Organization)
        .where(Organization.id == organization_id)
        .values(id=Organization.id)
        .execution_options(synchronize_session=False)
    )
    return rowcount(await session.execute(statement)) == 1


def fill_generation_defaults(generation: Generation) -> None:
    """Give a new row its id, creation time, status and attempt count now rather than at flush.

    The caller reads them from the object it passed in; ``batch_id`` links need the id before flush.
    """
    generation.id = generation.id or new_id()
    generation.created_at = generation.created_at or utc_now()
    generation.status = generation.status or GenerationStatus.PENDING
    generation.attempts = generation.attempts or 0
