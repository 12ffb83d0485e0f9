"""Logs of a whole request flow (organization, key, generation, batch, webhooks): ids present, no secret.

Everything is logged at DEBUG into a buffer through ``configure_logging``, as ``serve`` sets it up.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import httpx
import pytest

from lipsync_api.observability.logs import configure_logging, remove_handler
from tests.integration.api.conftest import BOOTSTRAP_KEY, Api, generate_body
from tests.integration.api.test_batch import batch_file, path_of, post_batch
from tests.integration.api.test_metrics import Receiver, receiver, staged

__all__ = ["receiver", "staged"]

pytestmark = pytest.mark.asyncio


@pytest.fixture
def log_buffer() -> Iterator[io.StringIO]:
    """Every log line of the test, as JSON, in a buffer (the root logger is restored after)."""
    root = logging.getLogger()
    level, out = root.level, io.StringIO()
    handler = configure_logging("DEBUG", "json", stream=out)
    try:
        yield out
    finally:
        remove_handler(handler)
        root.setLevel(level)


async def until(check: Callable[[], Coroutine[Any, Any, bool]], what: str) -> None:
    for _ in range(400):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


async def test_a_request_flow_logs_no_secret(
    staged: Api, receiver: Receiver, log_buffer: io.StringIO
) -> None:
    store = staged.state.store
    org = await store.organizations.create("logged-org", "growth")
    key = str((await store.organizations.create_api_key(org.id, "test")).key)
    as_org = {"x-api-key": key}
    client = staged.client
    body = generate_body(webhookUrl=receiver.url("/gen"))
    generation = (await client.post("/v2/generate", json=body, headers=as_org)).json()
    data = batch_file("https://m.example.com/a.wav", "https://m.example.com/crash.wav")
    batch = (await post_batch(client, data, headers=as_org, webhook_url=receiver.url("/batch"))).json()
    final: dict[str, Any] = {}

    async def batch_ended() -> bool:
        final.update((await client.get(f"/v2/batch/{batch['id']}", headers=as_org)).json())
        return final["status"] in ("COMPLETED", "FAILED")

    await until(batch_ended, "the batch ends")
    results = await client.get(path_of(final["outputUrl"]), headers={"x-api-key": ""})
    assert results.status_code == 200
    tampered = await client.get(path_of(final["outputUrl"])[:-4] + "beef", headers={"x-api-key": ""})
    assert tampered.status_code == 403
    assert (
        await client.get("/v2/models", headers={"x-api-key": "lsk_not_a_real_key_0123456789"})
    ).status_code == 401

    async def both_webhooks_arrived() -> bool:
        return len(receiver.requests) >= 2

    await until(both_webhooks_arrived, "the generation's and the batch's webhooks")
    signed_path = path_of(final["outputUrl"])  # what an access log would print
    logging.getLogger("uvicorn.access").info('%s - "GET %s HTTP/1.1" 200', "127.0.0.1:1", signed_path)
    logging.getLogger("lipsync_api.test").warning("config %s %s", {"x-api-key": key}, org.webhook_secret)

    text = log_buffer.getvalue()
    events = [json.loads(line) for line in text.splitlines()]
    assert events and all({"timestamp", "level", "logger", "message"} <= event.keys() for event in events)
    signatures = [httpx.URL(final["outputUrl"]).params["signature"]]
    signatures += [r.headers["Sync-Signature"].split("v1=")[1] for r in receiver.requests]
    secrets = [key, org.webhook_secret, BOOTSTRAP_KEY, staged.state.signer.secret, *signatures]
    for secret in secrets:
        assert secret not in text
    assert not re.search(r"signature=(?!\[REDACTED\])", text)
    crashed = [e for e in events if e["message"].startswith("generation") and "crashed" in e["message"]]
    assert crashed and crashed[0]["batch_id"] == batch["id"] and "generation_id" in crashed[0]
    assert generation["id"]


async def test_every_answer_carries_a_request_id_and_a_crash_logs_it(
    api: Api, log_buffer: io.StringIO
) -> None:
    async def boom() -> None:
        raise RuntimeError("handler bug")

    api.app.add_api_route("/boom", boom)
    sent = await api.client.get("/v2/models", headers={"X-Request-Id": "client-id-42"})
    assert sent.headers["x-request-id"] == "client-id-42"
    made = await api.client.get("/v2/models", headers={"X-Request-Id": "bad id with spaces"})
    assert re.fullmatch(r"[0-9a-f]{32}", made.headers["x-request-id"])
    transport = httpx.ASGITransport(app=api.app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as raw:
        crash = await raw.get("/boom", headers={"X-Request-Id": "crash-7"})
    assert crash.status_code == 500 and crash.headers["x-request-id"] == "crash-7"
    assert crash.json()["statusCode"] == 500
    events = [json.loads(line) for line in log_buffer.getvalue().splitlines()]
    logged = [e for e in events if e["level"] == "ERROR" and "unhandled error" in e["message"]]
    assert logged and logged[0]["request_id"] == "crash-7" and "handler bug" in logged[0]["exception"]
