"""Store records -> the JSON objects the API returns (casing exactly as the official client expects)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from lipsync_api.store.batches import BatchRecord
from lipsync_api.store.models import BatchStatus, Generation

TERMINAL_BATCH = frozenset({BatchStatus.COMPLETED, BatchStatus.FAILED, BatchStatus.CANCELED})


def iso(moment: datetime | None) -> str | None:
    """ISO-8601 UTC with a ``Z``, or None."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def generation_view(generation: Generation, output_url: str | None) -> dict[str, Any]:
    """The Generation object: camelCase except ``error_code``; (ext) batch, engine and timing fields."""
    request = generation.request or {}
    return {
        "id": generation.id,
        "createdAt": iso(generation.created_at),
        "status": generation.status,
        "model": generation.model,
        "input": request.get("input", []),
        "options": request.get("options"),
        "segments": request.get("segments"),
        "webhookUrl": generation.webhook_url,
        "outputUrl": output_url,
        "outputDuration": generation.output_duration,
        "segmentOutputUrl": None,
        "error": generation.error,
        "error_code": generation.error_code,
        "batchId": generation.batch_id,
        "requestId": generation.request_id,
        "engine": generation.engine,
        "startedAt": iso(generation.started_at),
        "completedAt": iso(generation.completed_at),
        "attempts": generation.attempts,
    }


def batch_view(record: BatchRecord, output_url: str | None) -> dict[str, Any]:
    """The Batch object: ``created_at`` and snake_case metrics, camelCase ``webhookUrl``/``outputUrl``.

    ``pending_count`` counts lines still pending or processing, as the official client documents it;
    (ext) ``processing_count`` says how many of those are running now.
    """
    batch, metrics = record.batch, record.metrics
    terminal = batch.status in TERMINAL_BATCH
    return {
        "id": batch.id,
        "created_at": iso(batch.created_at),
        "status": batch.status,
        "metrics": {
            "total_generations": metrics.total_generations,
            "success_count": metrics.success_count,
            "failed_count": metrics.failed_count,
            "pending_count": metrics.pending_count + metrics.processing_count,
            "processing_count": metrics.processing_count,
            "canceled_count": metrics.canceled_count,
        },
        "webhookUrl": batch.webhook_url,
        "outputUrl": (output_url or "") if terminal else "",
        "started_at": iso(batch.started_at),
        "completed_at": iso(batch.completed_at),
        "expires_at": iso(batch.expires_at),
        "canceled_at": iso(batch.canceled_at),
    }
