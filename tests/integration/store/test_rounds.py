"""``record_and_claim``: a scheduler round's results and claims in one transaction, each result fenced."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest

from lipsync_api.store import Store
from lipsync_api.store.leases import Ending
from lipsync_api.store.models import Batch, BatchStatus, Organization
from lipsync_api.store.outbox import new_delivery
from tests.integration.store.factories import at, batch, batch_lines

pytestmark = pytest.mark.asyncio

LEASE = 30.0


async def _batch(store: Store, org: Organization, seconds: float, lines: int, **fields: object) -> Batch:
    created = batch(org.id, created_at=at(seconds), status=BatchStatus.JOBS_CREATED, **fields)
    rows = batch_lines(lines)
    for row in rows:
        row.created_at = at(seconds)
    assert await store.batches.insert(created, rows)
    return created


async def test_one_round_claims_round_robin_and_starts_each_batch_once(
    store: Store, org: Organization
) -> None:
    first = await _batch(store, org, 0, lines=3)
    second = await _batch(store, org, 1, lines=2)
    result = await store.leases.record_and_claim([], "w", LEASE, 4, now=at(5), started_batches={second.id})
    order = [(c.generation.batch_id, c.generation.line_no) for c in result.claims]
    # The oldest batch first, then round-robin (in batch id order, wrapping around).
    assert [b for b, _ in order] == ([first.id, second.id] * 2)
    assert [n for _, n in order] == [1, 1, 2, 2]
    assert result.after_batch == second.id and set(result.started) == {first.id, second.id}
    started = await store.batches.get(first.id)
    assert started is not None and started.batch.status == "PROCESSING" and started.batch.started_at == at(5)
    skipped = await store.batches.get(second.id)  # the caller said it was started already
    assert skipped is not None and skipped.batch.status == "JOBS_CREATED"


async def test_results_are_fenced_one_by_one_and_counted_with_the_next_claims(
    store: Store, org: Organization
) -> None:
    created = await _batch(store, org, 0, lines=3)
    claims = (await store.leases.record_and_claim([], "w", LEASE, 2, now=at(1))).claims
    hook = new_delivery(org.id, "https://hook", "generation.completed", "{}")
    lost = new_delivery(org.id, "https://hook", "generation.failed", "{}")
    endings = [
        Ending(claims[0].generation.id, "w", claims[0].attempt, "COMPLETED", at(2), deliveries=[hook]),
        Ending(claims[1].generation.id, "w", claims[1].attempt + 1, "FAILED", at(2), deliveries=[lost]),
    ]
    result = await store.leases.record_and_claim(endings, "w", LEASE, 5, now=at(3), after_batch=created.id)
    assert result.recorded == [True, False]
    assert [c.generation.line_no for c in result.claims] == [3]
    assert result.ended_batches == []
    record = await store.batches.get(created.id)
    assert record is not None
    assert (record.metrics.success_count, record.metrics.failed_count, record.metrics.processing_count) == (
        1,
        0,
        2,
    )
    assert await store.outbox.get(hook.id) is not None and await store.outbox.get(lost.id) is None
    ends = [
        Ending(claims[1].generation.id, "w", claims[1].attempt, "REJECTED", at(4)),
        Ending(result.claims[0].generation.id, "w", result.claims[0].attempt, "CANCELED", at(4)),
    ]
    last = await store.leases.record_and_claim(ends, "w", LEASE, 1, now=at(4))
    assert last.recorded == [True, True] and last.claims == [] and last.ended_batches == [created.id]
    record = await store.batches.get(created.id)
    assert record is not None
    metrics = record.metrics
    assert (metrics.failed_count, metrics.canceled_count, metrics.pending_count) == (1, 1, 0)


async def test_a_status_that_is_not_final_refuses_the_whole_round(store: Store, org: Organization) -> None:
    created = await _batch(store, org, 0, lines=1)
    [claim] = (await store.leases.record_and_claim([], "w", LEASE, 1, now=at(1))).claims
    with pytest.raises(ValueError, match="not a final"):
        await store.leases.record_and_claim(
            [Ending(claim.generation.id, "w", claim.attempt, "PENDING", at(2))], "w", LEASE, 0
        )
    record = await store.batches.get(created.id)
    assert record is not None and record.metrics.processing_count == 1


async def test_lines_of_expired_or_canceled_batches_are_not_claimed(store: Store, org: Organization) -> None:
    await _batch(store, org, 0, lines=1, expires_at=at(10))
    canceled = await _batch(store, org, 2, lines=1)
    assert await store.batches.transition(canceled.id, "CANCELED", from_statuses=("JOBS_CREATED",))
    assert await store.leases.claim_next("w", LEASE, at(11)) is None
    claim = await store.leases.claim_next("w", LEASE, at(9))
    assert claim is not None and claim.generation.batch_id != canceled.id


async def test_claims_are_stamped_by_the_clock_when_no_time_is_given(store: Store, org: Organization) -> None:
    await _batch(store, org, 0, lines=2)
    ticks = (at(100 + n) for n in itertools.count())
    result = await store.leases.record_and_claim([], "w", LEASE, 2, clock=lambda: next(ticks))
    assert [c.generation.started_at for c in result.claims] == [at(100), at(101)]
    assert [c.generation.lease_expires_at for c in result.claims] == [
        at(100) + timedelta(seconds=LEASE),
        at(101) + timedelta(seconds=LEASE),
    ]
