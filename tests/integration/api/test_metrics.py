"""``/metrics``: scraped after real work, every number checked against what happened; no ids or keys leak.

The app runs with a local webhook receiver (private addresses allowed, two attempts per webhook) and a
fake engine that reports seconds per stage and can hold a generation, so a test can force lease expiries
through the store while the worker is busy.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families

from lipsync_api.executors import EngineResult
from lipsync_api.store.types import utc_now
from tests.integration.api.conftest import BOOTSTRAP_KEY, Api, api_settings, generate_body, running_api
from tests.integration.api.test_batch import batch_file, post_batch
from tests.integration.delivery.conftest import Receiver, receiver
from tests.integration.scheduler.fakes import FakeEngine

__all__ = ["receiver"]

pytestmark = pytest.mark.asyncio

STAGES = {"fetch": 0.2, "render": 1.5}
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_TEMPLATES = (
    (re.compile(rf"^/v2/batch/{_UUID}$"), "/v2/batch/{batch_id}"),
    (re.compile(rf"^/v2/generate/{_UUID}$"), "/v2/generate/{generation_id}"),
)
KNOWN_ROUTES = {"/v2/batch", "/v2/generate", "/metrics"}


class StagedEngine(FakeEngine):
    """The fake engine reporting seconds per stage like the real one; ``hold`` lines wait for ``release``."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def run(self, generation_id: str, request_json: dict[str, Any], work_dir: Path) -> EngineResult:
        if "hold" in str(request_json["input"][1]["url"]):
            self.release.wait(timeout=60)
        return replace(super().run(generation_id, request_json, work_dir), stage_seconds=dict(STAGES))


def template_of(path: str) -> str:
    """What the middleware should call a path: its route template, or ``unmatched``."""
    for pattern, template in _TEMPLATES:
        if pattern.match(path):
            return template
    return path if path in KNOWN_ROUTES else "unmatched"


@pytest_asyncio.fixture
async def staged(tmp_path: Path, database_url: str, receiver: Receiver) -> AsyncIterator[Api]:
    """The app with its loops running, a StagedEngine, and webhooks allowed to the local receiver."""
    settings = api_settings(
        tmp_path,
        database_url,
        webhook_allow_private_addresses=True,
        webhook_max_attempts=2,
        webhook_retry_base_seconds=0.01,
        max_attempts=2,
    )
    async with running_api(settings, StagedEngine()) as running:
        yield running


async def scrape(client: httpx.AsyncClient) -> tuple[str, Samples]:
    """``/metrics`` without an API key: its text and every sample by (name, labels)."""
    response = await client.get("/metrics", headers={"x-api-key": ""})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    samples = {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }
    return response.text, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    for _ in range(400):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


async def metric_reaches(client: httpx.AsyncClient, name: str, wanted: float, **labels: str) -> None:
    async def check() -> bool:
        return value((await scrape(client))[1], name, **labels) >= wanted

    await eventually(check, f"{name}{labels} >= {wanted}")


async def generation_status(client: httpx.AsyncClient, generation_id: str) -> str:
    status: str = (await client.get(f"/v2/generate/{generation_id}")).json()["status"]
    return status


async def test_metrics_count_what_happened(staged: Api, receiver: Receiver) -> None:
    client, answered = staged.client, Counter[tuple[str, str, str]]()

    async def count(response: httpx.Response) -> None:
        request = response.request
        answered[(request.method, template_of(request.url.path), str(response.status_code))] += 1

    client.event_hooks["response"].append(count)
    receiver.answer(500, 500)  # the first webhook (the held generation's): retried once, then given up

    # A generation holds the only worker; a second waits in the queue.
    body = generate_body(audio="https://m.example.com/hold.wav", webhookUrl=receiver.url("/gen"))
    held = (await client.post("/v2/generate", json=body)).json()["id"]
    await eventually(lambda: _is(client, held, "PROCESSING"), "the held generation runs")
    queued = (await client.post("/v2/generate", json=generate_body())).json()["id"]
    _, samples = await scrape(client)
    assert value(samples, "lipsync_queue_depth") == 1
    assert value(samples, "lipsync_queue_oldest_wait_seconds") >= 0
    assert value(samples, "lipsync_generations", status="PENDING") == 1
    assert value(samples, "lipsync_generations", status="PROCESSING") == 1

    # A claimer that died: its lease expires once (requeued), then again on the last attempt (failed).
    leases, past = staged.state.store.leases, utc_now() - timedelta(minutes=10)
    assert (await leases.claim_next("ghost", 60, now=past)) is not None
    await metric_reaches(client, "lipsync_lease_expiries_total", 1, outcome="requeued")
    assert (await leases.claim_next("ghost", 60, now=past)) is not None
    await metric_reaches(client, "lipsync_lease_expiries_total", 1, outcome="failed")
    assert await generation_status(client, queued) == "FAILED"

    staged.engine.release.set()
    await eventually(lambda: _is(client, held, "COMPLETED"), "the held generation completes")
    await metric_reaches(client, "lipsync_webhook_deliveries_total", 1, outcome="failed")

    data = batch_file("https://m.example.com/a.wav", "https://m.example.com/reject.wav")
    created = await post_batch(client, data, webhook_url=receiver.url("/batch"))
    batch_id = created.json()["id"]
    await eventually(lambda: _batch_is(client, batch_id, "COMPLETED"), "the batch completes")
    await metric_reaches(client, "lipsync_webhook_deliveries_total", 1, outcome="delivered")
    missing = await client.get("/no/such/path")
    assert missing.status_code == 404

    text, samples = await scrape(client)
    for (method, route, status), times in answered.items():
        if route != "/metrics":
            assert (
                value(samples, "lipsync_http_requests_total", method=method, route=route, status=status)
                == times
            )
    assert answered[("POST", "/v2/generate", "201")] == 2 and answered[("GET", "unmatched", "404")] == 1
    assert (
        value(samples, "lipsync_http_request_duration_seconds_count", method="POST", route="/v2/batch") == 1
    )
    by_status = {"COMPLETED": 2, "FAILED": 1, "REJECTED": 1, "PENDING": 0, "PROCESSING": 0, "CANCELED": 0}
    for status, expected in by_status.items():
        assert value(samples, "lipsync_generations", status=status) == expected, status
    assert value(samples, "lipsync_queue_depth") == 0 and value(samples, "lipsync_batches_running") == 0
    assert value(samples, "lipsync_webhook_deliveries_total", outcome="retried") == 1
    assert value(samples, "lipsync_webhook_deliveries_total", outcome="failed") == 1
    assert value(samples, "lipsync_webhook_deliveries_total", outcome="delivered") == 1
    assert value(samples, "lipsync_lease_expiries_total", outcome="requeued") == 1
    assert value(samples, "lipsync_lease_expiries_total", outcome="failed") == 1
    for stage, seconds in STAGES.items():  # two generations succeeded: the held one and the batch's a.wav
        assert value(samples, "lipsync_engine_stage_duration_seconds_count", stage=stage) == 2
        assert value(samples, "lipsync_engine_stage_duration_seconds_sum", stage=stage) == pytest.approx(
            2 * seconds
        )
    org = await staged.state.store.organizations.find_by_key(BOOTSTRAP_KEY)
    assert org is not None
    for secret in (batch_id, held, queued, org.id, BOOTSTRAP_KEY, org.webhook_secret, "127.0.0.1", "example"):
        assert secret not in text


async def test_a_running_batch_is_counted(staged: Api) -> None:
    data = batch_file("https://m.example.com/hold.wav", "https://m.example.com/b.wav")
    batch_id = (await post_batch(staged.client, data)).json()["id"]
    await eventually(lambda: _batch_is(staged.client, batch_id, "PROCESSING"), "the batch runs")
    _, samples = await scrape(staged.client)
    assert value(samples, "lipsync_batches_running") == 1
    assert value(samples, "lipsync_generations", status="PROCESSING") == 1
    assert value(samples, "lipsync_queue_depth") == 1


async def test_each_app_has_its_own_registry(api: Api, staged: Api) -> None:
    await api.client.get("/v2/models")
    _, first = await scrape(api.client)
    _, second = await scrape(staged.client)
    models = {"method": "GET", "route": "/v2/models", "status": "200"}
    assert value(first, "lipsync_http_requests_total", **models) == 1
    assert value(second, "lipsync_http_requests_total", **models) == 0


async def _is(client: httpx.AsyncClient, generation_id: str, status: str) -> bool:
    return await generation_status(client, generation_id) == status


async def _batch_is(client: httpx.AsyncClient, batch_id: str, status: str) -> bool:
    return bool((await client.get(f"/v2/batch/{batch_id}")).json()["status"] == status)
