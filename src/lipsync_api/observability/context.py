"""The ids a log line carries (request, batch, generation), held in context variables.

The HTTP middleware sets the request id (and the batch or generation id a path names); the scheduler runs
each generation in a context of its own, so every line logged while it runs names it.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
batch_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("batch_id", default=None)
generation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("generation_id", default=None)

_VARS: dict[str, contextvars.ContextVar[str | None]] = {
    "request_id": request_id,
    "batch_id": batch_id,
    "generation_id": generation_id,
}


def current_ids() -> dict[str, str]:
    """The ids known here, by name (only those that are set)."""
    return {name: value for name, var in _VARS.items() if (value := var.get()) is not None}


@contextmanager
def bound(**ids: str | None) -> Iterator[None]:
    """Set the given ids (``request_id``, ``batch_id``, ``generation_id``) for the block; None leaves one."""
    tokens = [(_VARS[name], _VARS[name].set(value)) for name, value in ids.items() if value is not None]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def context_with(ids: Mapping[str, str | None]) -> contextvars.Context:
    """A copy of the current context with ``ids`` set (for ``asyncio.create_task(..., context=...)``)."""
    context = contextvars.copy_context()
    for name, value in ids.items():
        if value is not None:
            context.run(_VARS[name].set, value)
    return context
