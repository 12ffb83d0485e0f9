"""Which models are served is configuration: ``/v2/models``, refusals of other names, the engine field."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from lipsync_api.config import Settings
from tests.integration.api.conftest import Api, api_settings, generate_body, running_api

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def narrow(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """A server that serves one model name only."""
    settings = api_settings(tmp_path, model_engines={"house-model": "lipsync-api"})
    async with running_api(settings) as running:
        yield running.client


async def test_an_unserved_model_is_refused_with_its_code(api: Api) -> None:
    response = await api.client.post("/v2/generate", json={**generate_body(), "model": "lipsync-9"})
    assert response.status_code == 400
    body = response.json()
    assert body["errorCode"] == "generation_unsupported_model"
    assert "model 'lipsync-9' is not served here" in body["message"][0]


async def test_a_batch_line_with_an_unserved_model_is_named(api: Api) -> None:
    lines = [
        {"request_id": "ok", "endpoint": "/v2/generate", "payload": generate_body()},
        {"request_id": "bad", "endpoint": "/v2/generate", "payload": {**generate_body(), "model": "x"}},
    ]
    data = "\n".join(json.dumps(line) for line in lines).encode()
    response = await api.client.post(
        "/v2/batch", files={"input": ("b.jsonl", data)}, data={"dry_run": "true"}
    )
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert (error["line"], error["request_id"], error["field"]) == (2, "bad", "payload.model")


async def test_the_configured_names_are_listed_served_and_the_rest_refused(narrow: httpx.AsyncClient) -> None:
    models = (await narrow.get("/v2/models")).json()
    assert [model["id"] for model in models] == ["house-model"]
    assert models[0]["description"] == "served by the lipsync-api engine"
    refused = await narrow.post("/v2/generate", json=generate_body())
    assert refused.status_code == 400 and refused.json()["errorCode"] == "generation_unsupported_model"
    accepted = await narrow.post("/v2/generate", json={**generate_body(), "model": "house-model"})
    assert accepted.status_code == 201 and accepted.json()["model"] == "house-model"


async def test_settings_refuse_an_unknown_engine() -> None:
    with pytest.raises(ValueError, match="unknown engine"):
        Settings(model_engines={"lipsync-2": "some-other-engine"})
