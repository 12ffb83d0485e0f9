"""Organizations and API keys: only hashes stored, lookup touches last use, revocation."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from lipsync_api.store import Store
from lipsync_api.store.models import ApiKey, Organization
from lipsync_api.store.organizations import KEY_PREFIX_SHOWN, hash_api_key
from tests.integration.store.factories import at

pytestmark = pytest.mark.asyncio


async def test_create_organization_generates_a_webhook_secret(store: Store) -> None:
    org = await store.organizations.create("Acme", "enterprise", generation_cap_override=40)
    loaded = await store.organizations.get(org.id)
    assert loaded is not None
    assert (loaded.name, loaded.plan, loaded.generation_cap_override) == ("Acme", "enterprise", 40)
    assert loaded.batch_cap_override is None
    assert len(loaded.webhook_secret) > 30
    assert loaded.created_at.tzinfo is not None
    assert await store.organizations.count() == 1


async def test_api_key_is_stored_only_as_its_hash(store: Store, org: Organization) -> None:
    issued = await store.organizations.create_api_key(org.id, "ci")
    async with store.organizations._sessions() as session:
        stored = (await session.scalars(select(ApiKey))).one()
    assert stored.key_hash == hash_api_key(issued.key)
    assert stored.prefix == issued.key[:KEY_PREFIX_SHOWN]
    columns = [getattr(stored, c.key) for c in ApiKey.__table__.columns]
    assert issued.key not in columns


async def test_find_by_key_returns_the_owner_and_records_use(store: Store, org: Organization) -> None:
    issued = await store.organizations.create_api_key(org.id, "ci")
    found = await store.organizations.find_by_key(issued.key, now=at(0))
    assert found is not None and found.id == org.id
    [listed] = await store.organizations.list_api_keys(org.id)
    assert listed.last_used_at == at(0)
    # Within a minute the use is not written again; later it is.
    await store.organizations.find_by_key(issued.key, now=at(30))
    assert (await store.organizations.list_api_keys(org.id))[0].last_used_at == at(0)
    await store.organizations.find_by_key(issued.key, now=at(90))
    assert (await store.organizations.list_api_keys(org.id))[0].last_used_at == at(90)


async def test_unknown_key_finds_nothing(store: Store, org: Organization) -> None:
    await store.organizations.create_api_key(org.id, "ci")
    assert await store.organizations.find_by_key("lsk_not-a-key") is None


async def test_given_key_can_be_registered(store: Store, org: Organization) -> None:
    issued = await store.organizations.create_api_key(org.id, "bootstrap", key="bootstrap-key-123")
    assert issued.key == "bootstrap-key-123"
    assert await store.organizations.find_by_key_hash(hash_api_key("bootstrap-key-123")) is not None


async def test_revoked_key_no_longer_authenticates(store: Store, org: Organization) -> None:
    issued = await store.organizations.create_api_key(org.id, "ci")
    assert await store.organizations.revoke_api_key(org.id, issued.record.id, now=at(5))
    assert await store.organizations.find_by_key(issued.key) is None
    assert not await store.organizations.revoke_api_key(org.id, issued.record.id)
    [listed] = await store.organizations.list_api_keys(org.id)
    assert listed.revoked_at == at(5)
    assert await store.organizations.list_api_keys(org.id, include_revoked=False) == []


async def test_keys_are_listed_and_revoked_per_organization(
    store: Store, org: Organization, other_org: Organization
) -> None:
    mine = await store.organizations.create_api_key(org.id, "one", now=at(0))
    await store.organizations.create_api_key(org.id, "two", now=at(1))
    theirs = await store.organizations.create_api_key(other_org.id, "theirs")
    assert [k.name for k in await store.organizations.list_api_keys(org.id)] == ["one", "two"]
    assert not await store.organizations.revoke_api_key(org.id, theirs.record.id)
    found = await store.organizations.find_by_key(theirs.key)
    assert found is not None and found.id == other_org.id
    assert (await store.organizations.find_by_key(mine.key)) is not None
