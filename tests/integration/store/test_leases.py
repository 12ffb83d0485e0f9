"""Leases: claim order, no double claims, expiry, retry backoff, fencing, counters with the final state."""

from __future__ import annotations

import asyncio

import pytest

from lipsync_api.store import Store
from lipsync_api.store.models import Batch, GenerationStatus, Organization
from lipsync_api.store.outbox import new_delivery
from tests.integration.store.factories import at, batch, batch_lines, generation

pytestmark = pytest.mark.asyncio

LEASE = 30.0


async def _interactive(store: Store, org: Organization, seconds: float, **fields: object) -> str:
    return (
        await store.generations.insert(generation(org.id, created_at=at(seconds), **fields))
    ).generation.id


async def _batch(store: Store, org: Organization, seconds: float, lines: int) -> Batch:
    created = batch(org.id, created_at=at(seconds))
    for line in (lines_ := batch_lines(lines)):
        line.created_at = at(seconds)
    assert await store.batches.insert(created, lines_)
    return created


async def _claim_all(store: Store, owner: str, now_seconds: float = 100) -> list[str]:
    claimed: list[str] = []
    while (claim := await store.leases.claim_next(owner, LEASE, at(now_seconds))) is not None:
        claimed.append(claim.generation.id)
    return claimed


async def test_claim_takes_interactive_work_before_older_batch_lines(store: Store, org: Organization) -> None:
    old_batch = await _batch(store, org, 0, lines=2)
    late = await _interactive(store, org, 50)
    lines = await store.generations.list_for_batch(old_batch.id)
    assert await _claim_all(store, "w1") == [late, lines[0].id, lines[1].id]


async def test_claim_respects_not_before(store: Store, org: Organization) -> None:
    later = await _interactive(store, org, 0, not_before=at(200))
    now = await _interactive(store, org, 1)
    assert await _claim_all(store, "w1", now_seconds=100) == [now]
    claim = await store.leases.claim_next("w1", LEASE, at(200))
    assert claim is not None and claim.generation.id == later


async def test_claim_marks_the_row_with_its_lease(store: Store, org: Organization) -> None:
    gen_id = await _interactive(store, org, 0)
    claim = await store.leases.claim_next("worker-a", LEASE, at(10))
    assert claim is not None
    assert claim.attempt == 1
    row = await store.generations.get(gen_id)
    assert row is not None
    assert (row.status, row.lease_owner, row.attempts) == (GenerationStatus.PROCESSING, "worker-a", 1)
    assert (row.lease_expires_at, row.heartbeat_at, row.started_at) == (at(40), at(10), at(10))
    assert await store.leases.claim_next("worker-b", LEASE, at(10)) is None


async def test_concurrent_claimers_never_share_a_row(store: Store, org: Organization) -> None:
    for n in range(6):
        await _interactive(store, org, n)
    await _batch(store, org, 10, lines=14)
    results = await asyncio.gather(*(_claim_all(store, f"w{n}") for n in range(8)))
    claimed = [gen_id for per_worker in results for gen_id in per_worker]
    assert len(claimed) == 20
    assert len(set(claimed)) == 20


async def test_expired_lease_is_requeued_and_claimed_again_with_a_new_token(
    store: Store, org: Organization
) -> None:
    gen_id = await _interactive(store, org, 0)
    first = await store.leases.claim_next("w1", LEASE, at(0))
    assert first is not None
    assert (await store.leases.requeue_expired(at(29))).requeued == []
    assert (await store.leases.requeue_expired(at(31))).requeued == [gen_id]
    row = await store.generations.get(gen_id)
    assert row is not None
    assert (row.status, row.lease_owner, row.attempts) == (GenerationStatus.PENDING, None, 1)
    second = await store.leases.claim_next("w2", LEASE, at(32))
    assert second is not None and (second.generation.id, second.attempt) == (gen_id, 2)
    assert second.generation.started_at == at(0)


async def test_renewed_lease_does_not_expire(store: Store, org: Organization) -> None:
    gen_id = await _interactive(store, org, 0)
    claim = await store.leases.claim_next("w1", LEASE, at(0))
    assert claim is not None
    assert await store.leases.renew_lease(gen_id, "w1", claim.attempt, at(60), now=at(20))
    assert (await store.leases.requeue_expired(at(45))).requeued == []
    assert not await store.leases.renew_lease(gen_id, "w2", claim.attempt, at(90), now=at(20))
    assert not await store.leases.renew_lease(gen_id, "w1", claim.attempt + 1, at(90), now=at(20))


async def test_exhausted_attempts_fail_instead_of_requeueing(store: Store, org: Organization) -> None:
    created = await _batch(store, org, 0, lines=1)
    [line] = await store.generations.list_for_batch(created.id)
    for attempt in range(2):
        claim = await store.leases.claim_next("w", LEASE, at(attempt * 100))
        assert claim is not None
        result = await store.leases.requeue_expired(at(attempt * 100 + 50), max_attempts=2)
    assert (result.requeued, result.failed) == ([], [line.id])
    row = await store.generations.get(line.id)
    assert row is not None
    assert (row.status, row.error_code) == (GenerationStatus.FAILED, "generation_timeout")
    record = await store.batches.get(created.id)
    assert record is not None and record.metrics.failed_count == 1


async def test_retry_later_releases_the_row_until_not_before(store: Store, org: Organization) -> None:
    gen_id = await _interactive(store, org, 0)
    claim = await store.leases.claim_next("w1", LEASE, at(0))
    assert claim is not None
    assert await store.leases.retry_later(gen_id, "w1", 1, at(60), error="503", error_code="x")
    assert not await store.leases.retry_later(gen_id, "w1", 1, at(60))
    assert await store.leases.claim_next("w1", LEASE, at(59)) is None
    again = await store.leases.claim_next("w1", LEASE, at(60))
    assert again is not None and again.attempt == 2


async def test_stale_finish_returns_false_and_changes_nothing(store: Store, org: Organization) -> None:
    created = await _batch(store, org, 0, lines=1)
    stale = await store.leases.claim_next("w1", LEASE, at(0))
    assert stale is not None
    await store.leases.requeue_expired(at(31))
    fresh = await store.leases.claim_next("w2", LEASE, at(32))
    assert fresh is not None
    gen_id = fresh.generation.id
    hook = new_delivery(org.id, "https://hook", "generation.completed", "{}")
    stale_done = await store.leases.finish(
        gen_id, "w1", stale.attempt, GenerationStatus.COMPLETED, output_key="stale.mp4", deliveries=[hook]
    )
    assert not stale_done
    row = await store.generations.get(gen_id)
    assert row is not None
    assert (row.status, row.output_key, row.lease_owner, row.attempts) == ("PROCESSING", None, "w2", 2)
    record = await store.batches.get(created.id)
    assert record is not None and record.metrics.success_count == 0
    assert await store.outbox.get(hook.id) is None
    # The same owner with an old attempt number is stale too.
    assert not await store.leases.finish(gen_id, "w2", 1, GenerationStatus.COMPLETED)


async def test_finish_records_the_result_and_bumps_the_batch_counter(store: Store, org: Organization) -> None:
    created = await _batch(store, org, 0, lines=4)
    claims = [await store.leases.claim_next("w", LEASE, at(1)) for _ in range(4)]
    assert all(c is not None for c in claims)
    outcomes = [GenerationStatus.COMPLETED, GenerationStatus.FAILED, GenerationStatus.REJECTED]
    hook = new_delivery(org.id, "https://hook", "generation.completed", '{"id":"x"}')
    for claim, status in zip(claims, outcomes, strict=False):
        assert claim is not None
        ok = status is GenerationStatus.COMPLETED
        assert await store.leases.finish(
            claim.generation.id,
            "w",
            claim.attempt,
            status,
            now=at(9),
            engine="builtin",
            output_key="out.mp4" if ok else None,
            output_duration=2.5 if ok else None,
            error_code=None if ok else "generation_no_face_detected",
            deliveries=[hook] if ok else [],
        )
    record = await store.batches.get(created.id)
    assert record is not None
    metrics = record.metrics
    assert (metrics.success_count, metrics.failed_count, metrics.canceled_count) == (1, 2, 0)
    assert (metrics.processing_count, metrics.pending_count, metrics.total_generations) == (1, 0, 4)
    first = claims[0]
    assert first is not None
    row = await store.generations.get(first.generation.id)
    assert row is not None
    assert (row.status, row.output_key, row.engine, row.completed_at) == (
        "COMPLETED",
        "out.mp4",
        "builtin",
        at(9),
    )
    assert await store.outbox.get(hook.id) is not None
    # A second finish of the same attempt is refused: the row is no longer PROCESSING.
    assert not await store.leases.finish(first.generation.id, "w", first.attempt, GenerationStatus.FAILED)


async def test_finish_rejects_a_status_that_is_not_final(store: Store, org: Organization) -> None:
    gen_id = await _interactive(store, org, 0)
    claim = await store.leases.claim_next("w", LEASE, at(0))
    assert claim is not None
    with pytest.raises(ValueError, match="not a final"):
        await store.leases.finish(gen_id, "w", claim.attempt, GenerationStatus.PENDING)
    row = await store.generations.get(gen_id)
    assert row is not None and row.status == GenerationStatus.PROCESSING
