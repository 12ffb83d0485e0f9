"""The webhook outbox: due deliveries are claimed once, marked delivered or retried, given up on."""

from __future__ import annotations

import asyncio

import pytest

from lipsync_api.store import Store
from lipsync_api.store.models import DeliveryStatus, Organization
from lipsync_api.store.outbox import new_delivery
from tests.integration.store.factories import at

pytestmark = pytest.mark.asyncio

BODY = '{"id":"g1","status":"COMPLETED"}'


async def _enqueue(store: Store, org: Organization, seconds: float) -> str:
    delivery = new_delivery(org.id, "https://hook.example/x", "generation.completed", BODY, now=at(seconds))
    return (await store.outbox.enqueue(delivery)).id


async def test_enqueued_delivery_keeps_its_exact_body(store: Store, org: Organization) -> None:
    delivery_id = await _enqueue(store, org, 0)
    stored = await store.outbox.get(delivery_id)
    assert stored is not None
    assert (stored.body, stored.status, stored.attempts, stored.next_attempt_at) == (
        BODY,
        "pending",
        0,
        at(0),
    )


async def test_claim_takes_due_deliveries_once_until_their_lease_ends(
    store: Store, org: Organization
) -> None:
    first = await _enqueue(store, org, 0)
    second = await _enqueue(store, org, 1)
    claimed = await store.outbox.claim_due(now=at(0), lease_seconds=60)
    assert [d.id for d in claimed] == [first]
    assert claimed[0].attempts == 1
    assert [d.id for d in await store.outbox.claim_due(now=at(5))] == [second]
    assert await store.outbox.claim_due(now=at(30)) == []
    # The sender of the first died: its lease ran out, so the delivery is due again.
    again = await store.outbox.claim_due(now=at(61))
    assert [(d.id, d.attempts) for d in again] == [(first, 2)]


async def test_claim_limit(store: Store, org: Organization) -> None:
    for n in range(5):
        await _enqueue(store, org, n)
    assert len(await store.outbox.claim_due(now=at(10), limit=3)) == 3
    assert len(await store.outbox.claim_due(now=at(10), limit=3)) == 2


async def test_concurrent_claims_share_nothing(store: Store, org: Organization) -> None:
    for n in range(12):
        await _enqueue(store, org, n)
    batches = await asyncio.gather(*(store.outbox.claim_due(now=at(20), limit=2) for _ in range(8)))
    ids = [d.id for claimed in batches for d in claimed]
    assert len(ids) == 12 and len(set(ids)) == 12


async def test_mark_delivered(store: Store, org: Organization) -> None:
    delivery_id = await _enqueue(store, org, 0)
    [claimed] = await store.outbox.claim_due(now=at(0))
    assert await store.outbox.mark_delivered(delivery_id, claimed.attempts, now=at(1))
    stored = await store.outbox.get(delivery_id)
    assert stored is not None
    assert (stored.status, stored.delivered_at) == (DeliveryStatus.DELIVERED, at(1))
    assert await store.outbox.claim_due(now=at(1000)) == []
    assert not await store.outbox.mark_delivered(delivery_id, claimed.attempts)


async def test_mark_failed_retries_later_then_gives_up(store: Store, org: Organization) -> None:
    delivery_id = await _enqueue(store, org, 0)
    [claimed] = await store.outbox.claim_due(now=at(0))
    assert await store.outbox.mark_failed(delivery_id, claimed.attempts, "HTTP 500", at(10))
    assert await store.outbox.claim_due(now=at(9)) == []
    [retry] = await store.outbox.claim_due(now=at(10))
    assert retry.attempts == 2 and retry.last_error == "HTTP 500"
    # A mark from the superseded first attempt changes nothing.
    assert not await store.outbox.mark_delivered(delivery_id, claimed.attempts)
    assert await store.outbox.mark_failed(delivery_id, retry.attempts, "HTTP 500 again", None)
    stored = await store.outbox.get(delivery_id)
    assert stored is not None
    assert (stored.status, stored.last_error) == (DeliveryStatus.FAILED, "HTTP 500 again")
    assert await store.outbox.claim_due(now=at(10_000)) == []
