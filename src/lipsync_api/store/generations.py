"""Generation rows: insert (with the organization's cap and idempotency key), get, list, count."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from lipsync_api.store.models import ACTIVE_GENERATION_STATUSES, Generation
from lipsync_api.store.sql import fill_generation_defaults, lock_organization


class InsertOutcome(StrEnum):
    """What ``GenerationRepository.insert`` did."""

    CREATED = "created"
    # The organization already has a generation under this idempotency key (it is returned instead);
    # the caller compares request hashes to tell a retry from a reused key.
    EXISTING = "existing"
    # The organization's interactive generations already fill its cap; nothing was stored.
    OVER_CAP = "over_cap"


@dataclass(frozen=True)
class InsertResult:
    """The outcome and the generation it concerns (the stored one, the earlier one, or the refused one)."""

    outcome: InsertOutcome
    generation: Generation


class GenerationRepository:
    """Reads and writes generation rows; the lease life cycle lives in ``leases``."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def insert(self, generation: Generation, *, active_cap: int | None = None) -> InsertResult:
        """Store an interactive generation, atomically with its idempotency-key and cap checks.

        The organization is locked for the transaction, so two requests with the same key cannot both
        create a row, and two requests at the cap cannot both pass it. ``active_cap`` None: no cap.
        """
        fill_generation_defaults(generation)
        async with self._sessions.begin() as session:
            if not await lock_organization(session, generation.organization_id):
                raise LookupError(f"no organization {generation.organization_id}")
            if generation.idempotency_key is not None:
                earlier = await _by_idempotency_key(
                    session, generation.organization_id, generation.idempotency_key
                )
                if earlier is not None:
                    return InsertResult(InsertOutcome.EXISTING, earlier)
            capped = active_cap is not None and generation.batch_id is None
            if capped and await _count_active(session, generation.organization_id) >= (active_cap or 0):
                return InsertResult(InsertOutcome.OVER_CAP, generation)
            session.add(generation)
        return InsertResult(InsertOutcome.CREATED, generation)

    async def get(self, generation_id: str) -> Generation | None:
        """The generation, whoever owns it (for the scheduler and workers)."""
        async with self._sessions() as session:
            return await session.get(Generation, generation_id)

    async def get_for_organization(self, organization_id: str, generation_id: str) -> Generation | None:
        """The generation if it belongs to the organization, else None (another tenant's looks absent)."""
        query = select(Generation).where(
            Generation.id == generation_id, Generation.organization_id == organization_id
        )
        async with self._sessions() as session:
            return (await session.scalars(query)).first()

    async def list_for_organization(
        self,
        organization_id: str,
        *,
        statuses: Collection[str] | None = None,
        ids: Collection[str] | None = None,
        limit: int | None = None,
    ) -> list[Generation]:
        """The organization's generations, newest first, optionally only these statuses and ids."""
        query = select(Generation).where(Generation.organization_id == organization_id)
        if statuses:
            query = query.where(Generation.status.in_(list(statuses)))
        if ids:
            query = query.where(Generation.id.in_(list(ids)))
        query = query.order_by(Generation.created_at.desc(), Generation.id.desc())
        if limit is not None:
            query = query.limit(limit)
        async with self._sessions() as session:
            return list((await session.scalars(query)).all())

    async def list_for_batch(self, batch_id: str) -> list[Generation]:
        """A batch's generations in input order (what its results file is written from)."""
        query = select(Generation).where(Generation.batch_id == batch_id).order_by(Generation.line_no)
        async with self._sessions() as session:
            return list((await session.scalars(query)).all())

    async def count_active(self, organization_id: str) -> int:
        """The organization's interactive (non-batch) generations that are PENDING or PROCESSING."""
        async with self._sessions() as session:
            return await _count_active(session, organization_id)

    async def any_active(self) -> bool:
        """Whether any organization has a generation PENDING or PROCESSING (the scheduler's drain test)."""
        query = select(Generation.id).where(Generation.status.in_(ACTIVE_GENERATION_STATUSES)).limit(1)
        async with self._sessions() as session:
            return (await session.scalar(query)) is not None

    async def find_by_idempotency_key(self, organization_id: str, key: str) -> Generation | None:
        """The organization's generation created under ``key``, if any."""
        async with self._sessions() as session:
            return await _by_idempotency_key(session, organization_id, key)


def _active_query(organization_id: str) -> Select[int]:
    return select(func.count()).where(
        Generation.organization_id == organization_id,
        Generation.batch_id.is_(None),
        Generation.status.in_(ACTIVE_GENERATION_STATUSES),
    )


async def _count_active(session: AsyncSession, organization_id: str) -> int:
    return (await session.scalar(_active_query(organization_id))) or 0


async def _by_idempotency_key(session: AsyncSession, organization_id: str, key: str) -> Generation | None:
    query = select(Generation).where(
        Generation.organization_id == organization_id, Generation.idempotency_key == key
    )
    return (await session.scalars(query)).first()
