"""The response shapes the OpenAPI document describes (documentation only: routes return plain dicts).

They mirror ``api/views.py`` and the error mapping in ``api/errors.py``, so clients and schema-driven
tests (schemathesis) can check every answer. Extra keys are allowed, as the official SDK's models allow
them. ``tests/integration/api/test_openapi_fuzz.py`` holds the real responses to these shapes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from lipsync_api.store.models import BatchStatus, GenerationStatus


class Documented(BaseModel):
    """Base of the documented shapes: unknown keys allowed."""

    model_config = ConfigDict(extra="allow")


class LineError(Documented):
    """(ext) One problem of a batch file; ``line`` is null for a problem of the whole file."""

    line: int | None
    request_id: str | None
    field: str | None
    message: str


class ErrorBody(Documented):
    """Every error: ``{"statusCode", "message", "errorCode"}``; a batch file's also lists ``errors``."""

    statusCode: int
    message: str | list[str]
    errorCode: str | None = None
    errors: list[LineError] | None = None


class GenerationOut(Documented):
    """The Generation object (camelCase except ``error_code``; the last six keys are extensions)."""

    id: str
    createdAt: datetime
    status: GenerationStatus
    model: str
    input: list[dict[str, Any]]
    options: dict[str, Any] | None
    segments: list[dict[str, Any]] | None
    webhookUrl: str | None
    outputUrl: str | None
    outputDuration: float | None
    segmentOutputUrl: str | None
    error: str | None
    error_code: str | None
    batchId: str | None
    requestId: str | None
    engine: str | None
    startedAt: datetime | None
    completedAt: datetime | None
    attempts: int


class BatchMetricsOut(Documented):
    """A batch's counters; ``pending_count`` counts running lines too, ``processing_count`` only them."""

    total_generations: int
    success_count: int
    failed_count: int
    pending_count: int
    processing_count: int
    canceled_count: int


class BatchOut(Documented):
    """The Batch object; ``outputUrl`` is ``""`` until the batch is final."""

    id: str
    created_at: datetime
    status: BatchStatus
    metrics: BatchMetricsOut
    webhookUrl: str | None
    outputUrl: str
    started_at: datetime | None
    completed_at: datetime | None
    expires_at: datetime | None
    canceled_at: datetime | None


class DryRunOut(Documented):
    """A batch dry run's answer; the estimates are null when no line could be estimated."""

    status: Literal["VALIDATED"]
    total_generations: int
    estimatedFrameCount: float | None
    estimatedGenerationCost: float | None
    warnings: list[str]


class EstimateOut(Documented):
    """The SDK's EstimatedGenerationCost."""

    estimatedFrameCount: float
    estimatedGenerationCost: float


class ModelOut(Documented):
    """One served model."""

    id: str
    name: str
    type: str
    version: str
    description: str


class StatusOut(Documented):
    """``{"status": "ok"}``."""

    status: str


# Router-level: every 4xx of these routes has the error shape (and FastAPI's 422 entry, which this
# service never answers, is not added when a 4XX entry exists).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": ErrorBody, "description": "The error shape: statusCode, message, errorCode."}
}


def documented(status: int, model: Any, description: str = "Successful Response") -> dict[int | str, Any]:
    """A route's ``responses=`` entry for its success answer."""
    return {status: {"model": model, "description": description}}
