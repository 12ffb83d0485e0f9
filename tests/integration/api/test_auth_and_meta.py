"""Auth, error shapes, models, health and OpenAPI."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from lipsync_api.store import Store
from tests.integration.api.conftest import Api, api_settings, running_api

pytestmark = pytest.mark.asyncio


@pytest.mark.parametrize("headers", [{}, {"x-api-key": "lsk_unknown"}])
async def test_missing_or_unknown_key_is_401(api: Api, headers: dict[str, str]) -> None:
    response = await api.client.get("/v2/generations", headers={"x-api-key": ""} | headers)
    assert response.status_code == 401
    body = response.json()
    assert body["statusCode"] == 401 and body["errorCode"] == "unauthorized" and body["message"]


async def test_revoked_key_is_401(api: Api) -> None:
    org = await api.state.store.organizations.create("revoked", "growth")
    issued = await api.state.store.organizations.create_api_key(org.id, "k")
    assert (await api.client.get("/v2/models", headers={"x-api-key": issued.key})).status_code == 200
    await api.state.store.organizations.revoke_api_key(org.id, issued.record.id)
    assert (await api.client.get("/v2/models", headers={"x-api-key": issued.key})).status_code == 401


async def test_models_lists_the_served_names(api: Api) -> None:
    response = await api.client.get("/v2/models")
    assert response.status_code == 200
    names = [model["id"] for model in response.json()]
    assert names == ["lipsync-2", "lipsync-2-pro", "lipsync-1.9.0-beta", "sync-3", "lipsync-api"]
    assert set(response.json()[0]) == {"id", "name", "type", "version", "description"}


async def test_health_ready_and_openapi(api: Api) -> None:
    assert (await api.client.get("/healthz", headers={})).json() == {"status": "ok"}
    assert (await api.client.get("/readyz", headers={})).status_code == 200
    schema = (await api.client.get("/openapi.json")).json()
    assert "/v2/batch" in schema["paths"] and "/v2/generate" in schema["paths"]
    assert (await api.client.get("/docs")).status_code == 200


async def test_unknown_route_and_method_use_the_error_shape(api: Api) -> None:
    missing = await api.client.get("/v2/nothing")
    assert missing.status_code == 404 and missing.json()["statusCode"] == 404
    wrong = await api.client.delete("/v2/models")
    assert wrong.status_code == 405 and wrong.json() == {"statusCode": 405, "message": "Method Not Allowed"}


async def test_unexpected_error_is_a_generic_500(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    async def explode(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(api.state.store.organizations, "find_key", explode)
    transport = httpx.ASGITransport(app=api.app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/v2/models", headers={"x-api-key": "anything"})
    assert response.status_code == 500
    assert response.json() == {"statusCode": 500, "message": "internal server error"}


async def test_the_use_of_a_key_is_recorded(api: Api) -> None:
    org = await api.state.store.organizations.create("used", "growth")
    issued = await api.state.store.organizations.create_api_key(org.id, "k")
    assert (await api.client.get("/v2/models", headers={"x-api-key": issued.key})).status_code == 200
    await api.app.state.authenticator.aclose()  # the record is written by a task of its own
    stored = await api.state.store.organizations.get_api_key(issued.record.id)
    assert stored is not None and stored.last_used_at is not None


@pytest.mark.parametrize(("cache_seconds", "status"), [(0, 401), (3600, 200)])
async def test_a_key_revoked_by_another_process_is_refused_within_the_cache_time(
    tmp_path: Path, database_url: str, cache_seconds: float, status: int
) -> None:
    settings = api_settings(tmp_path, database_url, auth_cache_seconds=cache_seconds)
    async with running_api(settings, run_workers=False) as running:
        org = await running.state.store.organizations.create("elsewhere", "growth")
        issued = await running.state.store.organizations.create_api_key(org.id, "k")
        headers = {"x-api-key": issued.key}
        assert (await running.client.get("/v2/models", headers=headers)).status_code == 200
        other = Store.open(settings.resolved_database_url)  # as `lipsync-api keys revoke` does
        try:
            assert await other.organizations.revoke_api_key(org.id, issued.record.id)
        finally:
            await other.close()
        # Refused at once without a cache; with one, once the key's entry expires (the unit tests' clock).
        assert (await running.client.get("/v2/models", headers=headers)).status_code == status
