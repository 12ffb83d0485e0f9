"""Batch finalisation: expire overdue batches, then write each finished batch's results file and end it.

A batch is finished when none of its lines is PENDING or PROCESSING. Its results file (one JSON line per
input line, in input order, each a full Generation object) is written first, then the batch moves to its
final status in one transaction with its webhook; a crash between the two just rewrites the file.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from lipsync_api.api.views import batch_view, generation_view
from lipsync_api.domain.batch_service import CANCELED_LINE_ERROR
from lipsync_api.errors import ErrorCode
from lipsync_api.storage import Storage
from lipsync_api.storage.signing import signed_file_url
from lipsync_api.store import Store
from lipsync_api.store.batches import BatchRecord
from lipsync_api.store.leases import Announce
from lipsync_api.store.models import Batch, BatchStatus, Generation, GenerationStatus, WebhookDelivery
from lipsync_api.store.outbox import new_delivery
from lipsync_api.webhooks import compact_json

log = logging.getLogger(__name__)

EXPIRED_LINE_ERROR = "the batch expired before this generation ran"


@dataclass(frozen=True)
class UrlSigner:
    """Turns a storage key into a signed, expiring download URL (``base_url`` + ``/v2/files/...``)."""

    secret: str
    ttl_seconds: int = 7 * 24 * 3600
    base_url: str = ""

    def __call__(self, key: str | None) -> str | None:
        """The signed URL of ``key``, or None when there is no object."""
        if key is None:
            return None
        expires = int(time.time()) + self.ttl_seconds
        return self.base_url.rstrip("/") + signed_file_url(self.secret, key, expires)


def results_key(batch: Batch) -> str:
    """Where a batch's results file is stored."""
    return f"results/{batch.organization_id}/{batch.id}.jsonl"


def announcer(signer: UrlSigner, now: datetime) -> Announce:
    """The store's hook that queues each ended generation's webhook in the transaction that ends it."""
    return partial(generation_delivery, signer=signer, now=now)


def generation_delivery(generation: Generation, signer: UrlSigner, now: datetime) -> list[WebhookDelivery]:
    """The webhook announcing a generation's final state, if it has a webhook URL."""
    if not generation.webhook_url:
        return []
    body = compact_json(generation_view(generation, signer(generation.output_key))).decode()
    event = f"generation.{generation.status.lower()}"
    return [new_delivery(generation.organization_id, generation.webhook_url, event, body, now=now)]


class BatchFinaliser:
    """Expires overdue batches and finalises finished ones; safe to run from several schedulers."""

    def __init__(self, store: Store, storage: Storage, signer: UrlSigner) -> None:
        self._store = store
        self._storage = storage
        self._signer = signer

    async def expire(self, now: datetime) -> int:
        """Fail the unstarted lines of running batches past ``expires_at``; returns lines closed.

        Lines already PROCESSING finish (or their lease expires and the next sweep closes them).
        """
        closed = 0
        for batch in await self._store.batches.list_running():
            if batch.expires_at is not None and batch.expires_at <= now:
                closed += await self._store.batches.close_pending_lines(
                    batch.id,
                    GenerationStatus.FAILED,
                    now=now,
                    error=EXPIRED_LINE_ERROR,
                    error_code=ErrorCode.TIMEOUT.value,
                    announce=self.announcer(now),
                )
        return closed

    async def finalise_ready(self, now: datetime) -> list[str]:
        """Finalise every batch with no line left to run; returns the ids of the batches ended."""
        return await self.finalise(await self._candidates(), now)

    async def finalise(self, batch_ids: Iterable[str], now: datetime) -> list[str]:
        """Finalise those of ``batch_ids`` with no line left to run; returns the ids of the batches ended."""
        ended: list[str] = []
        for batch_id in batch_ids:
            record = await self._store.batches.get(batch_id)
            if record is not None and await self._finalise(record, now):
                ended.append(batch_id)
        return ended

    async def _candidates(self) -> list[str]:
        running = [batch.id for batch in await self._store.batches.list_running()]
        return running + await self._store.batches.list_canceled_unfinalised()

    async def _finalise(self, record: BatchRecord, now: datetime) -> bool:
        batch, metrics = record.batch, record.metrics
        if batch.status == BatchStatus.CANCELED and metrics.pending_count:
            await self._close_canceled(batch.id, now)  # a crash left lines pending after the cancel
            return False
        if metrics.pending_count or metrics.processing_count:
            return False
        key = results_key(batch)
        await self._storage.put_bytes(key, await self._results_file(batch.id))
        return await self._end(record, key, now)

    async def _close_canceled(self, batch_id: str, now: datetime) -> None:
        await self._store.batches.close_pending_lines(
            batch_id,
            GenerationStatus.CANCELED,
            now=now,
            error=CANCELED_LINE_ERROR,
            error_code=ErrorCode.CANCELED.value,
            announce=self.announcer(now),
        )

    def announcer(self, now: datetime) -> Announce:
        """Builds the webhook of each generation this finaliser (or a cancel) ends."""
        return announcer(self._signer, now)

    async def _results_file(self, batch_id: str) -> bytes:
        lines = await self._store.generations.list_for_batch(batch_id)
        return b"".join(
            compact_json({"request_id": line.request_id, "response": self._view(line)}) + b"\n"
            for line in lines
        )

    def _view(self, generation: Generation) -> dict[str, object]:
        return generation_view(generation, self._signer(generation.output_key))

    async def _end(self, record: BatchRecord, key: str, now: datetime) -> bool:
        batch = record.batch
        previous, version = batch.status, batch.version
        batch.status = final_status(record)
        batch.completed_at, batch.results_key = now, key
        moved = await self._store.batches.transition(
            batch.id,
            batch.status,
            from_statuses=(previous,),
            expected_version=version,
            deliveries=self._batch_delivery(record, key, now),
            completed_at=now,
            results_key=key,
        )
        if moved:
            log.info("batch %s ended %s", batch.id, batch.status)
        return moved

    def _batch_delivery(self, record: BatchRecord, key: str, now: datetime) -> list[WebhookDelivery]:
        batch = record.batch
        if not batch.webhook_url:
            return []
        body = compact_json(batch_view(record, self._signer(key))).decode()
        event = f"batch.{batch.status.lower()}"
        return [new_delivery(batch.organization_id, batch.webhook_url, event, body, now=now)]


def final_status(record: BatchRecord) -> str:
    """CANCELED stays CANCELED; otherwise COMPLETED with at least one success, else FAILED."""
    if record.batch.status == BatchStatus.CANCELED:
        return BatchStatus.CANCELED
    return BatchStatus.COMPLETED if record.metrics.success_count > 0 else BatchStatus.FAILED
