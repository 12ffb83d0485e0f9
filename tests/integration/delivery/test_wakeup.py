"""The sender's wake-up: a delivery stored in this process is sent at once, not at the next poll."""

from __future__ import annotations

import asyncio

import pytest

from lipsync_api.delivery import DeliveryPolicy, WebhookSender
from lipsync_api.store import Store
from lipsync_api.store.models import Organization
from lipsync_api.store.outbox import new_delivery
from lipsync_api.store.types import utc_now
from lipsync_api.webhooks import compact_json
from tests.integration.delivery.conftest import Receiver

pytestmark = pytest.mark.asyncio

LONG_POLL = 600.0  # the sender would not look again on its own during the test
TIMEOUT = 15.0
POLICY = DeliveryPolicy(allow_private_addresses=True)


async def _store_delivery(store: Store, org: Organization, receiver: Receiver, name: str) -> str:
    body = compact_json({"id": name, "status": "COMPLETED"}).decode()
    delivery = new_delivery(org.id, receiver.url(), "batch.completed", body, now=utc_now())
    return (await store.outbox.enqueue(delivery)).id


async def _until_delivered(store: Store, delivery_id: str) -> None:
    async with asyncio.timeout(TIMEOUT):
        while (found := await store.outbox.get(delivery_id)) is None or found.status != "delivered":
            await asyncio.sleep(0.02)


async def test_a_stored_delivery_is_sent_when_the_sender_is_woken(
    store: Store, org: Organization, receiver: Receiver
) -> None:
    receiver.clock = int(utc_now().timestamp())
    first = await _store_delivery(store, org, receiver, "first")
    stop, wake = asyncio.Event(), asyncio.Event()
    async with WebhookSender(store, POLICY) as sender:
        task = asyncio.create_task(sender.run_forever(stop, interval=LONG_POLL, wake=wake))
        await _until_delivered(store, first)  # its round is over: the sender now waits for the poll
        second = await _store_delivery(store, org, receiver, "second")
        wake.set()
        await _until_delivered(store, second)
        stop.set()
        await asyncio.wait_for(task, TIMEOUT)  # and stop ends the wait at once too
    assert [request.verified for request in receiver.requests] == [True, True]
