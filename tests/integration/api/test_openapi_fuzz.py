"""Schemathesis against ``/openapi.json``: every operation, authenticated, never a 5xx, answers as documented.

The app runs in-process (schemathesis's ASGI transport runs its lifespan) with the fake engine, on
SQLite in a temporary folder. Media URLs the fuzzer invents point at hosts that do not resolve here,
and private addresses are refused, so the cost estimate and dry run fail fast instead of downloading.

Each operation is its own test, driven by hypothesis over schemathesis's positive and negative cases
(schemathesis's own pytest parametrization needs pytest internals that pytest 9 no longer has).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import APIOperation, Case, GenerationMode
from schemathesis.python import asgi
from schemathesis.specs.openapi.schemas import OpenApiSchema

from lipsync_api.api.app import create_app
from lipsync_api.config import Settings
from lipsync_api.store.database import sqlite_url
from tests.integration.api.conftest import BATCH_MAX_BYTES, BOOTSTRAP_KEY, generate_body
from tests.integration.scheduler.fakes import FakeEngine

AUTH = {"x-api-key": BOOTSTRAP_KEY}
CHECK_NAMES = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "missing_required_header",
    "ignored_auth",  # re-sends without (and with a wrong) key through the app itself: must be 401
]
FUZZ_SETTINGS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.function_scoped_fixture,
    ],
)


def operation_labels() -> list[str]:
    """``METHOD /path`` of every documented operation (from an app that is built, never started)."""
    document = create_app(Settings(data_dir=Path("unused-never-started"))).openapi()
    return [f"{method.upper()} {path}" for path, item in document["paths"].items() for method in item]


def has_nullable_query(operation: APIOperation) -> bool:
    """Whether a query parameter is documented as ``anyOf [..., null]`` (FastAPI's ``X | None``).

    A query string cannot carry a null, so schemathesis's "null became X" negatives arrive as ordinary
    text (or repeated keys, of which the last counts) that the route rightly accepts.
    """
    parameters = operation.definition.raw.get("parameters", [])
    return any(
        p.get("in") == "query" and {"type": "null"} in p.get("schema", {}).get("anyOf", [])
        for p in parameters
    )


@pytest.fixture
def api_schema(tmp_path: Path) -> Iterator[OpenApiSchema]:
    """The app's own OpenAPI document, bound to the app; its lifespan ends with the test."""
    app_settings = Settings(
        data_dir=tmp_path / "data",
        database_url=sqlite_url(tmp_path / "fuzz.db"),
        bootstrap_api_key=BOOTSTRAP_KEY,
        batch_max_bytes=BATCH_MAX_BYTES,
        fetch_allow_private_addresses=False,
        fetch_connect_timeout=1.0,
        fetch_read_timeout=1.0,
        estimate_timeout_seconds=2.0,
    )
    app = create_app(app_settings, engine=FakeEngine())
    try:
        yield schemathesis.openapi.from_asgi("/openapi.json", app)
    finally:
        asgi.shutdown_lifespans()


@pytest.mark.parametrize("label", operation_labels())
def test_every_operation_answers_as_documented(api_schema: OpenApiSchema, label: str) -> None:
    operation = api_schema.find_operation_by_label(label)
    assert operation is not None, label
    names = [n for n in CHECK_NAMES if n != "negative_data_rejection" or not has_nullable_query(operation)]
    checks = [getattr(schemathesis.checks, name) for name in names]
    # The key is fixed, so a negative case never drops it only to have it put back when sent.
    headers = AUTH if operation.definition.raw.get("security") else None
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE, headers=headers),
        operation.as_strategy(GenerationMode.NEGATIVE, headers=headers),
    )

    @FUZZ_SETTINGS
    @given(case=cases)
    def answers_as_documented(case: Case) -> None:
        case.call_and_validate(headers=AUTH, checks=checks)

    answers_as_documented()


# --- real resources: the success answers (which random ids never reach) hold to their schemas ------------

RESPONSE_CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
]


def call(schema: OpenApiSchema, label: str, expect: int, **parts: Any) -> Any:
    """Send one explicit case, check its answer against the document, and return the JSON (or text)."""
    operation = schema.find_operation_by_label(label)
    assert operation is not None, label
    case = operation.Case(**parts)
    checks = [getattr(schemathesis.checks, name) for name in RESPONSE_CHECKS]
    response = case.call_and_validate(headers=AUTH, checks=checks)
    assert response.status_code == expect, (label, response.status_code, response.text)
    content_type = response.headers.get("content-type", [""])[0]
    return response.json() if content_type.startswith("application/json") else response.text


def wait_until(schema: OpenApiSchema, label: str, path: dict[str, str], statuses: set[str]) -> Any:
    for _ in range(400):
        body = call(schema, label, 200, path_parameters=path)
        if body["status"] in statuses:
            return body
        time.sleep(0.05)
    raise AssertionError(f"{label} {path} never reached {statuses}")


def test_real_resources_answer_as_documented(api_schema: OpenApiSchema) -> None:
    created = call(api_schema, "POST /v2/generate", 201, body=generate_body(), media_type="application/json")
    path = {"generation_id": created["id"]}
    done = wait_until(api_schema, "GET /v2/generate/{generation_id}", path, {"COMPLETED"})
    assert done["outputUrl"] and done["completedAt"]
    listed = call(api_schema, "GET /v2/generations", 200, query={"ids": [created["id"]]})
    assert [g["id"] for g in listed] == [created["id"]]
    lines = [
        {
            "request_id": name,
            "endpoint": "/v2/generate",
            "payload": generate_body(f"https://m.example.com/{name}"),
        }
        for name in ("a", "reject")
    ]
    data = "\n".join(json.dumps(line) for line in lines).encode()
    multipart = {"media_type": "multipart/form-data"}
    dry = call(api_schema, "POST /v2/batch", 200, body={"input": data, "dry_run": "true"}, **multipart)
    assert dry["status"] == "VALIDATED" and dry["total_generations"] == 2
    batch = call(api_schema, "POST /v2/batch", 201, body={"input": data}, **multipart)
    batch_path = {"batch_id": batch["id"]}
    ended = wait_until(api_schema, "GET /v2/batch/{batch_id}", batch_path, {"COMPLETED", "FAILED"})
    assert ended["status"] == "COMPLETED" and ended["outputUrl"]
    assert [b["id"] for b in call(api_schema, "GET /v2/batch", 200, query={"limit": 5})] == [batch["id"]]
    late = call(api_schema, "POST /v2/batch/{batch_id}/cancel", 200, path_parameters=batch_path)
    assert late["status"] == "COMPLETED"  # a final batch stays as it ended
    url = httpx.URL(ended["outputUrl"])
    key = url.path.removeprefix("/v2/files/")
    query = dict(url.params)
    results = call(api_schema, "GET /v2/files/{key}", 200, path_parameters={"key": key}, query=query)
    assert [json.loads(line)["request_id"] for line in results.splitlines()] == ["a", "reject"]
    assert len(call(api_schema, "GET /v2/models", 200)) >= 1
    assert call(api_schema, "GET /readyz", 200) == {"status": "ok"}
