"""Server-Sent Events: lines of a ``text/event-stream`` -> events, as the WHATWG HTML standard parses them.

Fields (``event``, ``data``, ``id``, ``retry``) accumulate until a blank line dispatches the event;
lines starting with ``:`` are comments (heartbeats); several ``data`` lines join with newlines; an event
without any ``data`` line is not dispatched; an unfinished event at the end of the stream is dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

DEFAULT_EVENT = "message"


@dataclass(frozen=True)
class ServerSentEvent:
    """One dispatched event; ``id`` is the last event id seen so far, ``retry`` the last reconnection time."""

    event: str = DEFAULT_EVENT
    data: str = ""
    id: str | None = None
    retry: int | None = None


class _Buffer:
    def __init__(self) -> None:
        self.event = ""
        self.data: list[str] = []
        self.last_id: str | None = None
        self.retry: int | None = None

    def field(self, name: str, value: str) -> None:
        if name == "event":
            self.event = value
        elif name == "data":
            self.data.append(value)
        elif name == "id" and "\0" not in value:
            self.last_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self.retry = int(value)

    def dispatch(self) -> ServerSentEvent | None:
        event = None
        if self.data:
            event = ServerSentEvent(
                self.event or DEFAULT_EVENT, "\n".join(self.data), self.last_id, self.retry
            )
        self.event, self.data = "", []
        return event


def iter_events(lines: Iterable[str]) -> Iterator[ServerSentEvent]:
    """The events of a stream given line by line (line ends stripped or not, e.g. httpx's ``iter_lines``)."""
    buffer = _Buffer()
    for number, raw in enumerate(lines):
        line = raw.rstrip("\r\n")
        if number == 0:
            line = line.removeprefix("\ufeff")
        if not line:
            if (event := buffer.dispatch()) is not None:
                yield event
            continue
        if line.startswith(":"):
            continue
        name, colon, value = line.partition(":")
        buffer.field(name, value[1:] if colon and value.startswith(" ") else value)
