"""Uploaded assets: one row per media file an organization uploaded; the file itself lives in storage.

The row says who owns the file and where it is (``assets/<asset_id>/<kind>``). A row is written before
its file, so a crash in between leaves a row whose file is missing (which retention removes), never a
file that no row names.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from lipsync_api.store.models import Asset, AssetKind
from lipsync_api.store.sql import rowcount
from lipsync_api.store.types import new_id, utc_now

MAX_FILENAME = 255
# Bound parameters per lookup, well under SQLite's and PostgreSQL's limits (a batch may name thousands).
_IDS_PER_QUERY = 500


def asset_key(asset_id: str, kind: str) -> str:
    """The storage key of an asset's file."""
    return f"assets/{asset_id}/{AssetKind(kind).value}"


class AssetRepository:
    """Creates, finds (within an organization), lists by age and deletes asset rows."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def create(
        self,
        organization_id: str,
        kind: AssetKind,
        size_bytes: int,
        original_filename: str | None = None,
        *,
        now: datetime | None = None,
    ) -> Asset:
        """Store a new asset row (its storage key follows from its id and kind)."""
        asset_id = new_id()
        asset = Asset(
            id=asset_id,
            organization_id=organization_id,
            kind=kind.value,
            storage_key=asset_key(asset_id, kind),
            size_bytes=size_bytes,
            original_filename=original_filename[:MAX_FILENAME] if original_filename else None,
            created_at=now or utc_now(),
        )
        async with self._sessions.begin() as session:
            session.add(asset)
        return asset

    async def get_for_organization(self, organization_id: str, asset_id: str) -> Asset | None:
        """The organization's asset; None when absent or another organization's."""
        found = await self.find_for_organization(organization_id, [asset_id])
        return found.get(asset_id)

    async def find_for_organization(
        self, organization_id: str, asset_ids: Collection[str]
    ) -> dict[str, Asset]:
        """The organization's assets among ``asset_ids``, by id (the others are simply absent)."""
        wanted = sorted(set(asset_ids))
        found: dict[str, Asset] = {}
        async with self._sessions() as session:
            for start in range(0, len(wanted), _IDS_PER_QUERY):
                chunk = wanted[start : start + _IDS_PER_QUERY]
                query = select(Asset).where(Asset.organization_id == organization_id, Asset.id.in_(chunk))
                found.update((asset.id, asset) for asset in (await session.scalars(query)).all())
        return found

    async def list_older_than(self, cutoff: datetime, *, limit: int = 1000) -> list[Asset]:
        """Assets of every organization created before ``cutoff``, oldest first (at most ``limit``)."""
        query = (
            select(Asset).where(Asset.created_at < cutoff).order_by(Asset.created_at, Asset.id).limit(limit)
        )
        async with self._sessions() as session:
            return list((await session.scalars(query)).all())

    async def delete(self, asset_id: str) -> bool:
        """Remove the row (not its file); True if it existed."""
        async with self._sessions.begin() as session:
            return rowcount(await session.execute(delete(Asset).where(Asset.id == asset_id))) == 1
