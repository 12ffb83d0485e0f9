"""Structured logs: JSON lines (text on a terminal), the ids of the context, secrets redacted."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator

import pytest

from lipsync_api.observability.context import bound, context_with
from lipsync_api.observability.logs import (
    configure_logging,
    redact,
    register_secret,
    remove_handler,
)

Capture = Callable[..., io.StringIO]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def capture() -> Iterator[Capture]:
    """Route logging to a string buffer through ``configure_logging``; restore the root logger after."""
    root = logging.getLogger()
    level, handlers = root.level, []

    def start(fmt: str = "auto", stream: io.StringIO | None = None) -> io.StringIO:
        out = stream or io.StringIO()
        handlers.append(configure_logging("DEBUG", fmt, stream=out))  # type: ignore[arg-type]
        return out

    yield start
    for handler in handlers:
        remove_handler(handler)
    root.setLevel(level)


def lines(out: io.StringIO) -> list[dict[str, str]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_json_lines_carry_time_level_logger_message_and_ids(capture: Capture) -> None:
    out = capture()
    log = logging.getLogger("lipsync_api.test")
    log.info("plain %s", "line")
    with bound(request_id="req-1", batch_id="b-1"), bound(generation_id="g-1"):
        log.warning("inside")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed")
    plain, inside, failed = lines(out)
    assert (
        plain["message"] == "plain line"
        and plain["level"] == "INFO"
        and plain["logger"] == "lipsync_api.test"
    )
    assert plain["timestamp"].endswith("Z") and "request_id" not in plain
    assert (inside["request_id"], inside["batch_id"], inside["generation_id"]) == ("req-1", "b-1", "g-1")
    assert "ValueError: boom" in failed["exception"] and failed["level"] == "ERROR"


def test_a_task_context_names_its_generation(capture: Capture) -> None:
    out = capture()
    context = context_with({"generation_id": "g-9", "batch_id": None})
    context.run(logging.getLogger("lipsync_api.scheduler").info, "running")
    logging.getLogger("lipsync_api.scheduler").info("outside")
    running, outside = lines(out)
    assert running["generation_id"] == "g-9" and "batch_id" not in running
    assert "generation_id" not in outside


def test_a_terminal_gets_readable_text(capture: Capture) -> None:
    out = capture(stream=Terminal())
    with bound(request_id="abc"):
        logging.getLogger("lipsync_api.test").info("hello")
    line = out.getvalue().strip()
    assert not line.startswith("{")
    assert "INFO" in line and "lipsync_api.test: hello" in line and "request_id=abc" in line


def test_uvicorn_access_lines_go_through_the_same_handler_redacted(capture: Capture) -> None:
    out = capture("json")
    signed = "/v2/files/results/o/b.jsonl?expires=1800000000&signature=" + "ab" * 32
    access = logging.getLogger("uvicorn.access")
    access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", signed, "1.1", 200)
    (line,) = lines(out)
    assert line["logger"] == "uvicorn.access"
    assert "signature=[REDACTED]" in line["message"] and "ab" * 32 not in line["message"]
    assert "expires=1800000000" in line["message"]


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("GET /v2/files/x.mp4?expires=1&signature=0123456789abcdef HTTP/1.1", "0123456789abcdef"),
        ("https://bucket.s3/x?X-Amz-Credential=AKIAXYZ&X-Amz-Signature=feedbeef", "feedbeef"),
        ("https://bucket.s3/x?X-Amz-Credential=AKIAXYZ123&X-Amz-Signature=feedbeef", "AKIAXYZ123"),
        ("key lsk_AbCdEf0123456789_-xyz refused", "AbCdEf0123456789"),
        ("secret whsec_QWERTYuiop0123456789 in a message", "QWERTYuiop0123456789"),
        ("headers {'x-api-key': 'my-custom-key-123'}", "my-custom-key-123"),
        ("Authorization: Bearer tok.en.value", "tok.en.value"),
        ("Sync-Signature: t=1700000000,v1=" + "c" * 64, "c" * 64),
        ("callback https://hooks.example.com/x?token=s3cr3t-t0ken&a=1", "s3cr3t-t0ken"),
    ],
)
def test_redaction_hides_credentials(text: str, secret: str) -> None:
    cleaned = redact(text)
    assert secret not in cleaned and "[REDACTED]" in cleaned
    assert redact(cleaned) == cleaned


def test_redaction_keeps_ordinary_text() -> None:
    text = "missing x-api-key header; batch 5f0c ended COMPLETED after 3 attempts"
    assert redact(text) == text


def test_registered_secrets_are_redacted_everywhere(capture: Capture) -> None:
    out = capture("json")
    register_secret("configured-signing-secret-value-0123456789", "short")
    log = logging.getLogger("lipsync_api.test")
    try:
        raise RuntimeError("bad configured-signing-secret-value-0123456789")
    except RuntimeError:
        log.exception("failed with %s", "configured-signing-secret-value-0123456789")
    text = out.getvalue()
    assert "configured-signing-secret-value-0123456789" not in text and text.count("[REDACTED]") >= 2
    assert redact("short text") == "short text"  # too short to register: it would blank ordinary words


def test_configuring_again_replaces_the_handler(capture: Capture) -> None:
    first = capture("json")
    second = capture("json")
    logging.getLogger("lipsync_api.test").info("once")
    assert first.getvalue() == "" and len(lines(second)) == 1
