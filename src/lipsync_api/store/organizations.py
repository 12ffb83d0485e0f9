"""Organizations and their API keys (only a key's SHA-256 is stored)."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from lipsync_api.store.models import ApiKey, Organization
from lipsync_api.store.sql import rowcount
from lipsync_api.store.types import new_id, utc_now

API_KEY_PREFIX = "lsk_"
KEY_PREFIX_SHOWN = 12
# Recording every request's use would make each authenticated read a write; a minute's precision is enough.
LAST_USED_PRECISION = timedelta(minutes=1)


def hash_api_key(key: str) -> str:
    """The SHA-256 hex digest under which ``key`` is stored."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def generate_api_key() -> str:
    """A new random API key."""
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def generate_webhook_secret() -> str:
    """A new random webhook signing secret."""
    return "whsec_" + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class NewApiKey:
    """A key just created: the stored row, and the key itself, which is never available again."""

    record: ApiKey
    key: str


@dataclass(frozen=True)
class KeyOwner:
    """An unrevoked key's organization and the key's id."""

    organization: Organization
    key_id: str


class OrganizationRepository:
    """Creates organizations, issues, lists and revokes their keys, and finds an organization by key."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self._revoke_listeners: list[Callable[[str], None]] = []

    def on_revoke(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(key_id)`` whenever this repository revokes a key (in-process caches forget it)."""
        self._revoke_listeners.append(listener)

    async def create(
        self,
        name: str,
        plan: str,
        *,
        webhook_secret: str | None = None,
        generation_cap_override: int | None = None,
        batch_cap_override: int | None = None,
        now: datetime | None = None,
    ) -> Organization:
        """Store a new organization (a webhook secret is generated when none is given)."""
        org = Organization(
            id=new_id(),
            name=name,
            plan=plan,
            webhook_secret=webhook_secret or generate_webhook_secret(),
            generation_cap_override=generation_cap_override,
            batch_cap_override=batch_cap_override,
            created_at=now or utc_now(),
        )
        async with self._sessions.begin() as session:
            session.add(org)
        return org

    async def get(self, organization_id: str) -> Organization | None:
        """The organization, or None."""
        async with self._sessions() as session:
            return await session.get(Organization, organization_id)

    async def count(self) -> int:
        """How many organizations exist (the first start creates a default one when there are none)."""
        async with self._sessions() as session:
            return (await session.scalar(select(func.count()).select_from(Organization))) or 0

    async def create_api_key(
        self, organization_id: str, name: str, *, key: str | None = None, now: datetime | None = None
    ) -> NewApiKey:
        """Issue a key (or register ``key``, e.g. a configured bootstrap key); only its hash is kept."""
        plain = key or generate_api_key()
        record = ApiKey(
            id=new_id(),
            organization_id=organization_id,
            name=name,
            key_hash=hash_api_key(plain),
            prefix=plain[:KEY_PREFIX_SHOWN],
            created_at=now or utc_now(),
        )
        async with self._sessions.begin() as session:
            session.add(record)
        return NewApiKey(record=record, key=plain)

    async def list_api_keys(self, organization_id: str, *, include_revoked: bool = True) -> list[ApiKey]:
        """The organization's keys, oldest first."""
        query = select(ApiKey).where(ApiKey.organization_id == organization_id)
        if not include_revoked:
            query = query.where(ApiKey.revoked_at.is_(None))
        async with self._sessions() as session:
            return list((await session.scalars(query.order_by(ApiKey.created_at, ApiKey.id))).all())

    async def get_api_key(self, key_id: str) -> ApiKey | None:
        """One key's stored row (never the key itself), or None."""
        async with self._sessions() as session:
            return await session.get(ApiKey, key_id)

    async def revoke_api_key(self, organization_id: str, key_id: str, *, now: datetime | None = None) -> bool:
        """Revoke one of the organization's keys; False when it is not theirs or already revoked."""
        statement = (
            update(ApiKey)
            .where(
                ApiKey.id == key_id,
                ApiKey.organization_id == organization_id,
                ApiKey.revoked_at.is_(None),
            )
            .values(revoked_at=now or utc_now())
        )
        async with self._sessions.begin() as session:
            result = await session.execute(statement)
        for listener in self._revoke_listeners:
            listener(key_id)
        return rowcount(result) == 1

    async def find_by_key(self, key: str, *, now: datetime | None = None) -> Organization | None:
        """The organization owning the unrevoked ``key``, recording the key's use; None if unknown."""
        return await self.find_by_key_hash(hash_api_key(key), now=now)

    async def find_by_key_hash(self, key_hash: str, *, now: datetime | None = None) -> Organization | None:
        """As ``find_by_key``, for a key already hashed."""
        owner = await self.find_key(key_hash)
        if owner is None:
            return None
        await self.touch_api_key(owner.key_id, now=now)
        return owner.organization

    async def find_key(self, key_hash: str) -> KeyOwner | None:
        """The unrevoked key's organization and id (a read only: the key's use is not recorded)."""
        query = (
            select(Organization, ApiKey.id)
            .join(ApiKey, ApiKey.organization_id == Organization.id)
            .where(ApiKey.key_hash == key_hash, ApiKey.revoked_at.is_(None))
        )
        async with self._sessions() as session:
            row = (await session.execute(query)).first()
        return None if row is None else KeyOwner(row[0], row[1])

    async def touch_api_key(self, key_id: str, *, now: datetime | None = None) -> None:
        """Record the key's use at ``now`` unless it was recorded less than a minute before."""
        now = now or utc_now()
        touch = (
            update(ApiKey)
            .where(
                ApiKey.id == key_id,
                or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < now - LAST_USED_PRECISION),
            )
            .values(last_used_at=now)
        )
        async with self._sessions.begin() as session:
            await session.execute(touch)
