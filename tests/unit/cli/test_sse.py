"""The Server-Sent Events parser (client/sse.py), against the WHATWG rules it follows."""

from __future__ import annotations

import httpx

from lipsync_api.client.sse import ServerSentEvent, iter_events


def events(text: str) -> list[ServerSentEvent]:
    return list(iter_events(text.splitlines()))


def test_named_events_with_data_and_ids() -> None:
    stream = 'id: 1\nevent: metrics\ndata: {"a":1}\n\nid: 2\nevent: end\ndata: {"a":2}\n\n'
    assert events(stream) == [
        ServerSentEvent("metrics", '{"a":1}', "1"),
        ServerSentEvent("end", '{"a":2}', "2"),
    ]


def test_comments_are_heartbeats_and_dispatch_nothing() -> None:
    assert events(": keep-alive\n\n: keep-alive\n\n") == []
    assert events(": keep-alive\n\nevent: metrics\n: mid-event comment\ndata: x\n\n") == [
        ServerSentEvent("metrics", "x")
    ]


def test_several_data_lines_join_with_newlines_and_one_leading_space_is_dropped() -> None:
    assert events("data: first\ndata:second\ndata:  third\n\n") == [
        ServerSentEvent("message", "first\nsecond\n third")
    ]


def test_an_event_without_data_is_not_dispatched_and_its_name_does_not_leak() -> None:
    assert events("event: metrics\n\ndata: plain\n\n") == [ServerSentEvent("message", "plain")]


def test_an_empty_data_field_still_dispatches() -> None:
    assert events("event: ping\ndata\n\n") == [ServerSentEvent("ping", "")]


def test_an_unfinished_event_at_the_end_is_dropped() -> None:
    assert events("event: metrics\ndata: complete\n\nevent: end\ndata: cut off") == [
        ServerSentEvent("metrics", "complete")
    ]


def test_crlf_and_cr_line_ends_and_a_bom() -> None:
    raw = "\ufeffevent: metrics\r\ndata: a\r\n\r\n"
    assert list(iter_events(raw.splitlines(keepends=True))) == [ServerSentEvent("metrics", "a")]


def test_id_persists_retry_is_read_and_unknown_fields_are_ignored() -> None:
    stream = "id: 7\nretry: 1500\nfoo: bar\ndata: a\n\ndata: b\n\nretry: soon\nid: bad\0id\ndata: c\n\n"
    assert events(stream) == [
        ServerSentEvent("message", "a", "7", 1500),
        ServerSentEvent("message", "b", "7", 1500),
        ServerSentEvent("message", "c", "7", 1500),
    ]


def test_a_field_without_colon_is_a_field_with_an_empty_value() -> None:
    assert events("event\ndata: x\n\n") == [ServerSentEvent("message", "x")]


def test_reads_an_httpx_stream_split_across_chunks() -> None:
    chunks = [
        b"event: met",
        b'rics\ndata: {"status"',
        b': "PROCESSING"}\n',
        b"\n: hb\n\nevent: end\r\n",
        b"data: {}\r\n\r\n",
    ]
    response = httpx.Response(200, content=iter(chunks), headers={"content-type": "text/event-stream"})
    assert list(iter_events(response.iter_lines())) == [
        ServerSentEvent("metrics", '{"status": "PROCESSING"}'),
        ServerSentEvent("end", "{}"),
    ]
