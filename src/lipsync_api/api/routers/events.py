"""(ext) ``GET /v2/batch/{id}/events``: a batch's metrics live, as Server-Sent Events.

On connect: ``event: metrics`` with the Batch object (as ``GET /v2/batch/{id}`` answers it); then one
``metrics`` event each time its status or metrics change; once the batch is final (for a CANCELED batch:
once its results file is written, so ``outputUrl`` is set), ``event: end`` with the final Batch object,
and the stream closes. Each event's ``id`` is the batch's ``version``. ``: keep-alive`` comments flow
while nothing changes. Changes are noticed from the scheduler's pokes (``BatchNotifier``) at once, and
by reading the batch row every ``POLL_SECONDS`` in any case (another process may be the writer).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import StreamingResponse

from lipsync_api.api.deps import CurrentOrg, State
from lipsync_api.api.responses import ERROR_RESPONSES
from lipsync_api.api.views import TERMINAL_BATCH, batch_view
from lipsync_api.domain.services import get_batch
from lipsync_api.notifier import BatchNotifier
from lipsync_api.store.batches import BatchRecord
from lipsync_api.store.models import BatchStatus

router = APIRouter(tags=["batch"], responses=ERROR_RESPONSES)

POLL_SECONDS = 0.5
KEEPALIVE_SECONDS = 15.0
KEEPALIVE = ": keep-alive\n\n"
EVENT_STREAM_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Server-Sent Events: `metrics` (the Batch object) on connect and on every change, "
        "then `end` (the final Batch object) when the batch is final.",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
}

Fetch = Callable[[], Awaitable[BatchRecord | None]]
View = Callable[[BatchRecord], dict[str, Any]]


def notifier_of(app: FastAPI) -> BatchNotifier:
    """The app's batch notifier (``create_app`` makes one; the scheduler pokes it)."""
    notifier: BatchNotifier = app.state.batch_notifier
    return notifier


def on_server_exit(app: FastAPI, exiting: Callable[[], bool]) -> None:
    """Tell the streams how to see that the server is stopping.

    uvicorn waits for open connections before it runs the lifespan's shutdown, so a stream that only
    ended with the lifespan would hold the shutdown forever; ``serve`` passes uvicorn's exit flag here.
    """
    app.state.server_exiting = exiting


def _server_exiting(app: FastAPI) -> Callable[[], bool]:
    exiting: Callable[[], bool] | None = getattr(app.state, "server_exiting", None)
    return exiting or (lambda: False)


def sse_event(event: str, event_id: int, data: dict[str, Any]) -> str:
    """One Server-Sent Event; the data is compact JSON on one line."""
    return f"id: {event_id}\nevent: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def is_final(record: BatchRecord) -> bool:
    """Final for a watcher: a final status, and for a CANCELED batch also its results file written."""
    batch = record.batch
    if batch.status not in TERMINAL_BATCH:
        return False
    return batch.results_key is not None or batch.status != BatchStatus.CANCELED


def _fingerprint(record: BatchRecord) -> tuple[object, ...]:
    # The version does not move when a line starts running; the metrics do.
    return (record.batch.status, record.metrics, record.batch.results_key is not None)


async def batch_events(
    first: BatchRecord,
    fetch: Fetch,
    view: View,
    changed: asyncio.Event,
    *,
    exiting: Callable[[], bool] = lambda: False,
    poll_seconds: float = POLL_SECONDS,
    keepalive_seconds: float = KEEPALIVE_SECONDS,
) -> AsyncIterator[str]:
    """The stream's text: metrics on connect and on change, end when final; stops when ``exiting()``."""
    record: BatchRecord | None = first
    sent: tuple[object, ...] | None = None
    last_write = time.monotonic()
    while record is not None:
        if (key := _fingerprint(record)) != sent:
            yield sse_event("metrics", record.batch.version, view(record))
            sent, last_write = key, time.monotonic()
        if is_final(record):
            yield sse_event("end", record.batch.version, view(record))
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), poll_seconds)
        if exiting():
            return
        if time.monotonic() - last_write >= keepalive_seconds:
            yield KEEPALIVE
            last_write = time.monotonic()
        changed.clear()  # before the read: a poke during it wakes the next wait at once
        record = await fetch()


@router.get(
    "/v2/batch/{batch_id}/events",
    summary="(ext) Follow a batch live (Server-Sent Events)",
    response_class=StreamingResponse,
    responses=EVENT_STREAM_DOC,
)
async def events(state: State, org: CurrentOrg, batch_id: str, request: Request) -> StreamingResponse:
    """The caller's batch as a stream of ``metrics`` events, closed by ``end`` (404 for anyone else's)."""
    first = await get_batch(state.store, org, batch_id)

    async def fetch() -> BatchRecord | None:
        return await state.store.batches.get_for_organization(org.id, batch_id)

    def view(record: BatchRecord) -> dict[str, Any]:
        return batch_view(record, state.signer(record.batch.results_key))

    async def stream() -> AsyncIterator[str]:
        with notifier_of(request.app).watch(batch_id) as changed:
            exiting = _server_exiting(request.app)
            async for chunk in batch_events(first, fetch, view, changed, exiting=exiting):
                yield chunk

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)
