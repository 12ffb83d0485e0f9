"""Batches: one-transaction insert, tenant isolation, listing with filters and cursors, metrics, closing."""

from __future__ import annotations

import asyncio

import pytest

from lipsync_api.store import Store
from lipsync_api.store.cursor import InvalidCursorError, encode_cursor
from lipsync_api.store.models import Batch, BatchStatus, GenerationStatus, Organization
from lipsync_api.store.outbox import new_delivery
from tests.integration.store.factories import at, batch, batch_lines, generation

pytestmark = pytest.mark.asyncio


async def _batches(store: Store, org: Organization, statuses: list[str]) -> list[Batch]:
    created = []
    for n, status in enumerate(statuses):
        row = batch(org.id, status=status, created_at=at(n))
        assert await store.batches.insert(row, batch_lines(1))
        created.append(row)
    return created


async def test_insert_stores_the_batch_and_every_line(store: Store, org: Organization) -> None:
    created = batch(org.id, webhook_url="https://hook", status=BatchStatus.JOBS_CREATED, expires_at=at(86400))
    assert await store.batches.insert(created, batch_lines(3))
    record = await store.batches.get_for_organization(org.id, created.id)
    assert record is not None
    assert (record.batch.status, record.batch.webhook_url, record.batch.expires_at) == (
        "JOBS_CREATED",
        "https://hook",
        at(86400),
    )
    assert record.metrics.total_generations == 3
    assert record.metrics.pending_count == 3
    lines = await store.generations.list_for_batch(created.id)
    assert [(g.line_no, g.request_id, g.status) for g in lines] == [
        (1, "video_001", "PENDING"),
        (2, "video_002", "PENDING"),
        (3, "video_003", "PENDING"),
    ]


async def test_a_failing_line_stores_nothing(store: Store, org: Organization) -> None:
    lines = batch_lines(3)
    lines[2].line_no = 1  # duplicates line 1: the unique (batch_id, line_no) refuses the whole insert
    created = batch(org.id)
    with pytest.raises(Exception, match=r"(?i)unique"):
        await store.batches.insert(created, lines)
    assert await store.batches.get(created.id) is None
    assert await store.generations.list_for_organization(org.id) == []


async def test_another_organizations_batch_is_not_found(
    store: Store, org: Organization, other_org: Organization
) -> None:
    [created] = await _batches(store, org, ["PENDING"])
    assert await store.batches.get_for_organization(other_org.id, created.id) is None
    assert (await store.batches.list_for_organization(other_org.id)).items == []


async def test_running_cap_refuses_a_batch_and_stores_nothing(store: Store, org: Organization) -> None:
    await _batches(store, org, ["PENDING", "PROCESSING", "COMPLETED", "CANCELED"])
    assert await store.batches.count_running(org.id) == 2
    refused = batch(org.id)
    assert not await store.batches.insert(refused, batch_lines(2), running_cap=2)
    assert await store.batches.get(refused.id) is None
    assert await store.batches.insert(batch(org.id), batch_lines(2), running_cap=3)


async def test_concurrent_uploads_never_pass_the_running_cap(store: Store, org: Organization) -> None:
    results = await asyncio.gather(
        *(store.batches.insert(batch(org.id), batch_lines(5), running_cap=2) for _ in range(5))
    )
    assert results.count(True) == 2
    assert await store.batches.count_running(org.id) == 2


async def test_list_is_newest_first_with_status_and_time_filters(store: Store, org: Organization) -> None:
    rows = await _batches(store, org, ["COMPLETED", "PROCESSING", "COMPLETED", "FAILED", "PENDING"])
    page = await store.batches.list_for_organization(org.id)
    assert [r.batch.id for r in page.items] == [b.id for b in reversed(rows)]
    assert page.next_cursor is None
    done = await store.batches.list_for_organization(org.id, statuses=["COMPLETED", "FAILED"])
    assert [r.batch.id for r in done.items] == [rows[3].id, rows[2].id, rows[0].id]
    window = await store.batches.list_for_organization(org.id, created_after=at(0), created_before=at(3))
    assert [r.batch.id for r in window.items] == [rows[2].id, rows[1].id]


async def test_cursor_pages_through_everything_once(store: Store, org: Organization) -> None:
    rows = await _batches(store, org, ["PENDING"] * 7)
    # Two batches in the same instant: the id breaks the tie, so neither is skipped nor repeated.
    twin = batch(org.id, created_at=at(3))
    assert await store.batches.insert(twin, batch_lines(1))
    seen: list[str] = []
    cursor: str | None = None
    while True:
        page = await store.batches.list_for_organization(org.id, limit=3, cursor=cursor)
        seen.extend(r.batch.id for r in page.items)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert len(seen) == 8
    assert set(seen) == {b.id for b in rows} | {twin.id}
    assert seen[0] == rows[-1].id and seen[-1] == rows[0].id
    # A batch created after the first page does not shift later pages.
    first = await store.batches.list_for_organization(org.id, limit=3)
    assert await store.batches.insert(batch(org.id, created_at=at(100)), batch_lines(1))
    second = await store.batches.list_for_organization(org.id, limit=3, cursor=first.next_cursor)
    assert [r.batch.id for r in second.items] == seen[3:6]


@pytest.mark.parametrize("cursor", ["", "not-base64!", "bm9wZQ", encode_cursor(at(0), "x")[:-3]])
async def test_malformed_cursor_is_refused(store: Store, org: Organization, cursor: str) -> None:
    with pytest.raises(InvalidCursorError):
        await store.batches.list_for_organization(org.id, cursor=cursor)


async def test_metrics_follow_the_lines(store: Store, org: Organization) -> None:
    created = batch(org.id)
    assert await store.batches.insert(created, batch_lines(5))
    await store.generations.insert(generation(org.id))  # interactive work is not the batch's
    claims = [await store.leases.claim_next("w", 30, at(1)) for _ in range(4)]
    batch_claims = [c for c in claims if c is not None and c.generation.batch_id == created.id]
    done = batch_claims[0]
    assert await store.leases.finish(done.generation.id, "w", done.attempt, GenerationStatus.COMPLETED)
    record = await store.batches.get(created.id)
    assert record is not None
    m = record.metrics
    assert (m.success_count, m.processing_count, m.pending_count, m.total_generations) == (1, 2, 2, 5)


async def test_close_pending_lines_cancels_them_and_counts_them(store: Store, org: Organization) -> None:
    created = batch(org.id)
    assert await store.batches.insert(created, batch_lines(4))
    running = await store.leases.claim_next("w", 30, at(1))
    assert running is not None
    closed = await store.batches.close_pending_lines(
        created.id, GenerationStatus.CANCELED, now=at(2), error_code="generation_canceled"
    )
    assert closed == 3
    record = await store.batches.get(created.id)
    assert record is not None
    assert (record.metrics.canceled_count, record.metrics.processing_count, record.metrics.pending_count) == (
        3,
        1,
        0,
    )
    # The running line is left to its lease holder, whose result still counts.
    assert await store.leases.finish(running.generation.id, "w", 1, GenerationStatus.COMPLETED)
    record = await store.batches.get(created.id)
    assert record is not None and record.metrics.success_count == 1
    with pytest.raises(ValueError):
        await store.batches.close_pending_lines(created.id, GenerationStatus.PROCESSING)


async def test_transition_is_conditional_and_stores_its_webhook(store: Store, org: Organization) -> None:
    created = batch(org.id, status=BatchStatus.JOBS_CREATED)
    assert await store.batches.insert(created, batch_lines(1))
    assert await store.batches.transition(
        created.id, BatchStatus.PROCESSING, from_statuses=[BatchStatus.JOBS_CREATED], started_at=at(1)
    )
    assert not await store.batches.transition(
        created.id, BatchStatus.PROCESSING, from_statuses=[BatchStatus.JOBS_CREATED]
    )
    record = await store.batches.get(created.id)
    assert record is not None
    version = record.batch.version
    hook = new_delivery(org.id, "https://hook", "batch.completed", "{}")
    assert not await store.batches.transition(
        created.id,
        BatchStatus.COMPLETED,
        from_statuses=[BatchStatus.PROCESSING],
        expected_version=version - 1,
        deliveries=[hook],
    )
    assert await store.outbox.get(hook.id) is None
    assert await store.batches.transition(
        created.id,
        BatchStatus.COMPLETED,
        from_statuses=[BatchStatus.PROCESSING],
        expected_version=version,
        deliveries=[hook],
        completed_at=at(9),
        results_key="results/x.jsonl",
    )
    record = await store.batches.get(created.id)
    assert record is not None
    assert (record.batch.status, record.batch.started_at, record.batch.completed_at) == (
        "COMPLETED",
        at(1),
        at(9),
    )
    assert record.batch.results_key == "results/x.jsonl"
    assert await store.outbox.get(hook.id) is not None
    assert [b.id for b in await store.batches.list_running()] == []
