"""Webhook delivery: send what the outbox holds, signed at send time, guarded, retried with backoff.

The outbox row is the truth. A claim counts the attempt and leases the row (``OutboxRepository.claim_due``),
so a sender killed mid-request leaves the delivery to be claimed again once the lease runs out, by this
process after a restart or by another one. Each attempt is marked under its attempt number; a mark that
lost the row (the lease ran out and someone else took it) changes nothing. Receivers drop repeats by
``Sync-Webhook-Id``, which is the delivery id and so the same on every attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType

import httpcore
import httpx

from lipsync_api import __version__
from lipsync_api.netguard import BlockedAddressError, Resolver, guarded_async_client, system_resolver
from lipsync_api.observability.metrics import Metrics
from lipsync_api.store import Store
from lipsync_api.store.models import WebhookDelivery
from lipsync_api.store.types import utc_now
from lipsync_api.webhooks import SIGNATURE_HEADER, WEBHOOK_ID_HEADER, signature_header

log = logging.getLogger(__name__)

_MAX_EXPONENT = 32  # 2**32 base delays is past any cap; keeps the float finite


@dataclass(frozen=True)
class DeliveryPolicy:
    """Timeouts, retry schedule and guard for webhook deliveries (settings map onto this)."""

    connect_timeout: float = 5.0
    read_timeout: float = 10.0
    max_attempts: int = 8
    base_delay: float = 10.0
    max_delay: float = 3600.0
    jitter: float = 0.1
    allow_private_addresses: bool = False
    batch_size: int = 20
    lease_seconds: float = 120.0
    user_agent: str = f"lipsync-api-webhooks/{__version__}"

    def __post_init__(self) -> None:
        if min(self.connect_timeout, self.read_timeout, self.base_delay) <= 0:
            raise ValueError("timeouts and base_delay must be positive")
        if self.max_attempts < 1 or self.batch_size < 1:
            raise ValueError("max_attempts and batch_size must be at least 1")
        if self.max_delay < self.base_delay or not 0 <= self.jitter < 1:
            raise ValueError("need max_delay >= base_delay and 0 <= jitter < 1")
        # One attempt may wait for the pool, connect, write and read; the lease must outlast all four,
        # or a slow (not dead) attempt would have its delivery claimed again and sent twice.
        if self.lease_seconds <= 2 * (self.connect_timeout + self.read_timeout):
            raise ValueError("lease_seconds must exceed 2 * (connect_timeout + read_timeout)")

    def timeout(self) -> httpx.Timeout:
        """The httpx timeouts: each bounds one wait (connect, each read or write), not the whole request."""
        return httpx.Timeout(
            connect=self.connect_timeout,
            read=self.read_timeout,
            write=self.read_timeout,
            pool=self.connect_timeout,
        )


def backoff_seconds(attempt: int, policy: DeliveryPolicy, rng: random.Random) -> float:
    """Wait after failed attempt ``attempt`` (1-based): base * 2**(attempt-1), capped, less up to jitter."""
    delay = min(policy.max_delay, policy.base_delay * float(2 ** min(attempt - 1, _MAX_EXPONENT)))
    # Jitter only shortens, so the cap holds and retries of one outage spread out instead of bunching.
    return delay * (1 - policy.jitter * rng.random())


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to: delivered (error None), or an error and whether retrying can help."""

    error: str | None = None
    permanent: bool = False


class WebhookSender:
    """Delivers due outbox rows over a guarded HTTP client it owns (``aclose`` it, or use ``async with``)."""

    def __init__(
        self,
        store: Store,
        policy: DeliveryPolicy | None = None,
        *,
        rng: random.Random | None = None,
        resolver: Resolver = system_resolver,
        dialer: httpcore.AsyncNetworkBackend | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._store = store
        self._policy = policy or DeliveryPolicy()
        self._rng = rng or random.Random()
        self._metrics = metrics or Metrics()
        self._client = guarded_async_client(
            self._policy.timeout(),
            allow_private_addresses=self._policy.allow_private_addresses,
            resolver=resolver,
            dialer=dialer,
            headers={"User-Agent": self._policy.user_agent},
        )

    async def __aenter__(self) -> WebhookSender:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()

    async def deliver_due(self, now: datetime | None = None, limit: int | None = None) -> int:
        """Claim due deliveries (up to ``limit``), attempt them concurrently; return how many were claimed."""
        claimed = await self._store.outbox.claim_due(
            now=now or utc_now(),
            limit=limit or self._policy.batch_size,
            lease_seconds=self._policy.lease_seconds,
        )
        secrets = await self._secrets({d.organization_id for d in claimed})
        await asyncio.gather(*(self._deliver(d, secrets.get(d.organization_id), now) for d in claimed))
        return len(claimed)

    async def run_forever(
        self, stop: asyncio.Event, interval: float = 1.0, wake: asyncio.Event | None = None
    ) -> None:
        """Deliver until ``stop`` is set: straight on after a full round, else when ``wake`` is set (a
        delivery was stored in this process) or after ``interval`` seconds (deliveries stored elsewhere,
        retries coming due)."""
        wake = wake or asyncio.Event()
        stopping = asyncio.ensure_future(stop.wait())
        stopping.add_done_callback(lambda _: wake.set())
        try:
            while not stop.is_set():
                wake.clear()
                try:
                    busy = await self.deliver_due() >= self._policy.batch_size
                except Exception:  # a database hiccup must not end delivery for the life of the server
                    log.exception("webhook delivery round failed")
                    busy = False
                if not busy and not wake.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(wake.wait(), interval)
        finally:
            stopping.cancel()

    async def _secrets(self, organization_ids: set[str]) -> dict[str, str]:
        found = {}
        for organization_id in organization_ids:
            org = await self._store.organizations.get(organization_id)
            if org is not None:
                found[organization_id] = org.webhook_secret
        return found

    async def _deliver(self, delivery: WebhookDelivery, secret: str | None, now: datetime | None) -> None:
        try:
            outcome = await self._attempt(delivery, secret, now or utc_now())
        except Exception as exc:  # a bug in one attempt is recorded and retried, not lost
            log.exception("webhook delivery %s: unexpected error", delivery.id)
            outcome = Outcome(f"unexpected error: {type(exc).__name__}")
        if not await self._settle(delivery, outcome, now or utc_now()):
            log.warning("webhook delivery %s: attempt %d no longer holds it", delivery.id, delivery.attempts)

    async def _attempt(self, delivery: WebhookDelivery, secret: str | None, sent_at: datetime) -> Outcome:
        if secret is None:
            return Outcome("organization not found", permanent=True)
        body = delivery.body.encode("utf-8")  # the exact compact JSON text that was stored
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signature_header(secret, int(sent_at.timestamp()), body),
            WEBHOOK_ID_HEADER: delivery.id,
        }
        try:
            # Streamed and never read: only the status matters, and a huge or slow reply body costs nothing.
            request = self._client.build_request("POST", delivery.target_url, content=body, headers=headers)
            reply = await self._client.send(request, stream=True)
            status = reply.status_code
            await reply.aclose()
        except BlockedAddressError as exc:
            return Outcome(f"target refused: {exc.reason}", permanent=True)
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            return Outcome(f"invalid target URL ({exc})", permanent=True)
        except httpx.HTTPError as exc:
            return Outcome(self._describe(exc))
        return Outcome() if 200 <= status < 300 else Outcome(f"HTTP {status}")

    def _describe(self, exc: httpx.HTTPError) -> str:
        if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
            return f"connection timed out after {self._policy.connect_timeout:g} s"
        if isinstance(exc, httpx.TimeoutException):
            return f"timed out after {self._policy.read_timeout:g} s"
        return f"connection failed: {exc or type(exc).__name__}"

    async def _settle(self, delivery: WebhookDelivery, outcome: Outcome, now: datetime) -> bool:
        outbox = self._store.outbox
        if outcome.error is None:
            settled = await outbox.mark_delivered(delivery.id, delivery.attempts, now=now)
            if settled:
                self._metrics.count_delivery("delivered")
            return settled
        retry_at = None
        if not outcome.permanent and delivery.attempts < self._policy.max_attempts:
            retry_at = now + timedelta(seconds=backoff_seconds(delivery.attempts, self._policy, self._rng))
        settled = await outbox.mark_failed(delivery.id, delivery.attempts, outcome.error, retry_at)
        if settled:
            self._metrics.count_delivery("failed" if retry_at is None else "retried")
        return settled
