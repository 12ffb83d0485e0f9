"""Durable state: SQLAlchemy models, repositories and Alembic migrations (SQLite or PostgreSQL)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from lipsync_api.store.assets import AssetRepository
from lipsync_api.store.batches import BatchRepository
from lipsync_api.store.database import create_engine_for, sessionmaker
from lipsync_api.store.generations import GenerationRepository
from lipsync_api.store.leases import LeaseRepository
from lipsync_api.store.organizations import OrganizationRepository
from lipsync_api.store.outbox import OutboxRepository


@dataclass(frozen=True)
class Store:
    """Every repository over one engine."""

    engine: AsyncEngine
    organizations: OrganizationRepository
    generations: GenerationRepository
    leases: LeaseRepository
    batches: BatchRepository
    outbox: OutboxRepository
    assets: AssetRepository

    @classmethod
    def for_engine(cls, engine: AsyncEngine) -> Store:
        """The repositories sharing ``engine``'s connection pool."""
        sessions = sessionmaker(engine)
        return cls(
            engine=engine,
            organizations=OrganizationRepository(sessions),
            generations=GenerationRepository(sessions),
            leases=LeaseRepository(sessions),
            batches=BatchRepository(sessions),
            outbox=OutboxRepository(sessions),
            assets=AssetRepository(sessions),
        )

    @classmethod
    def open(cls, url: str) -> Store:
        """A store on a new engine for ``url`` (migrate first with ``migrate.upgrade_to_head``)."""
        return cls.for_engine(create_engine_for(url))

    async def close(self) -> None:
        """Close the engine's connections."""
        await self.engine.dispose()
