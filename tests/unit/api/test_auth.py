"""The key authenticator: cache lifetime, revocation, use records written off the request path."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from datetime import datetime

import pytest

from lipsync_api.api.auth import KeyAuthenticator
from lipsync_api.store.models import Organization
from lipsync_api.store.organizations import KeyOwner, hash_api_key

pytestmark = pytest.mark.asyncio

KEY, OTHER = "lsk_test_key_0123456789", "lsk_other_key_0123456789"


class FakeOrganizations:
    """The repository calls the authenticator makes, over a table of key hash -> (organization, key id)."""

    def __init__(self) -> None:
        self.keys = {hash_api_key(KEY): KeyOwner(Organization(id="org-1", name="o", plan="growth"), "key-1")}
        self.lookups = Counter[str]()
        self.touched: list[str] = []
        self.listeners: list[Callable[[str], None]] = []
        self.during_lookup: Callable[[], None] | None = None

    def on_revoke(self, listener: Callable[[str], None]) -> None:
        self.listeners.append(listener)

    async def find_key(self, key_hash: str) -> KeyOwner | None:
        self.lookups[key_hash] += 1
        if self.during_lookup is not None:
            self.during_lookup()
        return self.keys.get(key_hash)

    async def touch_api_key(self, key_id: str, *, now: datetime | None = None) -> None:
        self.touched.append(key_id)

    def revoke_elsewhere(self) -> None:
        """Another process revokes the key: the table changes, no listener hears of it."""
        self.keys.pop(hash_api_key(KEY))

    def revoke_here(self) -> None:
        """This process's repository revokes it: the table changes and the listeners are told."""
        self.revoke_elsewhere()
        for listener in self.listeners:
            listener("key-1")


@pytest.fixture
def organizations() -> FakeOrganizations:
    return FakeOrganizations()


@pytest.fixture
def now() -> list[float]:
    return [1000.0]


def authenticator(organizations: FakeOrganizations, now: list[float], seconds: float) -> KeyAuthenticator:
    return KeyAuthenticator(organizations, seconds, clock=lambda: now[0])


async def test_a_key_is_looked_up_once_per_lifetime(
    organizations: FakeOrganizations, now: list[float]
) -> None:
    auth = authenticator(organizations, now, 10)
    for _ in range(3):
        found = await auth.organization_for(KEY)
        assert found is not None and found.id == "org-1"
    assert organizations.lookups[hash_api_key(KEY)] == 1
    now[0] += 10.5
    assert await auth.organization_for(KEY) is not None
    assert organizations.lookups[hash_api_key(KEY)] == 2


async def test_a_key_revoked_elsewhere_is_refused_once_its_entry_expires(
    organizations: FakeOrganizations, now: list[float]
) -> None:
    auth = authenticator(organizations, now, 10)
    assert await auth.organization_for(KEY) is not None
    organizations.revoke_elsewhere()
    now[0] += 9.5
    assert await auth.organization_for(KEY) is not None  # within the TTL, as documented
    now[0] += 1
    assert await auth.organization_for(KEY) is None


async def test_a_key_revoked_in_this_process_is_refused_at_once(
    organizations: FakeOrganizations, now: list[float]
) -> None:
    auth = authenticator(organizations, now, 3600)
    assert await auth.organization_for(KEY) is not None
    organizations.revoke_here()
    assert await auth.organization_for(KEY) is None


async def test_a_lookup_overtaken_by_a_revoke_is_not_cached(
    organizations: FakeOrganizations, now: list[float]
) -> None:
    auth = authenticator(organizations, now, 3600)
    # The revoke lands while the lookup is in flight: the lookup read the key before it was revoked.
    organizations.during_lookup = lambda: auth.forget_key("key-1")
    assert await auth.organization_for(KEY) is not None
    organizations.during_lookup = None
    organizations.revoke_elsewhere()
    assert await auth.organization_for(KEY) is None


async def test_zero_seconds_caches_nothing_and_unknown_keys_are_never_cached(
    organizations: FakeOrganizations, now: list[float]
) -> None:
    auth = authenticator(organizations, now, 0)
    for _ in range(2):
        assert await auth.organization_for(KEY) is not None
        assert await auth.organization_for(OTHER) is None
    assert organizations.lookups == {hash_api_key(KEY): 2, hash_api_key(OTHER): 2}
    cached = authenticator(organizations, now, 3600)
    assert await cached.organization_for(OTHER) is None
    organizations.keys[hash_api_key(OTHER)] = organizations.keys[hash_api_key(KEY)]  # issued just now
    assert await cached.organization_for(OTHER) is not None


async def test_use_is_recorded_at_most_once_a_minute_and_off_the_request_path(
    organizations: FakeOrganizations, now: list[float]
) -> None:
    auth = authenticator(organizations, now, 10)
    for _ in range(5):
        await auth.organization_for(KEY)
        now[0] += 5
    assert organizations.touched == []  # a task of its own: the requests did not wait for it
    await asyncio.sleep(0)
    assert organizations.touched == ["key-1"]
    now[0] += 60
    await auth.organization_for(KEY)
    await auth.aclose()
    assert organizations.touched == ["key-1", "key-1"]
