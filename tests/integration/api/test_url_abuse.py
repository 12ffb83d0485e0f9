"""Abuse of signed file URLs and of other organizations' ids: a URL opens its one file, ids never cross orgs.

File URLs are sent both through the client and as raw ASGI requests built the way uvicorn builds them
(``path`` is the percent-decoded request target, dot segments kept), since httpx normalises ``..`` away
before a request leaves it.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
from fastapi import FastAPI

from lipsync_api.secret_file import SECRET_FILE_NAME
from lipsync_api.storage.signing import url_signature
from tests.integration.api.conftest import Api, generate_body
from tests.integration.api.test_batch import batch_file, path_of, post_batch
from tests.integration.api.test_generate import wait_for_status

pytestmark = pytest.mark.asyncio


async def raw_get(app: FastAPI, target: bytes) -> tuple[int, dict[str, Any]]:
    """GET ``target`` (path and query, as sent on the wire) straight into the app: status, JSON or raw."""
    raw_path, _, query = target.partition(b"?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": unquote(raw_path.decode("ascii")),
        "raw_path": raw_path,
        "root_path": "",
        "query_string": query,
        "headers": [(b"host", b"test")],
        "client": ("127.0.0.1", 50000),
        "server": ("test", 80),
    }
    sent, finished = False, asyncio.Event()
    status, body, content_type = 0, b"", b""

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await finished.wait()  # the client stays until the whole answer is in
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status, body, content_type
        if message["type"] == "http.response.start":
            status = message["status"]
            content_type = dict(message.get("headers", [])).get(b"content-type", b"")
        elif message["type"] == "http.response.body":
            body += message.get("body", b"")
            if not message.get("more_body", False):
                finished.set()

    await app(scope, receive, send)
    return status, json.loads(body) if content_type == b"application/json" else {"raw": body}


def signed(secret: str, key: str, expires: int, quoted_key: str | None = None) -> bytes:
    """A files URL for ``key`` signed with the real secret, whatever the key (no key validation here)."""
    signature = url_signature(secret, key, expires)
    return f"/v2/files/{quoted_key or key}?expires={expires}&signature={signature}".encode()


def assert_refused(status: int, body: dict[str, Any], error_code: str | None = None) -> None:
    assert status in (403, 404), (status, body)
    assert body["statusCode"] == status and isinstance(body["message"], str)
    if error_code:
        assert body.get("errorCode") == error_code


async def finished_batch(api: Api, headers: dict[str, str] | None = None) -> dict[str, Any]:
    created = await post_batch(api.client, batch_file("https://m.example.com/a.wav"), headers=headers)
    assert created.status_code == 201, created.text
    for _ in range(400):
        body: dict[str, Any] = (
            await api.client.get(f"/v2/batch/{created.json()['id']}", headers=headers)
        ).json()
        if body["outputUrl"]:
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"batch {created.json()['id']} never finished")


def parts_of(url: str) -> tuple[str, str, str]:
    """The (decoded) key, expires and signature of a signed URL."""
    parsed = httpx.URL(url)
    return (
        unquote(parsed.path.removeprefix("/v2/files/")),
        parsed.params["expires"],
        parsed.params["signature"],
    )


# --- signed URLs ------------------------------------------------------------------------------------------


async def test_a_valid_url_works_without_a_key_and_any_tampering_is_403(api: Api) -> None:
    done = await finished_batch(api)
    key, expires, signature = parts_of(done["outputUrl"])
    assert (await api.client.get(path_of(done["outputUrl"]), headers={"x-api-key": ""})).status_code == 200
    flipped = signature[:-1] + ("0" if signature[-1] != "0" else "1")
    cases = [
        f"/v2/files/{key}?expires={expires}&signature={flipped}",  # tampered signature
        f"/v2/files/{key}?expires={expires}&signature={signature.upper()}",  # another spelling of it
        f"/v2/files/{key.replace('.jsonl', '.jsonx')}?expires={expires}&signature={signature}",  # key
        f"/v2/files/{key}x?expires={expires}&signature={signature}",
        f"/v2/files/{key}?expires={int(expires) + 1}&signature={signature}",  # a later expiry
        f"/v2/files/{key}?expires=0{expires}&signature={signature}",  # the same expiry, spelt otherwise
        f"/v2/files/{key}?expires={expires}",  # missing params
        f"/v2/files/{key}?signature={signature}",
        f"/v2/files/{key}",
        f"/v2/files/{key}?expires=&signature=",
    ]
    for target in cases:
        status, body = await raw_get(api.app, target.encode())
        assert status == 403, (target, status, body)
        assert_refused(status, body, "invalid_signature")


async def test_an_expired_url_is_403_url_expired(api: Api) -> None:
    done = await finished_batch(api)
    key, _, _ = parts_of(done["outputUrl"])
    secret = api.state.signer.secret
    past = int(time.time()) - 1
    status, body = await raw_get(api.app, signed(secret, key, past))
    assert status == 403 and body["errorCode"] == "url_expired"
    status, body = await raw_get(api.app, signed(secret, key, int(time.time()) + 60))
    assert status == 200 and json.loads(body["raw"])["request_id"] == "r0"


async def test_one_files_signature_does_not_open_another(api: Api) -> None:
    first, second = await finished_batch(api), await finished_batch(api)
    key_1, expires_1, signature_1 = parts_of(first["outputUrl"])
    key_2, _, _ = parts_of(second["outputUrl"])
    assert key_1 != key_2
    status, body = await raw_get(
        api.app, f"/v2/files/{key_2}?expires={expires_1}&signature={signature_1}".encode()
    )
    assert status == 403, body


@pytest.mark.parametrize(
    "path",
    [
        "../../../../etc/passwd",
        "results/../../../etc/passwd",
        "%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
        "results/%2e%2e/lipsync.db",
        "..%5c..%5cetc%5cpasswd",
        "results\\..\\..\\lipsync.db",
        "/etc/passwd",
        "%2Fetc%2Fpasswd",
        "results/x%00.jsonl",
        "results/%00",
        "./results/x.jsonl",
        "results//x.jsonl",
        ".secret",
        "%252e%252e/%252e%252e/etc/passwd",
        "",
        "results/x.jsonl/",
        "results/x.jsonl%20",
    ],
)
async def test_path_traversal_is_refused_even_when_validly_signed(api: Api, path: str) -> None:
    secret = api.state.signer.secret
    expires = int(time.time()) + 600
    decoded = unquote(path)
    # Signed by the real secret over the key the route will see: only key validation stands in the way.
    status, body = await raw_get(api.app, signed(secret, decoded, expires, quoted_key=path))
    assert_refused(status, body)
    status, body = await raw_get(api.app, f"/v2/files/{path}?expires={expires}&signature={'0' * 64}".encode())
    assert_refused(status, body)


async def test_the_signing_secret_next_to_the_storage_root_is_out_of_reach(api: Api) -> None:
    """The secret file sits one folder above the stored files: a signed ``..`` key must not reach it."""
    secret = api.state.signer.secret
    root = api.state.settings.data_dir / "files"
    assert (root.parent / SECRET_FILE_NAME).read_text().strip() == secret
    expires = int(time.time()) + 600
    for quoted in (
        f"../{SECRET_FILE_NAME}",
        f"%2e%2e/{SECRET_FILE_NAME}",
        f"results/../../{SECRET_FILE_NAME}",
    ):
        status, body = await raw_get(api.app, signed(secret, unquote(quoted), expires, quoted_key=quoted))
        assert status == 403 and secret not in json.dumps(body), (quoted, status)


async def test_duplicated_params_are_refused(api: Api) -> None:
    done = await finished_batch(api)
    key, expires, signature = parts_of(done["outputUrl"])
    later = int(expires) + 3600
    cases = [
        f"?expires={expires}&signature={signature}&expires={later}",
        f"?expires={later}&expires={expires}&signature={signature}",
        f"?expires={expires}&signature={'0' * 64}&signature={signature}",
        f"?expires={expires}&signature={signature}&signature={signature}",
    ]
    for query in cases:
        status, body = await raw_get(api.app, f"/v2/files/{key}{query}".encode())
        assert status == 403, (query, status, body)


async def test_huge_params_are_a_quick_403(api: Api) -> None:
    done = await finished_batch(api)
    key, expires, signature = parts_of(done["outputUrl"])
    cases = [
        f"/v2/files/{key}?expires={'9' * 100_000}&signature={signature}",
        f"/v2/files/{key}?expires={expires}&signature={'a' * 1_000_000}",
        f"/v2/files/{'k/' * 50_000}x?expires={expires}&signature={signature}",
        f"/v2/files/{'y' * 200_000}?expires={expires}&signature={signature}",
        f"/v2/files/{key}?expires={expires}&signature={signature}&junk={'j' * 500_000}",
    ]
    for target in cases:
        status, body = await raw_get(api.app, target.encode())
        if "junk=" in target:  # unknown params are ignored: the URL still opens its file
            assert status == 200
            continue
        assert status == 403, (target[:80], status, body)


async def test_another_organizations_signed_url_opens_that_file_only(api: Api) -> None:
    other = {"x-api-key": await api.key_for("growth")}
    theirs = await finished_batch(api, headers=other)
    mine = await finished_batch(api)
    their_key, expires, signature = parts_of(theirs["outputUrl"])
    my_key, _, _ = parts_of(mine["outputUrl"])
    # A signed URL is a bearer link: whoever holds it (with or without any API key) gets that file...
    for headers in ({}, {"x-api-key": ""}):
        response = await api.client.get(path_of(theirs["outputUrl"]), headers=headers)
        assert response.status_code == 200
        [result] = [json.loads(line) for line in response.text.splitlines()]
        assert result["response"]["batchId"] == theirs["id"]
    # ...and nothing else: not my file, not a sibling under their organization's folder, not the folder.
    their_org = their_key.split("/")[1]
    for key in (my_key, f"results/{their_org}/{mine['id']}.jsonl", f"results/{their_org}", "results"):
        status, _ = await raw_get(
            api.app, f"/v2/files/{key}?expires={expires}&signature={signature}".encode()
        )
        assert status == 403, key


# --- other organizations' ids -----------------------------------------------------------------------------


async def test_other_organizations_ids_are_404_or_empty_on_every_route(api: Api) -> None:
    other = {"x-api-key": await api.key_for("growth")}
    their_generation = (await api.client.post("/v2/generate", json=generate_body(), headers=other)).json()
    their_batch = (
        await post_batch(api.client, batch_file(*["https://m.example.com/gate.wav"] * 2), headers=other)
    ).json()
    mine = (await api.client.post("/v2/generate", json=generate_body())).json()
    await wait_for_status(api.client, mine["id"], "COMPLETED")

    unknown = str(uuid.uuid4())
    for method, template in (
        ("GET", "/v2/generate/{}"),
        ("GET", "/v2/batch/{}"),
        ("GET", "/v2/batch/{}/events"),
        ("POST", "/v2/batch/{}/cancel"),
    ):
        for their_id in (their_generation["id"], their_batch["id"]):
            theirs = await api.client.request(method, template.format(their_id))
            nobody = await api.client.request(method, template.format(unknown))
            # The same answer as for an id nobody has: no data, and no telling that the id exists.
            assert theirs.status_code == nobody.status_code == 404, (template, theirs.text)
            assert set(theirs.json()) <= {"statusCode", "message", "errorCode"}
            assert theirs.text.replace(their_id, unknown) == nobody.text
    still = (await api.client.get(f"/v2/batch/{their_batch['id']}", headers=other)).json()
    assert still["status"] != "CANCELED" and still["canceled_at"] is None
    assert (await api.client.get(f"/v2/generate/{their_generation['id']}", headers=other)).status_code == 200

    their_lines = (await api.client.get("/v2/generations", headers=other)).json()
    their_ids = [g["id"] for g in their_lines]
    assert their_generation["id"] in their_ids and len(their_ids) == 3
    for params in (
        {"ids": their_ids},
        {"ids": ",".join(their_ids)},
        {"ids": [*their_ids, mine["id"]]},
        {"ids": their_generation["id"], "status": "PENDING,PROCESSING,COMPLETED,FAILED"},
    ):
        listed = (await api.client.get("/v2/generations", params=params)).json()
        assert {g["id"] for g in listed} <= {mine["id"]}, params
    assert [b["id"] for b in (await api.client.get("/v2/batch")).json()] == []
    await post_batch(api.client, batch_file("https://m.example.com/gate.wav"), headers=other)
    their_page = await api.client.get("/v2/batch", params={"limit": 1}, headers=other)
    their_cursor = their_page.headers["x-next-cursor"]
    mine_after = await api.client.get("/v2/batch", params={"cursor": their_cursor})
    assert mine_after.status_code == 200 and mine_after.json() == []  # a cursor positions, never widens
    api.engine.gate.set()


async def test_an_idempotency_key_is_per_organization(api: Api) -> None:
    other = {"x-api-key": await api.key_for("enterprise")}
    headers = {"Idempotency-Key": "shared-key-1"}
    theirs = await api.client.post(
        "/v2/generate", json=generate_body("https://m.example.com/theirs.wav"), headers=other | headers
    )
    assert theirs.status_code == 201
    same_body = await api.client.post(
        "/v2/generate", json=generate_body("https://m.example.com/theirs.wav"), headers=headers
    )
    other_body = await api.client.post("/v2/generate", json=generate_body(), headers=headers)
    assert same_body.status_code == 201 and same_body.json()["id"] != theirs.json()["id"]
    assert other_body.status_code == 409 and other_body.json()["errorCode"] == "IDEMPOTENCY_KEY_REUSED"
    assert theirs.json()["id"] not in other_body.text
