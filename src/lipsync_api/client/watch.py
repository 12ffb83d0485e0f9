"""Follow a batch until it ends: its event stream (``GET /v2/batch/{id}/events``), else polling.

The stream sends ``event: metrics`` with the Batch object on each change and ``event: end`` with the
final one; comment lines keep it alive. A server without the endpoint (404/405), any other refusal, or a
stream that breaks or ends early hands over to polling ``GET /v2/batch/{id}`` every ``poll_seconds``,
which also reports the real error when there is one (an unknown batch, a revoked key).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx

from lipsync_api.client.http import ApiClient, ServerUnreachable, path_part
from lipsync_api.client.sse import iter_events

TERMINAL_BATCH = frozenset({"COMPLETED", "FAILED", "CANCELED", "CANCELLED"})
UPDATE_EVENTS = frozenset({"metrics", "end"})
# Heartbeats arrive far more often than this; a silent stream is treated as broken.
STREAM_READ_TIMEOUT = 60.0
# Polling tolerates a server restart of about this many polls before giving up.
MAX_POLL_FAILURES = 15

Batch = dict[str, Any]
OnUpdate = Callable[[Batch], None]


def is_terminal(batch: Batch) -> bool:
    """Whether the Batch object is final: a final status and its results file (a CANCELED batch gets its
    status at once, its results file only when the lines that were running have finished)."""
    status = str(batch.get("status", "")).upper()
    return status in TERMINAL_BATCH and (
        status not in ("CANCELED", "CANCELLED") or bool(batch.get("outputUrl"))
    )


def watch_batch(
    client: ApiClient,
    batch_id: str,
    on_update: OnUpdate,
    *,
    poll_seconds: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Batch:
    """Call ``on_update`` with each new state of the batch; return its final state."""
    last = follow_stream(client, batch_id, on_update)
    if last is not None and is_terminal(last):
        return last
    return poll_batch(client, batch_id, on_update, poll_seconds=poll_seconds, sleep=sleep)


def follow_stream(client: ApiClient, batch_id: str, on_update: OnUpdate) -> Batch | None:
    """The last state the event stream gave (None when it gave none); stops at ``end`` or when it breaks."""
    last: Batch | None = None
    path = f"/v2/batch/{path_part(batch_id)}/events"
    timeout = httpx.Timeout(STREAM_READ_TIMEOUT, connect=10.0)
    try:
        with client.stream("GET", path, headers={"Accept": "text/event-stream"}, timeout=timeout) as response:
            if response.status_code != 200 or not _is_event_stream(response):
                return None
            for event in iter_events(response.iter_lines()):
                batch = _batch(event.data) if event.event in UPDATE_EVENTS else None
                if batch is None:
                    continue
                last = batch
                on_update(batch)
                if event.event == "end" or is_terminal(batch):
                    return batch
    except (httpx.TransportError, httpx.StreamError):
        pass  # a broken stream: polling takes over
    return last


def poll_batch(
    client: ApiClient,
    batch_id: str,
    on_update: OnUpdate,
    *,
    poll_seconds: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Batch:
    """GET the batch every ``poll_seconds`` until it ends."""
    failures = 0
    while True:
        try:
            batch = client.get_json(f"/v2/batch/{path_part(batch_id)}")
        except ServerUnreachable:
            failures += 1
            if failures >= MAX_POLL_FAILURES:
                raise
            sleep(poll_seconds)
            continue
        failures = 0
        if isinstance(batch, dict):
            on_update(batch)
            if is_terminal(batch):
                return batch
        sleep(poll_seconds)


def _is_event_stream(response: httpx.Response) -> bool:
    content_type = str(response.headers.get("content-type", ""))
    return content_type.split(";")[0].strip().lower() == "text/event-stream"


def _batch(data: str) -> Batch | None:
    try:
        value = json.loads(data)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
