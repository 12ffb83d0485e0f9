"""(ext) ``GET /v2/batch/{id}/events``: live metrics as Server-Sent Events, end event, isolation, disconnect.

httpx's ASGI transport hands a body over only once the app has finished it, so the live tests drive the
app through ``LiveStream``: a bare ASGI call whose body chunks are read as the app sends them.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.integration.api.conftest import BOOTSTRAP_KEY, Api
from tests.integration.api.test_batch import batch_file, post_batch, wait_terminal

pytestmark = pytest.mark.asyncio

WAIT = 20.0  # seconds before a test gives up on an event that should come (a hang, not a timing check)


@dataclass(frozen=True)
class Event:
    """One parsed Server-Sent Event."""

    event: str
    id: int
    data: dict[str, Any]


def parse_events(text: str) -> tuple[list[Event], int]:
    """The events of a stream's text, and how many keep-alive comments it held."""
    events, comments = [], 0
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line.startswith(":"):
                comments += 1
                continue
            name, _, value = line.partition(": ")
            fields[name] = value
        if "event" in fields:
            events.append(Event(fields["event"], int(fields["id"]), json.loads(fields["data"])))
    return events, comments


class LiveStream:
    """``GET path`` run on the ASGI app directly; events are read as the app sends them."""

    def __init__(self, app: FastAPI, path: str, key: str = BOOTSTRAP_KEY) -> None:
        self._app, self._path, self._key = app, path, key
        self._chunks: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._disconnect = asyncio.Event()
        self._started = asyncio.Event()
        self._requested = False
        self._buffer = ""
        self.status = 0
        self.headers: dict[str, str] = {}
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LiveStream:
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self._started.wait(), WAIT)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.disconnect()

    async def _run(self) -> None:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": self._path,
            "raw_path": self._path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [(b"host", b"test"), (b"x-api-key", self._key.encode())],
            "client": ("127.0.0.1", 50000),
            "server": ("test", 80),
        }
        try:
            await self._app(scope, self._receive, self._send)
        finally:
            self._started.set()
            await self._chunks.put(None)

    async def _receive(self) -> dict[str, Any]:
        if not self._requested:
            self._requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await self._disconnect.wait()
        return {"type": "http.disconnect"}

    async def _send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = {k.decode().lower(): v.decode() for k, v in message.get("headers", [])}
            self._started.set()
        elif message["type"] == "http.response.body" and message.get("body"):
            await self._chunks.put(message["body"])

    async def next_event(self) -> Event | None:
        """The next event (keep-alive comments skipped); None once the stream has ended."""
        while "\n\n" not in self._buffer:
            chunk = await asyncio.wait_for(self._chunks.get(), WAIT)
            if chunk is None:
                return None
            self._buffer += chunk.decode()
        block, self._buffer = self._buffer.split("\n\n", 1)
        events, _ = parse_events(block + "\n\n")
        return events[0] if events else await self.next_event()

    async def until(self, wanted: str, check: Any = None) -> Event:
        """Read events until one named ``wanted`` (and passing ``check``) comes."""
        while True:
            event = await self.next_event()
            assert event is not None, f"the stream ended before a {wanted} event"
            if event.event == wanted and (check is None or check(event.data)):
                return event

    async def disconnect(self) -> None:
        """The client goes away; the app's call must finish."""
        self._disconnect.set()
        if self._task is not None:
            await asyncio.wait_for(self._task, WAIT)

    @property
    def finished(self) -> bool:
        return self._task is not None and self._task.done()


async def test_events_arrive_as_lines_finish_and_end_closes_the_stream(api: Api) -> None:
    data = batch_file("https://m.example.com/a.wav", "https://m.example.com/gate.wav")
    batch_id = (await post_batch(api.client, data)).json()["id"]
    async with LiveStream(api.app, f"/v2/batch/{batch_id}/events") as stream:
        assert stream.status == 200 and stream.headers["content-type"].startswith("text/event-stream")
        first = await stream.next_event()
        assert first is not None and first.event == "metrics" and first.data["id"] == batch_id
        # The first line finished while the second waits at the gate: its event comes before the gate opens.
        halfway = await stream.until(
            "metrics", lambda b: b["metrics"]["success_count"] == 1 and b["metrics"]["processing_count"] == 1
        )
        assert halfway.data["status"] == "PROCESSING" and halfway.data["outputUrl"] == ""
        api.engine.gate.set()
        last_metrics = await stream.until("metrics", lambda b: b["status"] == "COMPLETED")
        end = await stream.next_event()
        assert end is not None and end.event == "end"
        assert end.data["metrics"]["success_count"] == 2 and "/v2/files/results/" in end.data["outputUrl"]
        assert end.id == last_metrics.id >= halfway.id >= first.id
        assert await stream.next_event() is None  # closed after end
    record = await api.state.store.batches.get(batch_id)
    assert record is not None and end.id == record.batch.version


async def test_a_final_batch_gets_metrics_and_end_at_once(api: Api) -> None:
    batch_id = (await post_batch(api.client, batch_file("https://m.example.com/reject.wav"))).json()["id"]
    final = await wait_terminal(api.client, batch_id)
    response = await api.client.get(f"/v2/batch/{batch_id}/events")
    assert response.status_code == 200
    events, _ = parse_events(response.text)
    assert [event.event for event in events] == ["metrics", "end"]
    for event in events:
        assert {**event.data, "outputUrl": None} == {**final, "outputUrl": None}
        assert httpx.URL(event.data["outputUrl"]).path == httpx.URL(final["outputUrl"]).path
    assert final["status"] == "FAILED"


async def test_another_organizations_batch_is_not_found(api: Api) -> None:
    batch_id = (await post_batch(api.client, batch_file("https://m.example.com/a.wav"))).json()["id"]
    other = await api.key_for("growth")
    response = await api.client.get(f"/v2/batch/{batch_id}/events", headers={"x-api-key": other})
    assert response.status_code == 404 and response.json()["statusCode"] == 404
    missing = await api.client.get("/v2/batch/00000000-0000-0000-0000-000000000000/events")
    assert missing.status_code == 404
    unauthenticated = await api.client.get(f"/v2/batch/{batch_id}/events", headers={"x-api-key": ""})
    assert unauthenticated.status_code == 401


async def test_a_client_that_goes_away_ends_the_stream(api: Api) -> None:
    batch_id = (await post_batch(api.client, batch_file("https://m.example.com/gate.wav"))).json()["id"]
    stream = LiveStream(api.app, f"/v2/batch/{batch_id}/events")
    async with stream:
        await stream.until("metrics", lambda b: b["metrics"]["processing_count"] == 1)
        assert not stream.finished
    assert stream.finished  # the app's call returned although the batch still runs
    assert api.app.state.batch_notifier._watchers == {}
    record = await api.state.store.batches.get(batch_id)
    assert record is not None and record.batch.status == "PROCESSING"


async def test_a_cancel_is_streamed_and_end_waits_for_the_results_file(api: Api) -> None:
    data = batch_file("https://m.example.com/gate.wav", "https://m.example.com/b.wav")
    batch_id = (await post_batch(api.client, data)).json()["id"]
    async with LiveStream(api.app, f"/v2/batch/{batch_id}/events") as stream:
        await stream.until("metrics", lambda b: b["metrics"]["processing_count"] == 1)
        assert (await api.client.post(f"/v2/batch/{batch_id}/cancel")).status_code == 200
        canceled = await stream.until("metrics", lambda b: b["status"] == "CANCELED")
        assert canceled.data["metrics"]["canceled_count"] == 1
        api.engine.gate.set()  # the running line finishes; then the results file is written
        end = await stream.until("end")
        assert end.data["status"] == "CANCELED" and end.data["outputUrl"]
        assert end.data["metrics"]["success_count"] == 1
