"""``/v2/batch``: create (multipart, dry run), get, list, cancel."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from lipsync_api.api.deps import CurrentOrg, State, split_values
from lipsync_api.api.responses import ERROR_RESPONSES, BatchOut, DryRunOut, documented
from lipsync_api.api.routers.analyze import get_estimator
from lipsync_api.api.routers.events import notifier_of
from lipsync_api.api.runtime import AppState
from lipsync_api.api.upload import FILE_FIELD, read_multipart
from lipsync_api.api.views import batch_view
from lipsync_api.domain.services import cancel_batch, create_batch, dry_run_batch, get_batch
from lipsync_api.errors import InvalidRequestError
from lipsync_api.finalise import announcer
from lipsync_api.store.batches import BatchRecord
from lipsync_api.store.types import utc_now

router = APIRouter(tags=["batch"], responses=ERROR_RESPONSES)

NEXT_CURSOR_HEADER = "x-next-cursor"
NEXT_CURSOR_DOC = {
    NEXT_CURSOR_HEADER: {
        "description": "The next page's cursor, when there is one",
        "schema": {"type": "string"},
    }
}

UPLOAD_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": [FILE_FIELD],
                    "properties": {
                        FILE_FIELD: {"type": "string", "format": "binary", "description": "the .jsonl file"},
                        "webhook_url": {"type": "string"},
                        "dry_run": {"type": "string", "enum": ["true", "false"]},
                    },
                }
            }
        },
    }
}


def _view(state: AppState, record: BatchRecord) -> dict[str, Any]:
    return batch_view(record, state.signer(record.batch.results_key))


def _utc(moment: datetime | None) -> datetime | None:
    """A query time; one without an offset is taken as UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def _flag(value: str | None) -> bool:
    text = (value or "").strip().lower()
    if text not in ("", "true", "false", "1", "0"):
        raise InvalidRequestError("dry_run: must be true or false")
    return text in ("true", "1")


@router.post(
    "/v2/batch",
    status_code=201,
    summary="Create (or dry-run) a batch",
    openapi_extra=UPLOAD_DOC,
    responses=documented(201, BatchOut) | documented(200, DryRunOut, "The dry run's answer"),
)
async def create(state: State, org: CurrentOrg, request: Request) -> JSONResponse:
    """201 with the Batch, or 200 VALIDATED for ``dry_run=true``; 413 past the size limit."""
    form = await read_multipart(request, state.limits.max_batch_bytes)
    data = form.parts.get(FILE_FIELD)
    if data is None:
        raise InvalidRequestError(f"{FILE_FIELD}: the batch file is required")
    if _flag(form.text("dry_run")):
        estimator = await get_estimator(request)
        answer = await dry_run_batch(
            state.store, org, data, state.limits, estimator, webhook_url=form.text("webhook_url")
        )
        return JSONResponse(answer, status_code=200)
    record = await create_batch(state.store, org, data, form.text("webhook_url"), state.limits, utc_now())
    notifier_of(request.app).work_created()  # its lines are claimed now, not at the scheduler's next poll
    return JSONResponse(_view(state, record), status_code=201)


@router.get(
    "/v2/batch/{batch_id}", summary="Get a batch", response_model=None, responses=documented(200, BatchOut)
)
async def get(state: State, org: CurrentOrg, batch_id: str) -> JSONResponse:
    """The caller's batch with its metrics (404 for anyone else's)."""
    # A JSONResponse as is: the view is plain JSON already, so FastAPI's encoder pass would only cost.
    return JSONResponse(_view(state, await get_batch(state.store, org, batch_id)))


@router.get(
    "/v2/batch",
    summary="List batches, newest first",
    response_model=None,
    responses={
        200: {"model": list[BatchOut], "description": "A page of batches", "headers": NEXT_CURSOR_DOC}
    },
)
async def list_batches(
    state: State,
    org: CurrentOrg,
    status: Annotated[list[str], Query(default_factory=list)],
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: str | None = None,
) -> JSONResponse:
    """A page of the caller's batches; the next page's cursor is in the ``x-next-cursor`` header."""
    page = await state.store.batches.list_for_organization(
        org.id,
        statuses=split_values(status),
        created_after=_utc(created_after),
        created_before=_utc(created_before),
        limit=limit,
        cursor=cursor,
    )
    response = JSONResponse([_view(state, record) for record in page.items])
    if page.next_cursor:
        response.headers[NEXT_CURSOR_HEADER] = page.next_cursor
    return response


@router.post(
    "/v2/batch/{batch_id}/cancel",
    summary="Cancel a batch",
    response_model=None,
    responses=documented(200, BatchOut),
)
async def cancel(state: State, org: CurrentOrg, batch_id: str, request: Request) -> dict[str, Any]:
    """Cancel the caller's running batch; pending lines end CANCELED."""
    now = utc_now()
    record = await cancel_batch(state.store, org, batch_id, now, announcer(state.signer, now))
    notifier = notifier_of(request.app)
    notifier.batch_changed()  # finalised at once if nothing of it is running
    notifier.deliveries_stored()  # the closed lines' webhooks
    return _view(state, record)
