"""``/v2/generate`` and ``/v2/generations``: create, get, list, idempotency, validation, plan caps."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests.integration.api.conftest import Api, generate_body

pytestmark = pytest.mark.asyncio


async def wait_for_status(client: httpx.AsyncClient, generation_id: str, wanted: str) -> dict[str, Any]:
    """Poll a generation until it reaches ``wanted`` (the fake engine is fast)."""
    for _ in range(200):
        body: dict[str, Any] = (await client.get(f"/v2/generate/{generation_id}")).json()
        if body["status"] == wanted:
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"generation {generation_id} never reached {wanted}")


async def test_create_get_and_complete(api: Api) -> None:
    created = await api.client.post("/v2/generate", json=generate_body(outputFileName="clip_01"))
    assert created.status_code == 201
    body = created.json()
    assert body["status"] in ("PENDING", "PROCESSING") and body["model"] == "lipsync-2"
    assert "error_code" in body and "createdAt" in body
    done = await wait_for_status(api.client, body["id"], "COMPLETED")
    assert done["engine"] == "fake-engine" and done["outputUrl"].startswith("http://127.0.0.1:8000/v2/files/")
    download = await api.client.get(httpx.URL(done["outputUrl"]).raw_path.decode(), headers={})
    assert download.status_code == 200 and download.content.startswith(b"fake mp4")


async def test_list_filters_by_status_and_ids(api: Api) -> None:
    ids = [(await api.client.post("/v2/generate", json=generate_body())).json()["id"] for _ in range(3)]
    for generation_id in ids:
        await wait_for_status(api.client, generation_id, "COMPLETED")
    listed = (await api.client.get("/v2/generations")).json()
    assert [g["id"] for g in listed] == ids[::-1]
    by_comma = await api.client.get("/v2/generations", params={"ids": f"{ids[0]},{ids[2]}"})
    assert {g["id"] for g in by_comma.json()} == {ids[0], ids[2]}
    repeated = await api.client.get("/v2/generations", params=[("ids", ids[1]), ("status", "COMPLETED")])
    assert [g["id"] for g in repeated.json()] == [ids[1]]
    assert (await api.client.get("/v2/generations", params={"status": "FAILED"})).json() == []


async def test_other_organizations_generation_is_404(api: Api) -> None:
    generation_id = (await api.client.post("/v2/generate", json=generate_body())).json()["id"]
    other = {"x-api-key": await api.key_for("enterprise")}
    response = await api.client.get(f"/v2/generate/{generation_id}", headers=other)
    assert response.status_code == 404 and response.json()["statusCode"] == 404


async def test_idempotency_key(api: Api) -> None:
    headers = {"Idempotency-Key": "order-42"}
    first = await api.client.post("/v2/generate", json=generate_body(), headers=headers)
    again = await api.client.post("/v2/generate", json=generate_body(), headers=headers)
    assert first.status_code == 201 and again.json()["id"] == first.json()["id"]
    reused = await api.client.post("/v2/generate", json=generate_body(outputFileName="x"), headers=headers)
    assert reused.status_code == 409 and reused.json()["errorCode"] == "IDEMPOTENCY_KEY_REUSED"
    bad = await api.client.post("/v2/generate", json=generate_body(), headers={"Idempotency-Key": "a b"})
    assert bad.status_code == 400 and bad.json()["errorCode"] == "INVALID_IDEMPOTENCY_KEY"


async def test_free_plan_cap_is_429(api: Api) -> None:
    free = {"x-api-key": await api.key_for("free")}
    gated = generate_body(audio="https://media.example.com/gate.wav")
    assert (await api.client.post("/v2/generate", json=gated, headers=free)).status_code == 201
    over = await api.client.post("/v2/generate", json=generate_body(), headers=free)
    assert over.status_code == 429
    assert over.json()["errorCode"] == "concurrency_limit_reached" and over.json()["statusCode"] == 429


async def test_validation_names_the_fields(api: Api) -> None:
    response = await api.client.post("/v2/generate", json=generate_body(outputFileName="bad name!"))
    assert response.status_code == 400
    messages = response.json()["message"]
    assert isinstance(messages, list) and any(m.startswith("outputFileName:") for m in messages)
    no_audio = generate_body()
    no_audio["input"] = no_audio["input"][:1]
    response = await api.client.post("/v2/generate", json=no_audio)
    assert response.status_code == 400 and any(m.startswith("input") for m in response.json()["message"])


@pytest.mark.parametrize("content", [b"{not json", b"[1, 2]", b""])
async def test_malformed_json_is_400(api: Api, content: bytes) -> None:
    response = await api.client.post(
        "/v2/generate", content=content, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400 and response.json()["statusCode"] == 400
