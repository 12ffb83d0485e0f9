"""Following a batch (client/watch.py): the event stream, and polling when there is none or it breaks."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from lipsync_api.client import ApiClient, ApiError, ServerUnreachable
from lipsync_api.client.watch import MAX_POLL_FAILURES, is_terminal, watch_batch

SSE = {"content-type": "text/event-stream; charset=utf-8"}


def batch(status: str, done: int = 0, output_url: str = "") -> dict[str, Any]:
    metrics = {"total_generations": 3, "success_count": done, "failed_count": 0, "pending_count": 3 - done}
    return {"id": "b1", "status": status, "metrics": metrics, "outputUrl": output_url}


def sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


class Server:
    """Answers the events endpoint as told, and GET /v2/batch/b1 from a list of states (the last repeats)."""

    def __init__(self, events: Any, polls: list[Any]) -> None:
        self.events, self.polls = events, polls
        self.paths: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        assert request.headers["x-api-key"] == "k"
        if request.url.path.endswith("/events"):
            return self.events() if callable(self.events) else self.events
        state = self.polls.pop(0) if len(self.polls) > 1 else self.polls[0]
        if isinstance(state, Exception):
            raise state
        if isinstance(state, httpx.Response):
            return state
        return httpx.Response(200, json=state)


def follow(server: Server) -> tuple[dict[str, Any], list[dict[str, Any]], list[float]]:
    seen: list[dict[str, Any]] = []
    sleeps: list[float] = []
    client = ApiClient("http://api.test", "k", transport=httpx.MockTransport(server))
    with client:
        final = watch_batch(client, "b1", seen.append, sleep=sleeps.append)
    return final, seen, sleeps


def test_the_stream_gives_every_change_and_the_end_without_polling() -> None:
    body = b": keep-alive\n\n" + sse("metrics", batch("PROCESSING", 1)) + b": hb\n\n"
    body += sse("metrics", batch("PROCESSING", 2)) + sse("end", batch("COMPLETED", 3, "http://r"))
    server = Server(httpx.Response(200, content=body, headers=SSE), [batch("PROCESSING")])
    final, seen, sleeps = follow(server)
    assert final["status"] == "COMPLETED"
    assert [b["metrics"]["success_count"] for b in seen] == [1, 2, 3]
    assert server.paths == ["/v2/batch/b1/events"] and sleeps == []


@pytest.mark.parametrize("status", [404, 405, 500])
def test_without_the_endpoint_it_polls_every_second(status: int) -> None:
    polls = [batch("JOBS_CREATED"), batch("PROCESSING", 1), batch("COMPLETED", 3, "http://r")]
    server = Server(httpx.Response(status, json={"statusCode": status, "message": "no"}), polls)
    final, seen, sleeps = follow(server)
    assert final["status"] == "COMPLETED"
    assert [b["status"] for b in seen] == ["JOBS_CREATED", "PROCESSING", "COMPLETED"]
    assert sleeps == [1.0, 1.0]
    assert server.paths.count("/v2/batch/b1") == 3


def test_a_stream_that_is_not_an_event_stream_means_polling() -> None:
    server = Server(httpx.Response(200, json=batch("PROCESSING")), [batch("FAILED", 0, "http://r")])
    final, _, _ = follow(server)
    assert final["status"] == "FAILED"


def test_a_broken_stream_hands_over_to_polling() -> None:
    def chunks() -> Iterator[bytes]:
        yield sse("metrics", batch("PROCESSING", 1))
        raise httpx.ReadError("connection reset")

    server = Server(lambda: httpx.Response(200, content=chunks(), headers=SSE), [batch("COMPLETED", 3, "u")])
    final, seen, _ = follow(server)
    assert final["status"] == "COMPLETED"
    assert [b["status"] for b in seen] == ["PROCESSING", "COMPLETED"]


def test_a_stream_that_ends_without_end_hands_over_to_polling() -> None:
    body = sse("metrics", batch("PROCESSING", 1))
    server = Server(httpx.Response(200, content=body, headers=SSE), [batch("COMPLETED", 3, "u")])
    final, _, _ = follow(server)
    assert final["status"] == "COMPLETED" and server.paths[-1] == "/v2/batch/b1"


def test_garbage_events_are_skipped() -> None:
    body = b"event: metrics\ndata: {not json\n\nevent: other\ndata: {}\n\n" + sse(
        "end", batch("FAILED", 0, "u")
    )
    server = Server(httpx.Response(200, content=body, headers=SSE), [batch("PROCESSING")])
    final, seen, _ = follow(server)
    assert final["status"] == "FAILED" and len(seen) == 1


def test_a_canceled_batch_is_followed_until_its_results_exist() -> None:
    assert not is_terminal(batch("CANCELED"))
    assert is_terminal(batch("CANCELED", 0, "http://r")) and is_terminal(batch("COMPLETED", 3, "x"))
    polls = [batch("CANCELED"), batch("CANCELED", 1, "http://r")]
    server = Server(httpx.Response(404), polls)
    final, seen, _ = follow(server)
    assert final["outputUrl"] == "http://r" and len(seen) == 2


def test_an_unknown_batch_is_the_servers_404() -> None:
    missing = httpx.Response(404, json={"statusCode": 404, "message": "batch b1 not found"})
    server = Server(missing, [missing])
    with pytest.raises(ApiError) as caught:
        follow(server)
    assert caught.value.status_code == 404 and caught.value.messages == ["batch b1 not found"]


def test_polling_rides_out_a_short_outage_but_not_a_long_one() -> None:
    refused = httpx.ConnectError("[Errno 111] Connection refused")
    server = Server(httpx.Response(404), [refused, refused, batch("COMPLETED", 3, "u")])
    final, _, _ = follow(server)
    assert final["status"] == "COMPLETED"
    server = Server(httpx.Response(404), [refused] * (MAX_POLL_FAILURES + 1))
    with pytest.raises(ServerUnreachable, match=re.escape("http://api.test: connection refused")):
        follow(server)
