"""API views of store records (api/views.py), read back through the official client's own types."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from sync.common.types.batch_response import BatchResponse
from sync.common.types.generation import Generation as SdkGeneration
from sync.core.unchecked_base_model import construct_type

from lipsync_api.api.views import batch_view, generation_view, iso
from lipsync_api.store.batches import BatchMetrics, BatchRecord
from lipsync_api.store.models import Batch, Generation

CREATED = datetime(2026, 11, 29, 12, 0, 0, tzinfo=UTC)
REQUEST = {
    "model": "lipsync-2",
    "input": [
        {"type": "video", "url": "https://example.com/v.mp4"},
        {"type": "audio", "url": "https://example.com/a.wav"},
    ],
    "options": {"sync_mode": "loop"},
}


def generation(**fields: object) -> Generation:
    values: dict[str, object] = {
        "id": "7c9e6679-7425-40de-944b-e07fc1f90ae7",
        "organization_id": "org",
        "status": "COMPLETED",
        "model": "lipsync-2",
        "request": REQUEST,
        "created_at": CREATED,
        "attempts": 1,
        "output_duration": 4.2,
        **fields,
    }
    return Generation(**values)


def as_client_reads(kind: Any, view: dict[str, object]) -> Any:
    """Parse a response body exactly as the official client does (its generated raw clients)."""
    return cast(Any, construct_type(type_=kind, object_=view))


def test_iso_is_utc_with_z() -> None:
    assert iso(CREATED) == "2026-11-29T12:00:00Z"
    assert iso(None) is None


def test_generation_view_parses_with_the_official_client_types() -> None:
    view = generation_view(generation(error_code=None), "https://host/v2/files/x?sig=1")
    parsed = as_client_reads(SdkGeneration, view)
    assert parsed.status == "COMPLETED"
    assert parsed.output_url == "https://host/v2/files/x?sig=1"
    assert parsed.output_duration == 4.2
    assert parsed.created_at == CREATED
    assert view["error_code"] is None and "errorCode" not in view
    assert view["options"] == {"sync_mode": "loop"}


def test_failed_generation_carries_error_and_code() -> None:
    view = generation_view(
        generation(status="FAILED", error="no face", error_code="generation_no_face_detected"), None
    )
    assert view["status"] == "FAILED" and view["error"] == "no face"
    assert view["error_code"] == "generation_no_face_detected"


def batch_record(status: str, processing: int = 2) -> BatchRecord:
    batch = Batch(
        id="b1",
        organization_id="org",
        status=status,
        webhook_url="https://hooks.example/x",
        total_generations=10,
        success_count=5,
        failed_count=1,
        canceled_count=0,
        created_at=CREATED,
    )
    metrics = BatchMetrics(
        total_generations=10,
        success_count=5,
        failed_count=1,
        canceled_count=0,
        processing_count=processing,
        pending_count=4 - processing,
    )
    return BatchRecord(batch, metrics)


def test_batch_view_parses_and_counts_processing_as_pending() -> None:
    view = batch_view(batch_record("PROCESSING"), "https://host/results")
    parsed = as_client_reads(BatchResponse, view)
    assert parsed.metrics.pending_count == 4
    assert view["metrics"]["processing_count"] == 2
    assert parsed.output_url == ""  # not terminal yet
    assert parsed.webhook_url == "https://hooks.example/x"


def test_terminal_batch_shows_its_results_url() -> None:
    view = batch_view(batch_record("COMPLETED", processing=0), "https://host/results")
    assert view["outputUrl"] == "https://host/results"
