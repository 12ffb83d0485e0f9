"""Use cases of batches: validate (and dry-run) a file, create, cancel, get.

A batch is stored as one ordinary generation row per input line, in the same transaction as the batch;
from then on the scheduler runs the lines like any other generation (they bypass the generation cap).
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from functools import partial
from typing import Any

from lipsync_api.api.schemas import is_http_url
from lipsync_api.domain.assets import line_asset_problems
from lipsync_api.domain.batchfile import BatchFile, BatchLine, LineProblem, error_body, parse_batch_file
from lipsync_api.domain.estimate import LineEstimator, batch_estimate_fields
from lipsync_api.domain.generation_service import (
    ServiceLimits,
    ValidPayload,
    generation_row,
    plan_limits,
    validate_payload,
)
from lipsync_api.domain.plans import PlanLimits
from lipsync_api.errors import (
    BatchFileInvalid,
    BatchFileTooLarge,
    ConcurrencyLimitReached,
    ErrorCode,
    InvalidRequestError,
    NotFoundError,
    PlanUpgradeRequired,
)
from lipsync_api.store import Store
from lipsync_api.store.batches import BatchRecord
from lipsync_api.store.leases import Announce
from lipsync_api.store.models import (
    RUNNING_BATCH_STATUSES,
    Batch,
    BatchStatus,
    Generation,
    GenerationStatus,
    Organization,
)

# Without an estimator (nothing to probe the media with), frames and cost are known only once the batch runs.
ESTIMATE_WARNING = "cost and frame estimates need the media; they are computed when the batch runs"
CANCELED_LINE_ERROR = "the batch was canceled before this generation started"


def validate_batch_file(
    data: bytes, limits: ServiceLimits, *, allow_local_files: bool = False
) -> BatchFile[ValidPayload]:
    """The file's requests in input order; raises 413 over the size limit and 400 naming every problem.

    ``allow_local_files`` admits local media paths (the CLI's ``batch run``; never the HTTP API).
    """
    if len(data) > limits.max_batch_bytes:
        problem = LineProblem(None, None, None, f"the file is larger than {limits.max_batch_bytes} bytes")
        raise BatchFileTooLarge(error_body([problem], 413))
    validate = partial(validate_payload, catalog=limits.catalog, allow_local_files=allow_local_files)
    parsed = parse_batch_file(data, validate, max_requests=limits.max_batch_requests)
    if not parsed.ok:
        raise BatchFileInvalid(error_body(parsed.problems))
    return parsed


async def dry_run_batch(
    store: Store,
    org: Organization,
    data: bytes,
    limits: ServiceLimits,
    estimator: LineEstimator | None = None,
    *,
    webhook_url: str | None = None,
) -> dict[str, Any]:
    """Validate a batch file as ``create_batch`` would (plan included), storing and running nothing.

    The ``estimator`` probes the lines' media for frame and cost estimates (lines it cannot estimate get
    a warning each); without one the estimates are null, with a warning saying so.
    """
    _require_batches(org, plan_limits(org, limits))
    _webhook_url(webhook_url)
    parsed = await asyncio.to_thread(validate_batch_file, data, limits)
    if asset_issues := await line_asset_problems(store, org.id, parsed.lines):
        raise BatchFileInvalid(error_body(asset_issues))
    answer: dict[str, Any] = {"status": "VALIDATED", "total_generations": len(parsed.lines)}
    if estimator is None:
        return answer | {
            "estimatedFrameCount": None,
            "estimatedGenerationCost": None,
            "warnings": [ESTIMATE_WARNING],
        }
    found = await estimator.estimate_lines(parsed.lines)
    return answer | batch_estimate_fields(found.outcomes, found.sampling)


async def create_batch(
    store: Store,
    org: Organization,
    data: bytes,
    webhook_url: str | None,
    limits: ServiceLimits,
    now: datetime,
    *,
    allow_local_files: bool = False,
) -> BatchRecord:
    """Store a batch (JOBS_CREATED, expiring after the window) and one PENDING generation per line.

    ``allow_local_files`` admits local media paths (the CLI's ``batch run``; never the HTTP API).
    """
    plan = plan_limits(org, limits)
    _require_batches(org, plan)
    webhook_url = _webhook_url(webhook_url)
    # A cheap early refusal; the insert checks the cap again atomically.
    if await store.batches.count_running(org.id) >= plan.concurrent_batches:
        raise _too_many_batches(org, plan)
    # Validating 1000 lines takes a while: off the event loop, so other requests are served meanwhile.
    parsed = await asyncio.to_thread(validate_batch_file, data, limits, allow_local_files=allow_local_files)
    if asset_issues := await line_asset_problems(store, org.id, parsed.lines):
        raise BatchFileInvalid(error_body(asset_issues))
    batch = Batch(
        organization_id=org.id,
        status=BatchStatus.JOBS_CREATED,
        webhook_url=webhook_url,
        created_at=now,
        expires_at=now + limits.batch_expiry,
    )
    lines = [_line_row(line, org.id, now) for line in parsed.lines]
    if not await store.batches.insert(batch, lines, running_cap=plan.concurrent_batches):
        raise _too_many_batches(org, plan)
    return await get_batch(store, org, batch.id)


def _require_batches(org: Organization, plan: PlanLimits) -> None:
    if not plan.batches_allowed:
        raise PlanUpgradeRequired(
            f"batches need the growth plan or above; this organization is on {org.plan}"
        )


def _too_many_batches(org: Organization, plan: PlanLimits) -> ConcurrencyLimitReached:
    return ConcurrencyLimitReached(
        f"concurrency limit reached: the {org.plan} plan allows {plan.concurrent_batches} batch(es) at once"
    )


def _webhook_url(value: str | None) -> str | None:
    """The batch's webhook URL ("" from an empty form field means none); anything but http(s) is a 400."""
    if not value:
        return None
    if not is_http_url(value):
        raise InvalidRequestError("webhook_url: must be an http(s) URL")
    return value


def _line_row(line: BatchLine[ValidPayload], org_id: str, now: datetime) -> Generation:
    row = generation_row(line.payload, org_id, now)
    row.request_id, row.line_no = line.request_id, line.line
    return row


async def cancel_batch(
    store: Store, org: Organization, batch_id: str, now: datetime, announce: Announce | None = None
) -> BatchRecord:
    """Cancel a running batch: its PENDING lines end CANCELED; lines already PROCESSING finish on their own.

    A batch already COMPLETED or FAILED is returned unchanged. The repository offers no single transaction
    for both steps, so the batch moves first (a concurrent finish wins and nothing is closed) and its
    pending lines are closed after; cancelling a CANCELED batch again closes any line a crash left pending.
    The results file and the batch webhook are the finaliser's: they wait for the running lines.
    ``announce`` gives each closed line's webhook, stored with it.
    """
    record = await get_batch(store, org, batch_id)
    canceled = record.batch.status == BatchStatus.CANCELED
    if record.batch.status in RUNNING_BATCH_STATUSES:
        canceled = await store.batches.transition(
            batch_id, BatchStatus.CANCELED, from_statuses=RUNNING_BATCH_STATUSES, canceled_at=now
        )
    if canceled:
        await store.batches.close_pending_lines(
            batch_id,
            GenerationStatus.CANCELED,
            now=now,
            error=CANCELED_LINE_ERROR,
            error_code=ErrorCode.CANCELED.value,
            announce=announce,
        )
    return await get_batch(store, org, batch_id)


async def get_batch(store: Store, org: Organization, batch_id: str) -> BatchRecord:
    """The organization's batch with its metrics; another organization's is not found."""
    found = await store.batches.get_for_organization(org.id, batch_id)
    if found is None:
        raise NotFoundError(f"batch {batch_id} not found")
    return found
