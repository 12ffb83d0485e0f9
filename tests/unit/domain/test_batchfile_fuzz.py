"""Adversarial batch files against the real validator (``parse_batch_file`` + ``validate_payload``).

Files are built line by line from known-valid lines and known-broken ones (every level of a request:
request_id, endpoint, each payload field, raw bytes, NUL, invalid UTF-8, lone surrogates, 1e400, NaN,
deep nesting, stray BOMs and CRs), so the expected outcome is known without asking the validator: a file
is accepted exactly when every non-blank line was built valid and the request cap holds, and otherwise
every broken line (and only those, plus the first line past the cap) is named by number.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lipsync_api.domain.batchfile import MAX_REQUEST_ID, BatchFile, error_body, parse_batch_file
from lipsync_api.domain.generation_service import ValidPayload, validate_payload
from tests.unit.api.factories import segmented_payload, simple_payload, valid_payloads
from tests.unit.api.test_parse_properties import mutated_payloads

BOM = b"\xef\xbb\xbf"
ENDPOINT = "/v2/generate"
RAW = "__raw_json_value__"  # a placeholder string replaced by raw JSON text after json.dumps

# --- what a line is built from ---------------------------------------------------------------------------


@dataclass
class Line:
    """One line of a file being built; ``valid`` is the oracle (None: blank, skipped by the reader)."""

    raw: bytes
    valid: bool | None
    request_id: str | None = None
    payload: dict[str, Any] | None = None
    duplicate_of: str | None = None  # for a duplicate line: the request_id it repeats


@dataclass
class Built:
    """A whole file and what the oracle expects of it."""

    data: bytes
    lines: list[Line]
    max_requests: int
    numbers: list[int] = field(default_factory=list)  # each Line's 1-based line number in ``data``


def dumps(entry: object, raw: str | None = None, ascii_only: bool = True) -> bytes:
    """``entry`` as one JSON line; the ``RAW`` placeholder (once) becomes the raw JSON text ``raw``."""
    text = json.dumps(entry, ensure_ascii=ascii_only)
    if raw is not None:
        assert text.count(json.dumps(RAW)) == 1
        text = text.replace(json.dumps(RAW), raw)
    return text.encode("utf-8")


request_ids = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)


@st.composite
def valid_payload(draw: st.DrawFn) -> dict[str, Any]:
    """A valid payload, sometimes with harmless extras (unknown keys, long strings, unicode)."""
    payload = draw(st.sampled_from(valid_payloads()))
    if draw(st.booleans()):
        extra = st.one_of(
            st.text(st.characters(blacklist_categories=("Cs",)), max_size=30),
            st.integers(-(10**30), 10**30),
            st.floats(allow_nan=False, allow_infinity=False),
            st.just("x" * 3000),  # a long line
            st.none(),
        )
        payload["x-extra"] = draw(extra)
    return payload


@st.composite
def valid_lines(draw: st.DrawFn, request_id: str) -> Line:
    """A valid line, with JSON whitespace around it sometimes (still valid)."""
    payload = draw(valid_payload())
    entry = {"request_id": request_id, "endpoint": ENDPOINT, "payload": payload}
    if draw(st.booleans()):
        entry = {"payload": payload, "endpoint": ENDPOINT, "request_id": request_id}
    raw = dumps(entry, ascii_only=draw(st.booleans()))
    raw = draw(st.sampled_from([b"", b" ", b"\t"])) + raw + draw(st.sampled_from([b"", b" ", b"\r"]))
    return Line(raw, True, request_id, copy.deepcopy(payload))


# A (path, value) that makes a valid payload invalid, at every level of CreateGenerationDto.
BAD_SIMPLE: list[tuple[tuple[Any, ...], Any]] = [
    (("model",), 3),
    (("model",), None),
    (("model",), ""),
    (("model",), ["lipsync-2"]),
    (("model",), "m" * 101),
    (("input",), "x"),
    (("input",), {}),
    (("input",), []),
    (("input",), [1]),
    (("input", 0, "type"), "image"),
    (("input", 0, "type"), None),
    (("input", 0, "url"), "ftp://h/v.mp4"),
    (("input", 0, "url"), 5),
    (("input", 0, "url"), ""),
    (("input", 0), {"type": "video"}),
    (("input", 1), {"type": "audio", "assetId": "a1", "url": "https://h/a.wav"}),  # not both
    (("input", 1), {"type": "text", "provider": {"name": "x"}}),
    (("input", 1), {"type": "video", "url": "https://h/v2.mp4"}),
    (("input", 0, "segments_secs"), [[0, 1]]),
    (("options",), []),
    (("options",), "fast"),
    (("options",), {"temperature": 2}),
    (("options",), {"temperature": "0.5"}),
    (("options",), {"temperature": True}),
    (("options",), {"sync_mode": "nope"}),
    (("options",), {"sync_mode": 1}),
    (("options",), {"occlusion_detection_enabled": 1}),
    (("options",), {"active_speaker_detection": []}),
    (("options",), {"active_speaker_detection": {"frame_number": -1}}),
    (("options",), {"active_speaker_detection": {"frame_number": 1.5}}),
    (("options",), {"active_speaker_detection": {"auto_detect": "yes"}}),
    (("options",), {"active_speaker_detection": {"coordinates": [1]}}),
    (("options",), {"active_speaker_detection": {"coordinates": [1, "2"]}}),
    (("options",), {"active_speaker_detection": {"bounding_boxes": [[3, 3, 1, 1]]}}),
    (("options",), {"active_speaker_detection": {"bounding_boxes": "x"}}),
    (("segments",), {}),
    (("segments",), [1]),
    (("segments",), [{"startTime": 0, "endTime": 1, "audioInput": {"refId": "a1"}}]),  # no refIds
    (("webhookUrl",), "ftp://hooks.example.com/x"),
    (("webhookUrl",), 5),
    (("webhookUrl",), "https://"),
    (("outputFileName",), "a b"),
    (("outputFileName",), ""),
    (("outputFileName",), "x" * 256),
    (("outputFileName",), 7),
]
BAD_SEGMENTED: list[tuple[tuple[Any, ...], Any]] = [
    (("segments", 0, "startTime"), -1),
    (("segments", 0, "startTime"), "0"),
    (("segments", 0, "endTime"), 0),
    (("segments", 0, "endTime"), None),
    (("segments", 0, "audioInput"), None),
    (("segments", 0, "audioInput", "refId"), "zz"),
    (("segments", 0, "audioInput", "refId"), ""),
    (("segments", 0, "audioInput", "startTime"), 1),
    (("segments", 1, "audioInput", "endTime"), 0.5),
    (("segments", 1, "startTime"), 1),  # overlaps segment 0
    (("input", 2, "refId"), "a1"),  # duplicate refId
    (("input", 1, "refId"), None),
]
# Raw JSON text that json.dumps cannot write: put in place of one value of a valid payload or line.
RAW_VALUES = [
    "1e400",
    "-1e400",
    "NaN",
    "Infinity",
    "-Infinity",
    '"\\ud800"',
    '"\\udfff\\ud800"',
    '"a\\ud83d"',
    "[" * 600 + "]" * 600,
    "[" * 10_000 + "]" * 10_000,
    '{"a":' * 600 + "1" + "}" * 600,
    "1" + "0" * 5000,
]


def _set(payload: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    node: Any = payload
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


@st.composite
def bad_payload_lines(draw: st.DrawFn, request_id: str) -> Line:
    """A line whose payload is wrong at one place (or missing, or not an object)."""
    kind = draw(st.sampled_from(["simple", "segmented", "raw", "not_object", "missing"]))
    entry: dict[str, Any] = {"request_id": request_id, "endpoint": ENDPOINT}
    raw = None
    if kind == "simple":
        payload = simple_payload()
        path, value = draw(st.sampled_from(BAD_SIMPLE))
        _set(payload, path, copy.deepcopy(value))
        entry["payload"] = payload
    elif kind == "segmented":
        payload = segmented_payload()
        path, value = draw(st.sampled_from(BAD_SEGMENTED))
        _set(payload, path, copy.deepcopy(value))
        entry["payload"] = payload
    elif kind == "raw":
        # A value json.dumps cannot write, anywhere: a checked field or a key the schema ignores.
        payload = draw(st.sampled_from(valid_payloads()))
        slot = draw(
            st.sampled_from(
                [("x-extra",), ("model",), ("webhookUrl",), ("input", 0, "url"), ("input", 1, "x-extra")]
            )
        )
        _set(payload, slot, RAW)
        entry["payload"] = payload
        raw = draw(st.sampled_from(RAW_VALUES))
    elif kind == "not_object":
        entry["payload"] = draw(st.sampled_from([None, [], "x", 1, True, [simple_payload()]]))
    return Line(dumps(entry, raw), False, request_id)


@st.composite
def bad_envelope_lines(draw: st.DrawFn, request_id: str) -> Line:
    """A line with a valid payload but a wrong request_id or endpoint."""
    payload = simple_payload()
    entry: dict[str, Any] = {"request_id": request_id, "endpoint": ENDPOINT, "payload": payload}
    raw = None
    what = draw(st.sampled_from(["request_id", "endpoint"]))
    bad_ids = [None, 7, 1.5, True, [], {}, ["a"], "", "   ", "\t", "x" * (MAX_REQUEST_ID + 1), RAW]
    bad_endpoints = [None, "", "/v2/generate/", "/V2/GENERATE", "/v2/batch", 1, ["/v2/generate"], RAW]
    bad_endpoints.append("/v2/" + "x" * 5000)
    value = draw(st.sampled_from(bad_ids if what == "request_id" else bad_endpoints))
    if value is None and draw(st.booleans()):
        del entry[what]
    else:
        entry[what] = value
    if value == RAW:
        raw = draw(st.sampled_from(['"\\ud800"', '"\\udc00x"', "NaN", "1e400", "[" * 10_000 + "]" * 10_000]))
    return Line(dumps(entry, raw), False)


def _not_blank(raw: bytes) -> bool:
    return bool(raw.removeprefix(BOM).strip())


@st.composite
def garbage_lines(draw: st.DrawFn) -> Line:
    """A line that is not a JSON object at all, or a valid line broken at the byte level."""
    good = dumps({"request_id": "g", "endpoint": ENDPOINT, "payload": simple_payload()})
    kind = draw(
        st.sampled_from(
            ["bytes", "truncated", "nul", "utf8", "not_object", "cr_joined", "deep", "long", "constant"]
        )
    )
    if kind == "bytes":
        raw = draw(st.binary(min_size=1, max_size=60).map(lambda b: b.replace(b"\n", b"")).filter(_not_blank))
    elif kind == "truncated":
        raw = good[: draw(st.integers(1, len(good) - 1))]
    elif kind == "nul":
        at = draw(st.integers(0, len(good)))
        raw = good[:at] + b"\x00" + good[at:]
    elif kind == "utf8":
        at = draw(st.integers(0, len(good)))
        raw = (
            good[:at]
            + draw(st.sampled_from([b"\xff", b"\xc3(", b"\xed\xa0\x80", b"\xe2\x82", b"\x80"]))
            + good[at:]
        )
    elif kind == "not_object":
        raw = draw(st.sampled_from([b"[]", b"1", b'"text"', b"null", b"true", b"[" + good + b"]"]))
    elif kind == "cr_joined":  # two requests with a CR-only line end between them: one broken line
        raw = good + b"\r" + good.replace(b'"g"', b'"h"')
    elif kind == "deep":
        raw = b"[" * 10_000 + b"]" * 10_000
    elif kind == "long":
        raw = b'{"request_id": "' + b"y" * 20_000 + b'"'
    else:
        raw = draw(st.sampled_from([b"NaN", b"Infinity", b'{"request_id": -Infinity}', b"1e400"]))
    return Line(raw, False)


blank_lines = st.sampled_from([b"", b" ", b"\t", b"\r", b" \t \r", b"\x0c"]).map(lambda raw: Line(raw, None))


ANY_KIND = ["valid", "valid", "valid", "payload", "envelope", "garbage", "blank", "dup", "bom"]
VALID_KIND = ["valid", "valid", "valid", "blank"]


@st.composite
def batch_files(draw: st.DrawFn, max_lines: int = 14) -> Built:
    """A file of valid, broken, blank and duplicate lines; what the validator should say is known."""
    lines: list[Line] = []
    file_bom = draw(st.booleans())
    kinds = draw(st.sampled_from([ANY_KIND, ANY_KIND, VALID_KIND]))  # a third of the files are meant valid
    for index in range(draw(st.integers(0, max_lines))):
        kind = draw(st.sampled_from(kinds))
        valid_ids = [line.request_id for line in lines if line.valid and line.request_id]
        if kind == "dup" and valid_ids:
            repeated = draw(st.sampled_from(valid_ids))
            line = draw(valid_lines(repeated))
            lines.append(Line(line.raw, False, repeated, duplicate_of=repeated))
            continue
        request_id = f"{draw(request_ids)}#{index}"  # unique: the text after the last '#' differs
        if kind in ("valid", "dup"):
            lines.append(draw(valid_lines(request_id)))
        elif kind == "payload":
            lines.append(draw(bad_payload_lines(request_id)))
        elif kind == "envelope":
            lines.append(draw(bad_envelope_lines(request_id)))
        elif kind == "garbage":
            lines.append(draw(garbage_lines()))
        elif kind == "blank":
            lines.append(draw(blank_lines))
        else:  # a BOM starting a line: accepted only as the file's first bytes (a second one is stray)
            line = draw(valid_lines(request_id))
            lines.append(Line(BOM + line.raw, index == 0 and not file_bom, request_id, line.payload))
    data = BOM if file_bom else b""
    numbers = []
    for number, line in enumerate(lines, start=1):
        numbers.append(number)
        data += line.raw
        if number < len(lines) or draw(st.booleans()):
            data += draw(st.sampled_from([b"\n", b"\n", b"\r\n"]))
    max_requests = draw(st.integers(1, max_lines + 2))
    return Built(data, lines, max_requests, numbers)


def read(built: Built) -> BatchFile[ValidPayload]:
    return parse_batch_file(built.data, validate_payload, max_requests=built.max_requests)


def assert_renderable(body: object) -> None:
    """What the API would send: strict JSON (no NaN/Infinity) encodable as UTF-8 (no lone surrogates)."""
    json.dumps(body, ensure_ascii=False, allow_nan=False).encode("utf-8")


def check_against_oracle(built: Built, result: BatchFile[ValidPayload]) -> None:
    requests = [
        (n, line) for n, line in zip(built.numbers, built.lines, strict=True) if line.valid is not None
    ]
    over_cap = len(requests) > built.max_requests
    broken = {n for n, line in requests if not line.valid}
    if not requests:
        assert [p.describe() for p in result.problems] == ["the file contains no requests"]
        return
    if not broken and not over_cap:
        assert result.ok, [p.describe() for p in result.problems]
        expected = [(n, line.request_id, line.payload) for n, line in requests]
        assert [(x.line, x.request_id, x.payload.body) for x in result.lines] == expected
        for accepted in result.lines:
            assert_renderable(accepted.payload.body)
        return
    assert not result.ok and result.lines == ()
    named = {p.line for p in result.problems}
    cap_line = {requests[built.max_requests][0]} if over_cap else set()
    assert named == broken | cap_line, [p.describe() for p in result.problems]
    for number, line in requests:
        if line.duplicate_of is not None:
            first = next(n for n, x in requests if x.valid and x.request_id == line.duplicate_of)
            dup = [p for p in result.problems if p.line == number and p.field == "request_id"]
            assert [p.message for p in dup] == [f"{line.duplicate_of!r} duplicates line {first}"]
            assert dup[0].request_id == line.duplicate_of
            assert f"line {number}: " in dup[0].describe() and f"line {first}" in dup[0].describe()


def check_shape(data: bytes, result: BatchFile[ValidPayload]) -> None:
    """What holds for any input: numbered problems on existing lines, in the API's message form."""
    last_line = data.count(b"\n") + 1
    assert result.ok == (not result.problems)
    if result.ok:
        numbers = [x.line for x in result.lines]
        assert numbers == sorted(set(numbers)) and all(1 <= n <= last_line for n in numbers)
        return
    assert result.lines == ()
    for problem in result.problems:
        assert isinstance(problem.message, str) and problem.message
        if problem.line is not None:
            assert 1 <= problem.line <= last_line
            assert problem.describe().startswith(f"line {problem.line}: ")
    body = error_body(result.problems)
    assert_renderable(body)
    assert all(isinstance(m, str) for m in body["message"])  # type: ignore[union-attr]


FAST = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(batch_files())
def test_files_of_known_lines_are_judged_as_the_oracle_says(built: Built) -> None:
    result = read(built)
    check_shape(built.data, result)
    check_against_oracle(built, result)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(mutated_payloads(), st.sampled_from(valid_payloads())), min_size=1, max_size=6))
def test_mutated_payloads_are_accepted_exactly_when_each_one_is_valid(payloads: list[Any]) -> None:
    data = b"\n".join(
        dumps({"request_id": f"r{i}", "endpoint": ENDPOINT, "payload": p}) for i, p in enumerate(payloads)
    )
    result = parse_batch_file(data, validate_payload, max_requests=1000)
    check_shape(data, result)
    verdicts = [validate_payload(copy.deepcopy(p)) for p in payloads]
    if all(payload is not None for payload, _ in verdicts):
        assert [(x.line, x.request_id, x.payload.body) for x in result.lines] == [
            (i + 1, f"r{i}", p) for i, p in enumerate(payloads)
        ]
    else:
        bad = {i + 1 for i, (payload, _) in enumerate(verdicts) if payload is None}
        assert {p.line for p in result.problems} == bad


@FAST
@given(
    st.lists(
        st.binary(max_size=80) | st.sampled_from([BOM, b"\r", b"\x00", b"\\ud800", b"1e400"]), max_size=10
    )
)
def test_arbitrary_bytes_give_numbered_renderable_problems(chunks: list[bytes]) -> None:
    data = b"".join(chunks)
    check_shape(data, parse_batch_file(data, validate_payload, max_requests=5))
