"""WebhookSender against a real local receiver: signing, retries with backoff, give-up, timeouts, restarts."""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import Iterable
from datetime import datetime

import httpcore
import pytest

from lipsync_api.delivery import DeliveryPolicy, WebhookSender, backoff_seconds
from lipsync_api.store import Store
from lipsync_api.store.models import DeliveryStatus, Organization, WebhookDelivery
from lipsync_api.store.outbox import new_delivery
from lipsync_api.store.types import utc_now
from lipsync_api.webhooks import compact_json
from tests.integration.delivery.conftest import Receiver
from tests.integration.store.factories import at

pytestmark = pytest.mark.asyncio

BODY = compact_json({"id": "b1", "status": "COMPLETED", "note": "café ✓", "metrics": {"completed": 2}})
LOOPBACK_OK = DeliveryPolicy(allow_private_addresses=True, base_delay=10, max_delay=100, jitter=0.1)
PUBLIC_IP = "93.184.216.34"


async def _enqueue(store: Store, org: Organization, url: str, seconds: float = 0) -> str:
    delivery = new_delivery(org.id, url, "batch.completed", BODY.decode(), now=at(seconds))
    return (await store.outbox.enqueue(delivery)).id


async def _get(store: Store, delivery_id: str) -> WebhookDelivery:
    delivery = await store.outbox.get(delivery_id)
    assert delivery is not None
    return delivery


async def _round(sender: WebhookSender, receiver: Receiver, now: datetime) -> int:
    receiver.clock = int(now.timestamp())
    return await sender.deliver_due(now=now)


async def test_retried_until_2xx_with_the_same_id_and_growing_backoff(
    store: Store, org: Organization, receiver: Receiver
) -> None:
    receiver.answer(500, 500, 200)
    delivery_id = await _enqueue(store, org, receiver.url())
    waits: list[float] = []
    async with WebhookSender(store, LOOPBACK_OK, rng=random.Random(7)) as sender:
        now = at(0)
        for _ in range(2):
            assert await _round(sender, receiver, now) == 1
            failed = await _get(store, delivery_id)
            assert (failed.status, failed.last_error) == (DeliveryStatus.PENDING, "HTTP 500")
            assert await _round(sender, receiver, now) == 0  # not due again yet
            waits.append((failed.next_attempt_at - now).total_seconds())
            now = failed.next_attempt_at
        assert await _round(sender, receiver, now) == 1
    done = await _get(store, delivery_id)
    assert (done.status, done.attempts, done.delivered_at, done.last_error) == ("delivered", 3, now, None)
    assert 9 <= waits[0] <= 10 < 18 <= waits[1] <= 20
    rng = random.Random(7)
    assert waits == pytest.approx([backoff_seconds(n, LOOPBACK_OK, rng) for n in (1, 2)], abs=1e-3)
    assert len(receiver.requests) == 3
    for request in receiver.requests:
        assert request.body == BODY  # the stored bytes exactly
        assert request.verified
        assert request.headers["Sync-Webhook-Id"] == delivery_id
        assert request.headers["Content-Type"] == "application/json"
        assert request.headers["User-Agent"].startswith("lipsync-api-webhooks/")
        assert request.path == "/hook"


async def test_signature_timestamp_is_the_send_time(
    store: Store, org: Organization, receiver: Receiver
) -> None:
    await _enqueue(store, org, receiver.url())
    async with WebhookSender(store, LOOPBACK_OK) as sender:
        assert await _round(sender, receiver, at(1000)) == 1
    assert receiver.requests[0].headers["Sync-Signature"].startswith(f"t={int(at(1000).timestamp())},v1=")


async def test_gives_up_after_max_attempts(store: Store, org: Organization, receiver: Receiver) -> None:
    receiver.answer(503, 503, 503, 503)
    delivery_id = await _enqueue(store, org, receiver.url())
    policy = DeliveryPolicy(allow_private_addresses=True, max_attempts=3, base_delay=1, jitter=0)
    async with WebhookSender(store, policy) as sender:
        for second in (0, 10, 20):
            assert await _round(sender, receiver, at(second)) == 1
        assert await _round(sender, receiver, at(10_000)) == 0
    failed = await _get(store, delivery_id)
    assert (failed.status, failed.attempts, failed.last_error) == ("failed", 3, "HTTP 503")
    assert len(receiver.requests) == 3


async def test_read_timeout_is_retried(store: Store, org: Organization, receiver: Receiver) -> None:
    receiver.answer((200, 1.5), 200)
    delivery_id = await _enqueue(store, org, receiver.url())
    policy = DeliveryPolicy(allow_private_addresses=True, read_timeout=0.3, base_delay=5, jitter=0)
    async with WebhookSender(store, policy) as sender:
        assert await _round(sender, receiver, at(0)) == 1
        slow = await _get(store, delivery_id)
        assert (slow.status, slow.last_error) == ("pending", "timed out after 0.3 s")
        assert slow.next_attempt_at == at(5)
        assert await _round(sender, receiver, at(5)) == 1
    assert (await _get(store, delivery_id)).status == "delivered"
    assert [r.headers["Sync-Webhook-Id"] for r in receiver.requests] == [delivery_id] * 2


async def test_connection_refused_is_retried(store: Store, org: Organization) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    delivery_id = await _enqueue(store, org, f"http://127.0.0.1:{port}/hook")
    async with WebhookSender(store, LOOPBACK_OK) as sender:
        assert await sender.deliver_due(now=at(0)) == 1
    refused = await _get(store, delivery_id)
    assert refused.status == "pending"
    assert refused.last_error is not None and refused.last_error.startswith("connection failed")


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_guard_refuses_private_targets_for_good(
    store: Store, org: Organization, receiver: Receiver, host: str
) -> None:
    delivery_id = await _enqueue(store, org, receiver.url(host=host))
    async with WebhookSender(store, DeliveryPolicy()) as sender:
        assert await sender.deliver_due(now=at(0)) == 1
    refused = await _get(store, delivery_id)
    assert (refused.status, refused.attempts) == ("failed", 1)
    assert refused.last_error is not None
    assert refused.last_error.startswith(f"target refused: host {host} resolves to a private address")
    assert receiver.requests == []


async def test_unsupported_scheme_fails_for_good(store: Store, org: Organization) -> None:
    delivery_id = await _enqueue(store, org, "ftp://hooks.example/x")
    async with WebhookSender(store, LOOPBACK_OK) as sender:
        assert await sender.deliver_due(now=at(0)) == 1
    failed = await _get(store, delivery_id)
    assert failed.status == "failed"
    assert failed.last_error is not None and failed.last_error.startswith("invalid target URL")


class _RerouteDialer(httpcore.AsyncNetworkBackend):
    """Dials PUBLIC_IP at the local receiver (as if it were that public host); records every dial."""

    def __init__(self) -> None:
        self.dialed: list[str] = []
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.dialed.append(host)
        target = "127.0.0.1" if host == PUBLIC_IP else host
        return await self._inner.connect_tcp(target, port, timeout, local_address, socket_options)


def _fake_dns(host: str, port: int) -> list[str]:
    return {"hooks.test": [PUBLIC_IP], "mixed.test": [PUBLIC_IP, "10.0.0.7"]}.get(host, [host])


async def test_guarded_public_host_is_dialed_at_its_checked_ip(
    store: Store, org: Organization, receiver: Receiver
) -> None:
    good = await _enqueue(store, org, receiver.url(host="hooks.test"))
    mixed = await _enqueue(store, org, receiver.url(host="mixed.test"), seconds=1)
    dialer = _RerouteDialer()
    async with WebhookSender(store, DeliveryPolicy(), resolver=_fake_dns, dialer=dialer) as sender:
        assert await _round(sender, receiver, at(1)) == 2
    assert (await _get(store, good)).status == "delivered"
    refused = await _get(store, mixed)
    assert refused.status == "failed"
    assert refused.last_error == (
        "target refused: host mixed.test resolves to a private address 10.0.0.7 (not allowed)"
    )
    assert dialer.dialed == [PUBLIC_IP]
    assert [r.headers["Host"] for r in receiver.requests] == [f"hooks.test:{receiver.port}"]


async def test_pending_delivery_survives_a_restart(
    store: Store, org: Organization, receiver: Receiver, database_url: str
) -> None:
    receiver.answer(500)
    delivery_id = await _enqueue(store, org, receiver.url())
    async with WebhookSender(store, LOOPBACK_OK) as sender:
        assert await _round(sender, receiver, at(0)) == 1
    await store.close()  # the process goes away
    reopened = Store.open(database_url)
    try:
        async with WebhookSender(reopened, LOOPBACK_OK) as sender:
            assert await _round(sender, receiver, at(30)) == 1
        done = await _get(reopened, delivery_id)
    finally:
        await reopened.close()
    assert (done.status, done.attempts) == ("delivered", 2)
    assert [r.headers["Sync-Webhook-Id"] for r in receiver.requests] == [delivery_id] * 2


async def test_delivery_claimed_by_a_dead_sender_is_sent_after_its_lease(
    store: Store, org: Organization, receiver: Receiver, database_url: str
) -> None:
    delivery_id = await _enqueue(store, org, receiver.url())
    assert len(await store.outbox.claim_due(now=at(0), lease_seconds=120)) == 1  # then killed mid-request
    await store.close()
    reopened = Store.open(database_url)
    try:
        async with WebhookSender(reopened, LOOPBACK_OK) as sender:
            assert await _round(sender, receiver, at(60)) == 0  # its lease still holds it
            assert await _round(sender, receiver, at(120)) == 1
        done = await _get(reopened, delivery_id)
    finally:
        await reopened.close()
    assert (done.status, done.attempts) == ("delivered", 2)


async def test_run_forever_delivers_until_stopped(
    store: Store, org: Organization, receiver: Receiver
) -> None:
    delivery = new_delivery(org.id, receiver.url(), "batch.completed", BODY.decode(), now=utc_now())
    await store.outbox.enqueue(delivery)
    receiver.clock = int(utc_now().timestamp())
    stop = asyncio.Event()
    async with WebhookSender(store, LOOPBACK_OK) as sender:
        task = asyncio.create_task(sender.run_forever(stop, interval=0.05))
        for _ in range(200):
            if (await _get(store, delivery.id)).status == "delivered":
                break
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.wait_for(task, 5)
    assert (await _get(store, delivery.id)).status == "delivered"
    assert len(receiver.requests) == 1 and receiver.requests[0].verified
