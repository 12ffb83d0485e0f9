"""Batch uploads at the default limits (5 MB, 1000 requests): the caps hold exactly, abuse is a clean 4xx.

``test_batch_fuzz.py`` fuzzes the multipart layer and line contents under a tiny size limit; this file
runs an app with the shipped defaults, so the 1000-request cap and the 5 MB cap are tested where they
really are, together with files that fill the limit with hostile content: random bytes, one huge line,
deep JSON, NUL bytes, invalid UTF-8, and broken lines by the million.
"""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lipsync_api.api.generation_request import MAX_DEPTH
from lipsync_api.config import Settings
from lipsync_api.domain.batchfile import MAX_PROBLEMS
from tests.integration.api.conftest import api_settings, running_api
from tests.integration.api.test_batch_fuzz import check_answer, form, part, post_raw
from tests.unit.api.factories import simple_payload

DEFAULTS = Settings()
MAX_BYTES = DEFAULTS.batch_max_bytes
MAX_REQUESTS = DEFAULTS.batch_max_requests
MULTIPART = "multipart/form-data; boundary=fuzz-b0undary-7MA4YWxkTrZu0gW"
pytestmark = pytest.mark.asyncio


async def test_the_defaults_are_the_documented_ones() -> None:
    assert (MAX_BYTES, MAX_REQUESTS) == (5 * 1024 * 1024, 1000)


@pytest_asyncio.fixture
async def client(tmp_path: Path, database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """An app with the default batch limits (the shared ``api`` fixture shrinks the size limit)."""
    settings = api_settings(tmp_path, database_url, estimate_timeout_seconds=5.0)
    async with running_api(settings) as running:
        yield running.client


def line(request_id: str, **payload: Any) -> bytes:
    entry = {"request_id": request_id, "endpoint": "/v2/generate", "payload": simple_payload(**payload)}
    return json.dumps(entry, separators=(",", ":")).encode()


def requests_file(count: int, blank_every: int = 0) -> bytes:
    lines: list[bytes] = []
    for index in range(count):
        lines.append(line(f"r{index}"))
        if blank_every and index % blank_every == 0:
            lines.append(b"  \r")
    return b"\n".join(lines) + b"\n"


def padded(data: bytes, size: int) -> bytes:
    """``data`` followed by blank lines up to exactly ``size`` bytes."""
    assert len(data) <= size
    return data + b"\n" * (size - len(data))


async def upload(client: httpx.AsyncClient, data: bytes, dry_run: bool = True) -> httpx.Response:
    parts = [part("dry_run", b"true")] if dry_run else []
    body = form(*parts, part("input", data, "batch.jsonl", "application/jsonl"))
    return await post_raw(client, body, MULTIPART)


async def assert_nothing_stored(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v2/batch")).json() == []
    assert (await client.get("/v2/generations")).json() == []


def problems(response: httpx.Response) -> list[str]:
    body = check_answer(response)
    assert response.status_code == 400 and body["errorCode"] == "invalid_batch_file", response.text[:300]
    messages: list[str] = body["message"]
    return messages


# --- the request cap --------------------------------------------------------------------------------------


async def test_1000_requests_pass_and_the_1001st_is_named(client: httpx.AsyncClient) -> None:
    at_cap = await upload(client, requests_file(MAX_REQUESTS))
    assert at_cap.status_code == 200, at_cap.text[:300]
    assert check_answer(at_cap)["total_generations"] == MAX_REQUESTS
    over = await upload(client, requests_file(MAX_REQUESTS + 1))
    assert problems(over) == [f"line {MAX_REQUESTS + 1}: more than {MAX_REQUESTS} requests (the limit)"]
    assert check_answer(over)["errors"][0]["line"] == MAX_REQUESTS + 1
    refused = await upload(client, requests_file(MAX_REQUESTS + 1), dry_run=False)
    assert refused.status_code == 400 and check_answer(refused)["message"] == problems(over)
    await assert_nothing_stored(client)


async def test_blank_lines_do_not_count_towards_the_cap(client: httpx.AsyncClient) -> None:
    data = requests_file(MAX_REQUESTS, blank_every=3)  # about 1333 lines, 1000 of them requests
    assert data.count(b"\n") > MAX_REQUESTS + 1
    response = await upload(client, data)
    assert response.status_code == 200 and check_answer(response)["total_generations"] == MAX_REQUESTS
    over = requests_file(MAX_REQUESTS + 1, blank_every=3)
    # The 1001st request sits on a later line than 1001: the message names the line it is really on.
    line_no = over.split(b"\n").index(line(f"r{MAX_REQUESTS}")) + 1
    assert problems(await upload(client, over)) == [
        f"line {line_no}: more than {MAX_REQUESTS} requests (the limit)"
    ]


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    count=st.integers(MAX_REQUESTS - 2, MAX_REQUESTS + 3), broken=st.sets(st.integers(1, 1003), max_size=3)
)
async def test_around_the_cap_every_problem_is_named(
    client: httpx.AsyncClient, count: int, broken: set[int]
) -> None:
    lines = [line(f"r{index}") for index in range(count)]
    for number in broken:
        if number <= count:
            lines[number - 1] = lines[number - 1][:-1]  # the closing brace cut off
    response = await upload(client, b"\n".join(lines))
    expected = {n for n in broken if n <= count} | ({MAX_REQUESTS + 1} if count > MAX_REQUESTS else set())
    if not expected:
        assert response.status_code == 200 and check_answer(response)["total_generations"] == count
        return
    named = {error["line"] for error in check_answer(response)["errors"]}
    assert response.status_code == 400 and named == expected


# --- the size cap -----------------------------------------------------------------------------------------


async def test_exactly_5_mb_is_read_and_one_byte_more_is_413(client: httpx.AsyncClient) -> None:
    data = requests_file(10)
    at_limit = await upload(client, padded(data, MAX_BYTES))
    assert at_limit.status_code == 200 and check_answer(at_limit)["total_generations"] == 10
    for dry_run in (True, False):
        over = await upload(client, padded(data, MAX_BYTES + 1), dry_run=dry_run)
        body = check_answer(over)
        assert over.status_code == 413 and body["errorCode"] == "batch_file_too_large"
        assert body["message"] == [f"the file is larger than {MAX_BYTES} bytes"]
    await assert_nothing_stored(client)


async def test_a_streamed_upload_past_5_mb_is_cut_off_at_the_limit(client: httpx.AsyncClient) -> None:
    sent = 0
    boundary = "b0undary"

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        yield f'--{boundary}\r\nContent-Disposition: form-data; name="input"; filename="a"\r\n\r\n'.encode()
        for _ in range(4 * MAX_BYTES // 65536):  # 20 MB offered
            sent += 65536
            yield b"\n" * 65536
        yield f"\r\n--{boundary}--\r\n".encode()

    headers = {"content-type": f"multipart/form-data; boundary={boundary}"}
    response = await client.post("/v2/batch", content=body(), headers=headers)
    assert response.status_code == 413 and check_answer(response)["errorCode"] == "batch_file_too_large"
    assert sent <= MAX_BYTES + 2 * 65536
    await assert_nothing_stored(client)


# --- hostile content that fills the limit -----------------------------------------------------------------


async def test_5_mb_of_random_bytes(client: httpx.AsyncClient) -> None:
    data = random.Random(7).randbytes(MAX_BYTES)
    messages = problems(await upload(client, data))
    assert 1 <= len(messages) <= MAX_PROBLEMS + 1


async def test_one_huge_line(client: httpx.AsyncClient) -> None:
    huge_id = line("x" * (MAX_BYTES - len(line(""))))
    assert len(huge_id) == MAX_BYTES
    assert problems(await upload(client, huge_id)) == ["line 1: request_id: longer than 255 characters"]
    huge_extra = line(
        "a", extra="y" * (MAX_BYTES - len(line("a", extra="")))
    )  # an unknown payload key: dropped, not refused
    response = await upload(client, huge_extra)
    assert response.status_code == 200 and check_answer(response)["total_generations"] == 1
    unterminated = b'{"request_id": "' + b"z" * (MAX_BYTES - 20)
    [message] = problems(await upload(client, unterminated))
    assert message.startswith("line 1: not valid JSON")


@pytest.mark.parametrize("opener, closer", [(b"[", b"]"), (b'{"a":', b"}")])
async def test_deep_json_to_the_limit(client: httpx.AsyncClient, opener: bytes, closer: bytes) -> None:
    depth = (MAX_BYTES - 10) // (len(opener) + len(closer))
    data = opener * depth + b"1" + closer * depth
    assert problems(await upload(client, data)) == ["line 1: not valid JSON: nested too deeply"]


@pytest.mark.parametrize("depth", [20, 200, 900, 5000])
async def test_deep_json_inside_a_valid_payload(client: httpx.AsyncClient, depth: int) -> None:
    nested = b'{"a":[' * depth + b"1" + b"]}" * depth  # 2 x depth levels below payload.extra
    data = line("r", extra="NESTED").replace(b'"NESTED"', nested)
    for dry_run in (True, False):
        response = await upload(client, data, dry_run=dry_run)
        if 2 * depth + 2 <= MAX_DEPTH:
            assert response.status_code == (200 if dry_run else 201), response.text[:300]
            continue
        [message] = problems(response)
        assert message.startswith("line 1: ") and "nested" in message, message[:300]


async def test_nul_bytes_and_invalid_utf8_everywhere(client: httpx.AsyncClient) -> None:
    good = line("a")
    assert problems(await upload(client, b"\x00" * MAX_BYTES)) == ["line 1: contains a NUL byte"]
    assert problems(await upload(client, good[:10] + b"\x00" + good[10:])) == ["line 1: contains a NUL byte"]
    [message] = problems(await upload(client, b"\xff\xfe" * (MAX_BYTES // 2)))
    assert message.startswith("line 1: ")
    [message] = problems(await upload(client, good.replace(b'"a"', b'"\xc3("')))
    assert message.startswith("line 1: ")


async def test_millions_of_broken_lines_answer_a_bounded_list(client: httpx.AsyncClient) -> None:
    data = b"x\n" * (MAX_BYTES // 2)  # 2.6 million broken lines
    response = await upload(client, data)
    messages = problems(response)
    assert len(messages) == MAX_PROBLEMS + 1
    assert messages[-1].startswith(f"only the first {MAX_PROBLEMS} problems are listed")
    assert len(response.content) < 512 * 1024
