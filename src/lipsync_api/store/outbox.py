"""The webhook outbox: deliveries are stored before they are sent, claimed when due, and marked.

A claim counts an attempt and pushes ``next_attempt_at`` one lease ahead, so a sender that dies
mid-delivery leaves the delivery to be claimed again once that lease runs out (receivers drop repeats by
the delivery id, sent as ``Sync-Webhook-Id``). Marks are fenced by the attempt number, like generations.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import ScalarSelect, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from lipsync_api.store.models import DeliveryStatus, WebhookDelivery
from lipsync_api.store.sql import rowcount
from lipsync_api.store.types import new_id, utc_now


def new_delivery(
    organization_id: str, target_url: str, event: str, body: str, *, now: datetime | None = None
) -> WebhookDelivery:
    """A pending delivery of ``body`` (the exact text to sign and send), due at once; not yet stored."""
    now = now or utc_now()
    return WebhookDelivery(
        id=new_id(),
        organization_id=organization_id,
        target_url=target_url,
        event=event,
        body=body,
        status=DeliveryStatus.PENDING,
        attempts=0,
        next_attempt_at=now,
        created_at=now,
    )


class OutboxRepository:
    """Stores, claims and settles webhook deliveries."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def enqueue(self, delivery: WebhookDelivery) -> WebhookDelivery:
        """Store a delivery made by ``new_delivery`` on its own.

        A delivery that announces a state change is better passed to the write that makes the change
        (``LeaseRepository.finish``, ``BatchRepository.transition``): one transaction, nothing lost between.
        """
        async with self._sessions.begin() as session:
            session.add(delivery)
        return delivery

    async def claim_due(
        self, *, now: datetime | None = None, limit: int = 10, lease_seconds: float = 60.0
    ) -> list[WebhookDelivery]:
        """Claim up to ``limit`` pending deliveries whose time has come, oldest due first.

        PostgreSQL: the due rows are selected ``FOR UPDATE SKIP LOCKED`` (concurrent senders take different
        ones), then updated, in one transaction; one statement would not do, since PostgreSQL may re-run an
        ``IN (SELECT ... LIMIT)`` sub-select and claim more than ``limit``. SQLite: one
        ``UPDATE ... WHERE id IN (SELECT ... LIMIT)``, atomic because SQLite runs one writer at a time.
        """
        now = now or utc_now()
        due = (
            select(WebhookDelivery.id)
            .where(WebhookDelivery.status == DeliveryStatus.PENDING, WebhookDelivery.next_attempt_at <= now)
            .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        async with self._sessions.begin() as session:
            if session.get_bind().dialect.name == "sqlite":
                claimed = await _claim(session, due.scalar_subquery(), now, lease_seconds)
            else:
                ids = list((await session.scalars(due)).all())
                claimed = await _claim(session, ids, now, lease_seconds) if ids else []
        return sorted(claimed, key=lambda d: (d.created_at, d.id))

    async def mark_delivered(self, delivery_id: str, attempt: int, *, now: datetime | None = None) -> bool:
        """Record a 2xx answer to attempt ``attempt``; False if that attempt no longer holds the delivery."""
        values: dict[str, object] = {
            "status": DeliveryStatus.DELIVERED,
            "delivered_at": now or utc_now(),
            "last_error": None,
        }
        return await self._settle(delivery_id, attempt, values)

    async def mark_failed(
        self, delivery_id: str, attempt: int, error: str, next_attempt_at: datetime | None
    ) -> bool:
        """Record a failed attempt: retry at ``next_attempt_at``, or give up for good when it is None."""
        values: dict[str, object]
        if next_attempt_at is None:
            values = {"status": DeliveryStatus.FAILED, "last_error": error}
        else:
            values = {"last_error": error, "next_attempt_at": next_attempt_at}
        return await self._settle(delivery_id, attempt, values)

    async def get(self, delivery_id: str) -> WebhookDelivery | None:
        """The delivery, or None."""
        async with self._sessions() as session:
            return await session.get(WebhookDelivery, delivery_id)

    async def _settle(self, delivery_id: str, attempt: int, values: dict[str, object]) -> bool:
        statement = (
            update(WebhookDelivery)
            .where(
                WebhookDelivery.id == delivery_id,
                WebhookDelivery.status == DeliveryStatus.PENDING,
                WebhookDelivery.attempts == attempt,
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        async with self._sessions.begin() as session:
            return rowcount(await session.execute(statement)) == 1


async def _claim(
    session: AsyncSession, ids: Sequence[str] | ScalarSelect[str], now: datetime, lease_seconds: float
) -> list[WebhookDelivery]:
    # Re-checking status and due time keeps a row claimed by someone else meanwhile out.
    statement = (
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id.in_(ids),
            WebhookDelivery.status == DeliveryStatus.PENDING,
            WebhookDelivery.next_attempt_at <= now,
        )
        .values(attempts=WebhookDelivery.attempts + 1, next_attempt_at=now + timedelta(seconds=lease_seconds))
        .returning(WebhookDelivery)
        .execution_options(synchronize_session=False)
    )
    return list((await session.scalars(statement)).all())
