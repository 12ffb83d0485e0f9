"""API-key authentication with a short in-process cache; a key's use is recorded off the request path.

Looking a key up on every request made authentication most of the cost of a read, and recording its use
(``last_used_at``) on every request made each read a write (on SQLite, a wait for the write lock). Here a
key found in the database is remembered by its SHA-256 for ``cache_seconds`` (0: never remembered), and
its use is written at most once a minute per key by a task of its own, which the request does not await.

A key revoked through this process's repository is forgotten at once; one revoked by another process
(``lipsync-api keys revoke``) is refused here within ``cache_seconds``. Unknown keys are never remembered,
so a key just issued works at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from lipsync_api.store.models import Organization
from lipsync_api.store.organizations import LAST_USED_PRECISION, OrganizationRepository, hash_api_key
from lipsync_api.store.types import utc_now

log = logging.getLogger(__name__)

# More cached keys than this: expired entries are dropped, then, if still too many, all of them.
MAX_CACHED_KEYS = 10_000


@dataclass(frozen=True)
class _Entry:
    organization: Organization
    key_id: str
    expires_at: float


class KeyAuthenticator:
    """Finds the organization owning an API key, through a cache that a revoke empties for that key."""

    def __init__(
        self,
        organizations: OrganizationRepository,
        cache_seconds: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        touch_interval: float = LAST_USED_PRECISION.total_seconds(),
    ) -> None:
        self._organizations = organizations
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._touch_interval = touch_interval
        self._cache: dict[str, _Entry] = {}
        self._touched: dict[str, float] = {}  # key id -> clock of the last recorded use
        self._tasks: set[asyncio.Task[None]] = set()
        self._revocations = 0  # a lookup that a revoke overtook is not cached
        organizations.on_revoke(self.forget_key)

    async def organization_for(self, key: str) -> Organization | None:
        """The organization owning the unrevoked ``key``, or None; records the key's use in the background."""
        key_hash = hash_api_key(key)
        now = self._clock()
        entry = self._cache.get(key_hash)
        if entry is None or entry.expires_at <= now:
            revocations = self._revocations
            owner = await self._organizations.find_key(key_hash)
            if owner is None:
                self._cache.pop(key_hash, None)
                return None
            entry = _Entry(owner.organization, owner.key_id, now + self._cache_seconds)
            if self._cache_seconds > 0 and revocations == self._revocations:
                self._remember(key_hash, entry, now)
        self._touch(entry.key_id, now)
        return entry.organization

    def forget_key(self, key_id: str) -> None:
        """Drop the cached entry of key ``key_id`` (it was revoked)."""
        self._revocations += 1
        for key_hash in [h for h, entry in self._cache.items() if entry.key_id == key_id]:
            del self._cache[key_hash]

    async def aclose(self) -> None:
        """Wait for the use records still being written."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _remember(self, key_hash: str, entry: _Entry, now: float) -> None:
        if len(self._cache) >= MAX_CACHED_KEYS:
            for stale in [h for h, cached in self._cache.items() if cached.expires_at <= now]:
                del self._cache[stale]
            if len(self._cache) >= MAX_CACHED_KEYS:
                self._cache.clear()
        self._cache[key_hash] = entry

    def _touch(self, key_id: str, now: float) -> None:
        last = self._touched.get(key_id)
        if last is not None and now - last < self._touch_interval:
            return
        if len(self._touched) >= MAX_CACHED_KEYS:
            self._touched.clear()
        self._touched[key_id] = now
        task = asyncio.create_task(self._record_use(key_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _record_use(self, key_id: str) -> None:
        try:
            await self._organizations.touch_api_key(key_id, now=utc_now())
        except Exception:  # a missed use record must never fail or slow a request
            log.warning("could not record the use of API key %s", key_id, exc_info=True)
