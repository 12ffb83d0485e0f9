"""Uploaded assets: created with their storage key, found only by their organization, listed by age."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lipsync_api.api.upload import remove_stale_spools
from lipsync_api.domain.assets import delete_assets_older_than
from lipsync_api.storage.local import LocalStorage
from lipsync_api.store import Store
from lipsync_api.store.assets import asset_key
from lipsync_api.store.models import AssetKind, Organization
from tests.integration.store.factories import at

pytestmark = pytest.mark.asyncio

BIG = 5 * 1024**3  # past 32-bit integers: the size column is a BIGINT


async def test_create_stores_every_field_and_the_storage_key(store: Store, org: Organization) -> None:
    created = await store.assets.create(org.id, AssetKind.VIDEO, BIG, "clip.mp4", now=at(0))
    found = await store.assets.get_for_organization(org.id, created.id)
    assert found is not None
    assert (found.kind, found.size_bytes, found.original_filename, found.created_at) == (
        "video",
        BIG,
        "clip.mp4",
        at(0),
    )
    assert found.storage_key == f"assets/{created.id}/video" == asset_key(created.id, "video")
    with pytest.raises(ValueError):
        asset_key(created.id, "image")


async def test_a_long_filename_is_cut_and_none_is_kept(store: Store, org: Organization) -> None:
    long = await store.assets.create(org.id, AssetKind.AUDIO, 1, "a" * 300 + ".wav")
    unnamed = await store.assets.create(org.id, AssetKind.AUDIO, 1, None)
    found = await store.assets.find_for_organization(org.id, [long.id, unnamed.id])
    assert found[long.id].original_filename == "a" * 255
    assert found[unnamed.id].original_filename is None


async def test_another_organizations_asset_is_not_found(
    store: Store, org: Organization, other_org: Organization
) -> None:
    mine = await store.assets.create(org.id, AssetKind.VIDEO, 10)
    theirs = await store.assets.create(other_org.id, AssetKind.VIDEO, 10)
    assert await store.assets.get_for_organization(other_org.id, mine.id) is None
    assert await store.assets.get_for_organization(org.id, "no-such-id") is None
    found = await store.assets.find_for_organization(org.id, [mine.id, theirs.id, "x" * 300])
    assert list(found) == [mine.id]
    assert await store.assets.find_for_organization(org.id, []) == {}


async def test_list_older_than_is_oldest_first_across_organizations(
    store: Store, org: Organization, other_org: Organization
) -> None:
    second = await store.assets.create(other_org.id, AssetKind.AUDIO, 1, now=at(20))
    first = await store.assets.create(org.id, AssetKind.VIDEO, 1, now=at(10))
    await store.assets.create(org.id, AssetKind.VIDEO, 1, now=at(30))
    assert [a.id for a in await store.assets.list_older_than(at(30))] == [first.id, second.id]
    assert [a.id for a in await store.assets.list_older_than(at(30), limit=1)] == [first.id]
    assert await store.assets.list_older_than(at(10)) == []


async def test_delete_removes_the_row_once(store: Store, org: Organization) -> None:
    asset = await store.assets.create(org.id, AssetKind.VIDEO, 1)
    assert await store.assets.delete(asset.id) is True
    assert await store.assets.delete(asset.id) is False
    assert await store.assets.get_for_organization(org.id, asset.id) is None


async def test_retention_deletes_old_uploads_with_their_rows(
    store: Store, org: Organization, tmp_path: Path
) -> None:
    storage = LocalStorage(tmp_path / "files")
    old = await store.assets.create(org.id, AssetKind.VIDEO, 4, "old.mp4", now=at(0))
    new = await store.assets.create(org.id, AssetKind.AUDIO, 4, "new.wav", now=at(100))
    for asset in (old, new):
        await storage.put_bytes(asset.storage_key, b"data")
    deleted = await delete_assets_older_than(store, storage, at(50).timestamp())
    assert deleted == 1
    assert await store.assets.get_for_organization(org.id, old.id) is None
    assert not await storage.exists(old.storage_key)
    assert await store.assets.get_for_organization(org.id, new.id) is not None
    assert await storage.exists(new.storage_key)


async def test_stale_upload_spools_are_removed(tmp_path: Path) -> None:
    stale, fresh, other = tmp_path / "upload-a", tmp_path / "upload-b", tmp_path / "keep-me"
    for path in (stale, fresh, other):
        path.write_bytes(b"x")
    os.utime(stale, (1000.0, 1000.0))
    os.utime(other, (1000.0, 1000.0))
    assert remove_stale_spools(tmp_path, cutoff=2000.0) == 1
    assert not stale.exists() and fresh.exists() and other.exists()
    assert remove_stale_spools(tmp_path / "missing", cutoff=2000.0) == 0
