"""The batch event stream's text: keep-alives while nothing changes, events on change, stop on exit."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from lipsync_api.api.routers.events import KEEPALIVE, batch_events, is_final, sse_event
from lipsync_api.notifier import BatchNotifier
from lipsync_api.store.batches import BatchMetrics, BatchRecord
from lipsync_api.store.models import Batch


def record(
    status: str = "PROCESSING", success: int = 0, version: int = 1, results: str | None = None
) -> BatchRecord:
    batch = Batch(id="b1", status=status, version=version, results_key=results)
    metrics = BatchMetrics(2, success, 0, 0, 2 - success, 0)
    return BatchRecord(batch, metrics)


def view(rec: BatchRecord) -> dict[str, Any]:
    return {"status": rec.batch.status, "success": rec.metrics.success_count}


def test_an_event_is_one_compact_json_line() -> None:
    assert sse_event("metrics", 7, {"a": [1, 2]}) == 'id: 7\nevent: metrics\ndata: {"a":[1,2]}\n\n'


def test_a_canceled_batch_is_final_only_with_its_results_file() -> None:
    assert not is_final(record("CANCELED"))
    assert is_final(record("CANCELED", results="results/x.jsonl"))
    assert is_final(record("COMPLETED", results="results/x.jsonl"))
    assert not is_final(record("PROCESSING"))


@pytest.mark.asyncio
async def test_keep_alive_while_nothing_changes_then_events_on_change() -> None:
    states = [record(), record(), record(), record(success=1, version=2), record("COMPLETED", 2, 3, "r")]

    async def fetch() -> BatchRecord:
        return states.pop(0) if len(states) > 1 else states[0]

    changed = asyncio.Event()
    chunks = [
        chunk
        async for chunk in batch_events(
            record(), fetch, view, changed, poll_seconds=0.01, keepalive_seconds=0.0
        )
    ]
    names = [chunk.split("\n")[1] if chunk.startswith("id:") else chunk for chunk in chunks]
    assert names[0] == "event: metrics"
    assert KEEPALIVE in names[1:4]
    assert names[-2:] == ["event: metrics", "event: end"]
    assert chunks[-1].startswith("id: 3\n")
    assert sum(name == "event: metrics" for name in names) == 3  # connect, success 1, COMPLETED


@pytest.mark.asyncio
async def test_the_stream_stops_when_the_server_exits_or_the_batch_is_gone() -> None:
    exiting = False

    async def fetch() -> BatchRecord:
        nonlocal exiting
        exiting = True
        return record()

    stream = batch_events(record(), fetch, view, asyncio.Event(), exiting=lambda: exiting, poll_seconds=0.01)
    chunks = [chunk async for chunk in stream]  # ends after the read that saw the server exiting
    assert len(chunks) == 1 and chunks[0].startswith("id: 1\nevent: metrics")

    async def gone() -> None:
        return None

    ended = [c async for c in batch_events(record(), gone, view, asyncio.Event(), poll_seconds=0.01)]
    assert len(ended) == 1


@pytest.mark.asyncio
async def test_a_poke_wakes_the_stream_before_the_poll() -> None:
    notifier = BatchNotifier()
    reads = 0

    async def fetch() -> BatchRecord:
        nonlocal reads
        reads += 1
        return record("COMPLETED", 2, 2, "r")

    with notifier.watch("b1") as changed:
        stream = batch_events(record(), fetch, view, changed, poll_seconds=3600)
        first = await anext(stream)
        assert first.startswith("id: 1\nevent: metrics")
        waiting = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0)
        notifier.poke("other")
        await asyncio.sleep(0.01)
        assert not waiting.done() and reads == 0
        notifier.poke("b1")
        assert (await asyncio.wait_for(waiting, 10)).startswith("id: 2\nevent: metrics")
        assert reads == 1
    assert notifier._watchers == {}
