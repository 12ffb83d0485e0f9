"""``/v2/batch``: dry run, create and drain, results download, signed URLs, isolation, size limit."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from tests.integration.api.conftest import BATCH_MAX_BYTES, Api, generate_body

pytestmark = pytest.mark.asyncio


def batch_file(*audios: str) -> bytes:
    """A JSONL batch file with one line per audio URL, request ids ``r0``, ``r1``..."""
    lines = [
        {"request_id": f"r{i}", "endpoint": "/v2/generate", "payload": generate_body(audio=audio)}
        for i, audio in enumerate(audios)
    ]
    return "\n".join(json.dumps(line) for line in lines).encode()


async def post_batch(
    client: httpx.AsyncClient, data: bytes, headers: dict[str, str] | None = None, **fields: str
) -> httpx.Response:
    return await client.post(
        "/v2/batch", files={"input": ("batch.jsonl", data, "application/jsonl")}, data=fields, headers=headers
    )


async def wait_terminal(client: httpx.AsyncClient, batch_id: str) -> dict[str, Any]:
    for _ in range(400):
        body: dict[str, Any] = (await client.get(f"/v2/batch/{batch_id}")).json()
        if body["status"] in ("COMPLETED", "FAILED", "CANCELED"):
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"batch {batch_id} never ended")


def path_of(url: str) -> str:
    return httpx.URL(url).raw_path.decode()


async def test_dry_run_validates_and_stores_nothing(api: Api) -> None:
    response = await post_batch(api.client, batch_file("https://m.example.com/a.wav"), dry_run="true")
    assert response.status_code == 200
    assert response.json()["status"] == "VALIDATED" and response.json()["total_generations"] == 1
    assert (await api.client.get("/v2/batch")).json() == []


async def test_invalid_file_names_every_line(api: Api) -> None:
    data = batch_file("https://m.example.com/a.wav") + b"\n{oops\n" + batch_file("https://m.example.com/b")
    response = await post_batch(api.client, data)
    assert response.status_code == 400
    body = response.json()
    assert body["errorCode"] == "invalid_batch_file"
    assert any(m.startswith("line 2") for m in body["message"])
    assert any(m.startswith("line 3") for m in body["message"])


async def test_batch_runs_to_completion_and_results_download(api: Api) -> None:
    data = batch_file(
        "https://m.example.com/a.wav", "https://m.example.com/reject.wav", "https://m.example.com/c"
    )
    created = await post_batch(api.client, data, webhook_url="https://hooks.example.com/x")
    assert created.status_code == 201
    assert created.json()["outputUrl"] == "" and created.json()["metrics"]["total_generations"] == 3
    done = await wait_terminal(api.client, created.json()["id"])
    assert done["status"] == "COMPLETED"
    assert done["metrics"]["success_count"] == 2 and done["metrics"]["failed_count"] == 1
    results = await api.client.get(path_of(done["outputUrl"]), headers={"x-api-key": ""})
    assert results.status_code == 200
    lines = [json.loads(line) for line in results.text.splitlines()]
    assert [line["request_id"] for line in lines] == ["r0", "r1", "r2"]
    assert lines[1]["response"]["error_code"] == "generation_no_face_detected"
    tampered = path_of(done["outputUrl"])
    tampered = tampered[:-1] + ("0" if tampered[-1] != "0" else "1")
    rejected = await api.client.get(tampered)
    assert rejected.status_code == 403 and rejected.json()["statusCode"] == 403
    listed = (await api.client.get("/v2/batch", params={"status": "COMPLETED,FAILED"})).json()
    assert [batch["id"] for batch in listed] == [done["id"]]


async def test_cancel_and_other_organizations_batch(api: Api) -> None:
    created = await post_batch(api.client, batch_file(*["https://m.example.com/gate.wav"] * 3))
    batch_id = created.json()["id"]
    other = {"x-api-key": await api.key_for("growth")}
    assert (await api.client.get(f"/v2/batch/{batch_id}", headers=other)).status_code == 404
    assert (await api.client.post(f"/v2/batch/{batch_id}/cancel", headers=other)).status_code == 404
    canceled = await api.client.post(f"/v2/batch/{batch_id}/cancel")
    assert canceled.status_code == 200 and canceled.json()["status"] == "CANCELED"
    api.engine.gate.set()


async def test_free_plan_cannot_batch(api: Api) -> None:
    free = {"x-api-key": await api.key_for("free")}
    response = await post_batch(api.client, batch_file("https://m.example.com/a.wav"), headers=free)
    assert response.status_code == 402 and response.json()["errorCode"] == "plan_upgrade_required"


async def test_oversize_file_is_413(api: Api) -> None:
    response = await post_batch(api.client, b"x" * (BATCH_MAX_BYTES + 1))
    assert response.status_code == 413
    assert response.json()["errorCode"] == "batch_file_too_large" and response.json()["statusCode"] == 413


async def test_bad_cursor_and_missing_file(api: Api) -> None:
    cursor = await api.client.get("/v2/batch", params={"cursor": "garbage!"})
    assert cursor.status_code == 400 and cursor.json()["errorCode"] == "invalid_cursor"
    missing = await api.client.post("/v2/batch", files={"other": ("a", b"x")})
    assert missing.status_code == 400
    not_multipart = await api.client.post("/v2/batch", json={})
    assert not_multipart.status_code == 400


async def test_oversize_upload_stops_reading_at_the_limit(api: Api) -> None:
    sent = 0
    boundary = "b0undary"

    async def body() -> Any:
        nonlocal sent
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="input"; filename="a.jsonl"\r\n\r\n'
        yield head.encode()
        for _ in range(1000):
            sent += 1024
            yield b"x" * 1024
        yield f"\r\n--{boundary}--\r\n".encode()

    headers = {"content-type": f"multipart/form-data; boundary={boundary}"}
    response = await api.client.post("/v2/batch", content=body(), headers=headers)
    assert response.status_code == 413
    assert sent <= BATCH_MAX_BYTES + 2 * 1024
