"""Adversarial batch uploads through the real app: never a 5xx, always the error shape, lines named.

Files come from the validator's fuzz strategies (known-valid and known-broken lines), sent as a proper
upload and as hand-made multipart bodies (no boundary, wrong content type, truncated, parts missing,
extra or repeated, huge fields, the file at and just past the size limit). Every upload is a dry run
(or is refused before it could be stored), and the organization has no batch afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lipsync_api.api.upload import MAX_FIELD_BYTES
from tests.integration.api.conftest import BATCH_MAX_BYTES, Api
from tests.unit.api.factories import simple_payload
from tests.unit.domain.test_batchfile_fuzz import BOM, Built, batch_files, dumps

pytestmark = pytest.mark.asyncio

BOUNDARY = "fuzz-b0undary-7MA4YWxkTrZu0gW"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"
ENDPOINT_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def check_answer(response: httpx.Response) -> dict[str, Any]:
    """Not a 5xx; a dry run's VALIDATED, or the error shape with each line-numbered message in order."""
    status = response.status_code
    assert status < 500, response.text
    body: dict[str, Any] = response.json()
    if status == 200:
        assert body["status"] == "VALIDATED" and isinstance(body["total_generations"], int)
        return body
    assert 400 <= status < 500
    assert body["statusCode"] == status
    message = body["message"]
    assert isinstance(message, str) or (
        isinstance(message, list) and message and all(isinstance(m, str) for m in message)
    )
    if "errors" in body:
        assert isinstance(message, list) and len(body["errors"]) == len(message)
        for error, text in zip(body["errors"], message, strict=True):
            if error["line"] is None:
                assert not text.startswith("line ")
            else:
                assert isinstance(error["line"], int) and error["line"] >= 1
                assert text.startswith(f"line {error['line']}: ")
    return body


def part(name: str, data: bytes, filename: str | None = None, content_type: str | None = None) -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
    head = f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n"
    if content_type:
        head += f"Content-Type: {content_type}\r\n"
    return head.encode() + b"\r\n" + data + b"\r\n"


def form(*parts: bytes) -> bytes:
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


async def post_raw(client: httpx.AsyncClient, body: bytes, content_type: str | None) -> httpx.Response:
    headers = {"content-type": content_type} if content_type is not None else {}
    return await client.post("/v2/batch", content=body, headers=headers)


async def post_dry_run(client: httpx.AsyncClient, data: bytes) -> httpx.Response:
    body = form(part("dry_run", b"true"), part("input", data, "batch.jsonl", "application/jsonl"))
    return await post_raw(client, body, MULTIPART)


async def assert_nothing_stored(api: Api) -> None:
    assert (await api.client.get("/v2/batch")).json() == []
    assert (await api.client.get("/v2/generations")).json() == []


def requests_of(built: Built) -> tuple[int, set[int]]:
    """How many requests the file holds, and the numbers of its broken lines (the oracle)."""
    pairs = [(n, line) for n, line in zip(built.numbers, built.lines, strict=True) if line.valid is not None]
    return len(pairs), {n for n, line in pairs if not line.valid}


@ENDPOINT_SETTINGS
@given(built=batch_files(max_lines=8))
async def test_fuzzed_files_get_the_oracles_answer(api: Api, built: Built) -> None:
    response = await post_dry_run(api.client, built.data)
    body = check_answer(response)
    count, broken = requests_of(built)
    if len(built.data) > BATCH_MAX_BYTES:
        assert response.status_code == 413 and body["errorCode"] == "batch_file_too_large"
    elif count == 0:
        assert response.status_code == 400 and body["message"] == ["the file contains no requests"]
    elif not broken:
        assert response.status_code == 200 and body["total_generations"] == count
    else:
        assert response.status_code == 400 and body["errorCode"] == "invalid_batch_file"
        assert {error["line"] for error in body["errors"]} == broken


@dataclass
class RawUpload:
    """A hand-made request to ``POST /v2/batch``; ``dry_run`` comes first so a stored batch is impossible."""

    body: bytes
    content_type: str | None


small_files = st.one_of(
    batch_files(max_lines=4).map(lambda built: built.data),
    st.binary(max_size=200),
    st.just(b""),
)
other_parts = st.one_of(
    st.tuples(st.sampled_from(["webhook_url", "other", "", "INPUT", "input "]), st.binary(max_size=50)),
    st.tuples(st.sampled_from(["webhook_url", "other"]), st.just(b"h" * (MAX_FIELD_BYTES + 1))),
    st.tuples(st.just("webhook_url"), st.sampled_from([b"ftp://x", b"\xff\xfe", b"https://h/\x00"])),
)


@st.composite
def raw_uploads(draw: st.DrawFn) -> RawUpload:
    parts = [part("dry_run", b"true")]
    inputs = draw(st.sampled_from([1, 1, 1, 0, 2]))  # the file part once, missing, or twice
    extras = draw(st.lists(other_parts, max_size=3))
    for index in range(inputs + len(extras)):
        if index < inputs:
            filename = draw(st.sampled_from([None, "batch.jsonl", 'we"ird.jsonl']))
            ctype = draw(st.sampled_from([None, "application/jsonl", "text/plain; charset=latin-1"]))
            parts.append(part("input", draw(small_files), filename, ctype))
        else:
            name, value = extras[index - inputs]
            parts.append(part(name, value))
    order = draw(st.permutations(parts[1:]))
    body = form(parts[0], *order)
    mangle = draw(
        st.sampled_from(["none"] * 6 + ["truncate", "no_close", "lf_only", "preamble", "garbage", "empty"])
    )
    if mangle == "truncate":
        body = body[: draw(st.integers(0, len(body)))]
    elif mangle == "no_close":
        body = body.removesuffix(f"--{BOUNDARY}--\r\n".encode())
    elif mangle == "lf_only":
        body = body.replace(b"\r\n", b"\n")
    elif mangle == "preamble":
        body = b"ignored preamble\r\n" + body + b"epilogue \x00\xff"
    elif mangle == "garbage":
        body = draw(st.binary(max_size=300))
    elif mangle == "empty":
        body = b""
    content_type = draw(
        st.sampled_from(
            [
                MULTIPART,
                MULTIPART,
                MULTIPART,
                f'multipart/form-data; boundary="{BOUNDARY}"',
                "multipart/form-data; boundary=another-boundary",
                "multipart/form-data",
                "multipart/form-data; boundary=",
                "Multipart/Form-Data; boundary=" + BOUNDARY,
                "multipart/mixed; boundary=" + BOUNDARY,
                "application/json",
                "text/plain",
                "",
                None,
            ]
        )
    )
    return RawUpload(body, content_type)


@ENDPOINT_SETTINGS
@given(upload=raw_uploads())
async def test_malformed_multipart_bodies_are_4xx(api: Api, upload: RawUpload) -> None:
    response = await post_raw(api.client, upload.body, upload.content_type)
    check_answer(response)
    if response.status_code == 200:  # only a well-formed multipart with an input part gets this far
        assert upload.content_type is not None and BOUNDARY in upload.content_type
    await assert_nothing_stored(api)


# --- explicit edge cases -------------------------------------------------------------------------------


def file_of_size(size: int) -> bytes:
    """A valid one-request file padded with trailing blank lines to exactly ``size`` bytes."""
    line = dumps({"request_id": "r1", "endpoint": "/v2/generate", "payload": simple_payload()})
    assert len(line) <= size
    return line + b"\n" * (size - len(line))


async def test_a_file_exactly_at_the_limit_is_read_and_one_byte_more_is_413(api: Api) -> None:
    at_limit = await post_dry_run(api.client, file_of_size(BATCH_MAX_BYTES))
    assert at_limit.status_code == 200 and check_answer(at_limit)["total_generations"] == 1
    over = await post_dry_run(api.client, file_of_size(BATCH_MAX_BYTES + 1))
    body = check_answer(over)
    assert over.status_code == 413 and body["errorCode"] == "batch_file_too_large"
    assert body["message"] == [f"the file is larger than {BATCH_MAX_BYTES} bytes"]
    await assert_nothing_stored(api)


async def test_requests_that_are_not_a_multipart_upload(api: Api) -> None:
    file = file_of_size(300)
    cases: list[tuple[bytes, str | None]] = [
        (form(part("dry_run", b"true"), part("input", file, "a.jsonl")), None),
        (form(part("dry_run", b"true"), part("input", file, "a.jsonl")), "multipart/form-data"),
        (form(part("dry_run", b"true"), part("input", file, "a.jsonl")), "application/json"),
        (file, "application/jsonl"),
        (b"", MULTIPART),
        (b"--" + BOUNDARY.encode() + b"\r\n", MULTIPART),
        (form(part("dry_run", b"true")), MULTIPART),  # the file part missing
        (form(part("dry_run", b"true"), part("input", file, "a.jsonl"))[:-60], MULTIPART),  # truncated
    ]
    for body, content_type in cases:
        response = await post_raw(api.client, body, content_type)
        assert response.status_code == 400, (content_type, body[:80], response.text)
        check_answer(response)
    await assert_nothing_stored(api)


async def test_extra_parts_a_second_input_and_huge_fields(api: Api) -> None:
    good, bad = file_of_size(300), b"{oops"
    # The last ``input`` part counts, whichever is valid.
    last_bad = form(part("dry_run", b"true"), part("input", good, "a"), part("input", bad, "b"))
    response = await post_raw(api.client, last_bad, MULTIPART)
    assert response.status_code == 400 and check_answer(response)["message"][0].startswith("line 1: ")
    last_good = form(
        part("dry_run", b"true"), part("input", bad, "a"), part("other", b"x"), part("input", good)
    )
    response = await post_raw(api.client, last_good, MULTIPART)
    assert response.status_code == 200 and check_answer(response)["total_generations"] == 1
    huge = form(
        part("dry_run", b"true"), part("webhook_url", b"h" * (MAX_FIELD_BYTES + 1)), part("input", good)
    )
    response = await post_raw(api.client, huge, MULTIPART)
    assert response.status_code == 400 and "webhook_url" in check_answer(response)["message"]
    flag = form(part("dry_run", b"maybe"), part("input", good))
    response = await post_raw(api.client, flag, MULTIPART)
    assert (
        response.status_code == 400 and check_answer(response)["message"] == "dry_run: must be true or false"
    )
    await assert_nothing_stored(api)


async def test_lone_surrogates_and_huge_numbers_are_line_problems(api: Api) -> None:
    valid = dumps({"request_id": "a", "endpoint": "/v2/generate", "payload": simple_payload()})
    data = b"\n".join(
        [
            valid.replace(b'"a"', b'"\\ud800"'),
            valid.replace(b'"a"', b'"\\ud800"'),
            valid.replace(b'"a"', b'"b"').replace(b'"lipsync-2"', b'"lipsync-2", "x": 1e400'),
            valid.replace(b'"a"', b'"c"').replace(b'"lipsync-2"', b'"lipsync-2", "x": "\\udfff"'),
            BOM + valid.replace(b'"a"', b'"d"'),
        ]
    )
    response = await post_dry_run(api.client, data)
    body = check_answer(response)
    assert response.status_code == 400
    assert [error["line"] for error in body["errors"]] == [1, 2, 3, 4, 5]
    assert body["message"][:4] == [
        "line 1: request_id: must be valid Unicode text (a lone surrogate)",
        "line 2: request_id: must be valid Unicode text (a lone surrogate)",
        "line 3: payload.x: must be a finite number",
        "line 4: payload.x: must be valid Unicode text (a lone surrogate)",
    ]
    await assert_nothing_stored(api)
