"""Batch file reading (domain/batchfile.py) with a stand-in payload validator."""

from __future__ import annotations

import json
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from lipsync_api.domain.batchfile import MAX_PROBLEMS, LineProblem, error_body, parse_batch_file


@dataclass(frozen=True)
class Problem:
    field: str
    message: str


def validate(payload: object) -> tuple[dict[str, object] | None, list[Problem]]:
    """Accepts objects with a string "model"; anything else gets one problem."""
    if not isinstance(payload, dict):
        return None, [Problem("", "must be an object")]
    if not isinstance(payload.get("model"), str):
        return None, [Problem("model", "required")]
    return payload, []


def line(request_id: object = "r1", endpoint: object = "/v2/generate", **payload: object) -> str:
    return json.dumps({"request_id": request_id, "endpoint": endpoint, "payload": payload or {"model": "m"}})


def read(text: str | bytes, max_requests: int = 1000):  # type: ignore[no-untyped-def]
    data = text.encode() if isinstance(text, str) else text
    return parse_batch_file(data, validate, max_requests=max_requests)


def messages(text: str | bytes, **kwargs: int) -> list[str]:
    return [p.describe() for p in read(text, **kwargs).problems]


def test_valid_file_keeps_input_order_and_line_numbers() -> None:
    result = read("\n".join([line("a"), "", line("b"), line("c")]) + "\n")
    assert result.ok
    assert [(x.line, x.request_id) for x in result.lines] == [(1, "a"), (3, "b"), (4, "c")]
    assert result.lines[0].payload == {"model": "m"}


def test_bom_and_crlf_are_accepted() -> None:
    data = b"\xef\xbb\xbf" + (line("a") + "\r\n" + line("b") + "\r\n").encode()
    result = read(data)
    assert result.ok and [x.request_id for x in result.lines] == ["a", "b"]


def test_duplicate_request_id_names_both_lines() -> None:
    assert messages("\n".join([line("a"), line("b"), line("a")])) == [
        "line 3: request_id: 'a' duplicates line 1"
    ]


def test_every_problem_is_reported_with_its_line() -> None:
    text = "\n".join(
        [line("ok"), "{not json", "[1, 2]", line(None), line("x", endpoint="/v2/other"), line("y", model=3)]
    )
    result = read(text)
    assert not result.ok and result.lines == ()
    described = [p.describe() for p in result.problems]
    assert described[0].startswith("line 2: not valid JSON")
    assert described[1] == "line 3: expected a JSON object, got an array"
    assert described[2] == "line 4: request_id: missing"
    assert described[3] == "line 5: endpoint: '/v2/other' is not supported; it must be '/v2/generate'"
    assert described[4] == "line 6: payload.model: required"
    assert result.problems[4] == LineProblem(6, "y", "payload.model", "required")


def test_missing_payload_and_endpoint() -> None:
    text = json.dumps({"request_id": "a"})
    assert messages(text) == [
        "line 1: endpoint: missing; it must be '/v2/generate'",
        "line 1: payload: missing",
    ]


def test_request_id_must_be_a_non_empty_short_string() -> None:
    assert messages(line(7)) == ["line 1: request_id: must be a non-empty string, got a number"]
    assert messages(line("  ")) == ["line 1: request_id: must be a non-empty string, got a string"]
    assert messages(line("x" * 256)) == ["line 1: request_id: longer than 255 characters"]


def test_invalid_utf8_nul_and_constants_are_line_problems() -> None:
    data = line("a").encode() + b"\n\xff\xfe\n" + b'{"a": "\x00"}\n' + b'{"request_id": NaN}'
    assert messages(data) == [
        "line 2: not valid UTF-8 (at byte 0 of the line)",
        "line 3: contains a NUL byte",
        "line 4: not valid JSON: NaN is not valid JSON",
    ]


def test_deep_nesting_is_a_problem_not_a_crash() -> None:
    deep = "[" * 100_000 + "]" * 100_000
    assert messages(deep) == ["line 1: not valid JSON: nested too deeply"]


def test_empty_file_and_blank_lines_only() -> None:
    assert messages("") == ["the file contains no requests"]
    assert messages("\n \r\n\n") == ["the file contains no requests"]


def test_too_many_requests_is_reported_once_at_the_first_extra_line() -> None:
    text = "\n".join(line(f"r{i}") for i in range(5))
    assert messages(text, max_requests=3) == ["line 4: more than 3 requests (the limit)"]


def test_error_body_has_the_api_shape() -> None:
    problems = read("\n".join([line("a"), line("a")])).problems
    body = error_body(problems)
    assert body["statusCode"] == 400
    assert body["message"] == ["line 2: request_id: 'a' duplicates line 1"]
    assert body["errors"] == [
        {"line": 2, "request_id": "a", "field": "request_id", "message": "'a' duplicates line 1"}
    ]


def test_a_request_id_with_a_lone_surrogate_is_refused() -> None:
    # json.dumps writes '\ud800' as an escape and json.loads reads it back as a lone surrogate, which
    # could be neither stored nor sent back: the 400 body naming the duplicate failed to encode (a 500).
    result = read("\n".join([line("a"), line("\ud800"), line("\ud800")]))
    assert [p.describe() for p in result.problems] == [
        "line 2: request_id: must be valid Unicode text (a lone surrogate)",
        "line 3: request_id: must be valid Unicode text (a lone surrogate)",
    ]
    json.dumps(error_body(result.problems), ensure_ascii=False).encode("utf-8")


def test_an_odd_endpoint_is_named_briefly() -> None:
    assert messages(line("a", endpoint=["/v2/generate"] * 100)) == [
        "line 1: endpoint: got an array; it must be '/v2/generate'"
    ]
    long = messages(line("a", endpoint="/v2/" + "x" * 5000))
    assert long == [f"line 1: endpoint: '/v2/{'x' * 53}...' is not supported; it must be '/v2/generate'"]


def test_a_number_with_too_many_digits_is_named_plainly() -> None:
    assert messages('{"request_id": ' + "9" * 5000 + "}") == [
        "line 1: not valid JSON: a number has too many digits"
    ]


def test_problems_stop_being_listed_past_the_cap() -> None:
    # A 5 MB file of broken lines used to give ~2.6 million problems: seconds of CPU, a 400 MB answer.
    result = read(b"x\n" * (MAX_PROBLEMS + 500))
    described = [p.describe() for p in result.problems]
    assert len(described) == MAX_PROBLEMS + 1
    assert described[MAX_PROBLEMS - 1].startswith(f"line {MAX_PROBLEMS}: not valid JSON")
    assert described[-1] == (
        f"only the first {MAX_PROBLEMS} problems are listed; lines after {MAX_PROBLEMS + 1} were not read"
    )


def test_exactly_the_cap_of_problems_are_all_listed() -> None:
    described = messages(b"x\n" * MAX_PROBLEMS)
    assert len(described) == MAX_PROBLEMS and described[-1].startswith(f"line {MAX_PROBLEMS}: ")


def test_a_validator_that_refuses_without_a_reason_does_not_drop_the_line() -> None:
    result = parse_batch_file(line("a").encode(), lambda _payload: (None, []), max_requests=10)
    assert [p.describe() for p in result.problems] == ["line 1: payload: invalid"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(json_values.map(json.dumps), st.binary(max_size=40).map(repr), st.just("")), max_size=8
    )
)
def test_any_lines_give_a_result_or_numbered_problems(lines: list[str]) -> None:
    result = read("\n".join(lines))
    assert result.ok == (not result.problems)
    for problem in result.problems:
        assert isinstance(problem.message, str) and problem.message
        assert problem.line is None or 1 <= problem.line <= len(lines) + 1


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    result = read(data)
    assert result.ok or all(p.describe() for p in result.problems)
