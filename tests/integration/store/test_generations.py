"""Generations: tenant isolation, idempotency keys, the interactive cap, listing."""

from __future__ import annotations

import asyncio

import pytest

from lipsync_api.store import Store
from lipsync_api.store.generations import InsertOutcome
from lipsync_api.store.models import Generation, GenerationStatus, Organization
from tests.integration.store.factories import at, batch, batch_lines, generation, request_body

pytestmark = pytest.mark.asyncio


async def test_insert_then_get_round_trips_every_field(store: Store, org: Organization) -> None:
    body = request_body()
    result = await store.generations.insert(
        generation(
            org.id, request=body, webhook_url="https://hook", output_file_name="clip", created_at=at(0)
        )
    )
    assert result.outcome is InsertOutcome.CREATED
    loaded = await store.generations.get(result.generation.id)
    assert loaded is not None
    assert loaded.request == body
    assert (loaded.status, loaded.attempts, loaded.created_at) == (GenerationStatus.PENDING, 0, at(0))
    assert (loaded.webhook_url, loaded.output_file_name, loaded.batch_id) == ("https://hook", "clip", None)


async def test_another_organizations_generation_is_not_found(
    store: Store, org: Organization, other_org: Organization
) -> None:
    created = (await store.generations.insert(generation(org.id))).generation
    assert await store.generations.get_for_organization(org.id, created.id) is not None
    assert await store.generations.get_for_organization(other_org.id, created.id) is None
    assert await store.generations.list_for_organization(other_org.id) == []


async def test_same_idempotency_key_returns_the_first_generation(store: Store, org: Organization) -> None:
    first = await store.generations.insert(generation(org.id, idempotency_key="k1", request_hash="h1"))
    again = await store.generations.insert(generation(org.id, idempotency_key="k1", request_hash="h2"))
    assert again.outcome is InsertOutcome.EXISTING
    assert again.generation.id == first.generation.id
    assert again.generation.request_hash == "h1"
    assert len(await store.generations.list_for_organization(org.id)) == 1
    found = await store.generations.find_by_idempotency_key(org.id, "k1")
    assert found is not None and found.id == first.generation.id


async def test_idempotency_keys_are_scoped_to_the_organization(
    store: Store, org: Organization, other_org: Organization
) -> None:
    mine = await store.generations.insert(generation(org.id, idempotency_key="k1"))
    theirs = await store.generations.insert(generation(other_org.id, idempotency_key="k1"))
    assert theirs.outcome is InsertOutcome.CREATED
    assert theirs.generation.id != mine.generation.id
    assert await store.generations.find_by_idempotency_key(other_org.id, "missing") is None


async def test_concurrent_inserts_with_one_key_create_one_row(store: Store, org: Organization) -> None:
    results = await asyncio.gather(
        *(store.generations.insert(generation(org.id, idempotency_key="same")) for _ in range(6))
    )
    assert sorted(r.outcome for r in results).count(InsertOutcome.CREATED) == 1
    assert len({r.generation.id for r in results}) == 1


async def test_active_cap_counts_only_pending_and_processing_interactive_work(
    store: Store, org: Organization
) -> None:
    await store.generations.insert(generation(org.id))
    await store.generations.insert(generation(org.id, status=GenerationStatus.COMPLETED))
    await store.batches.insert(batch(org.id), batch_lines(3))
    assert await store.generations.count_active(org.id) == 1
    assert (await store.generations.insert(generation(org.id), active_cap=2)).outcome is InsertOutcome.CREATED
    refused = await store.generations.insert(generation(org.id), active_cap=2)
    assert refused.outcome is InsertOutcome.OVER_CAP
    assert await store.generations.count_active(org.id) == 2


async def test_concurrent_inserts_never_pass_the_cap(store: Store, org: Organization) -> None:
    results = await asyncio.gather(
        *(store.generations.insert(generation(org.id), active_cap=3) for _ in range(8))
    )
    assert [r.outcome for r in results].count(InsertOutcome.CREATED) == 3
    assert await store.generations.count_active(org.id) == 3


async def test_list_is_newest_first_and_filters_by_status_and_ids(store: Store, org: Organization) -> None:
    rows: list[Generation] = []
    for n, status in enumerate(["PENDING", "COMPLETED", "FAILED", "COMPLETED"]):
        rows.append(
            (await store.generations.insert(generation(org.id, status=status, created_at=at(n)))).generation
        )
    listed = await store.generations.list_for_organization(org.id)
    assert [g.id for g in listed] == [g.id for g in reversed(rows)]
    completed = await store.generations.list_for_organization(org.id, statuses=["COMPLETED"])
    assert [g.id for g in completed] == [rows[3].id, rows[1].id]
    picked = await store.generations.list_for_organization(
        org.id, ids=[rows[0].id, rows[3].id], statuses=["PENDING", "FAILED", "COMPLETED"]
    )
    assert [g.id for g in picked] == [rows[3].id, rows[0].id]
    assert len(await store.generations.list_for_organization(org.id, limit=2)) == 2


async def test_batch_lines_list_in_input_order(store: Store, org: Organization) -> None:
    created = batch(org.id)
    assert await store.batches.insert(created, list(reversed(batch_lines(5))))
    lines = await store.generations.list_for_batch(created.id)
    assert [g.line_no for g in lines] == [1, 2, 3, 4, 5]
    assert {g.organization_id for g in lines} == {org.id}
