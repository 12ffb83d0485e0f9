"""ASGI middleware: a request id per HTTP request (echoed in ``X-Request-Id``), log ids, request metrics.

A client's own ``X-Request-Id`` is kept when it is sane (1-128 characters of ``[A-Za-z0-9._:-]``);
otherwise a fresh one is made. While the request runs, log lines carry the request id, and the batch or
generation id its path names. Requests are counted by the matched route's template (``unmatched`` when no
route matched), never by raw path, so ids never become labels.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lipsync_api.observability.context import bound
from lipsync_api.observability.metrics import UNMATCHED_ROUTE, Metrics

REQUEST_ID_HEADER = "x-request-id"
_HEADER = REQUEST_ID_HEADER.encode()
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
_BATCH_PATH = re.compile(r"^/v2/batch/([0-9A-Za-z-]{1,64})(?:/|$)")
_GENERATION_PATH = re.compile(r"^/v2/generate/([0-9A-Za-z-]{1,64})$")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def request_id_from(scope: Scope) -> str:
    """The client's ``X-Request-Id`` when it is sane, else a new one."""
    for name, value in scope.get("headers", ()):
        if name.lower() == _HEADER:
            text = bytes(value).decode("latin-1").strip()
            if _SANE_REQUEST_ID.fullmatch(text):
                return text
    return uuid.uuid4().hex


def route_template(scope: Scope) -> str:
    """The path template of the route that answered (``/v2/batch/{batch_id}``), or ``unmatched``."""
    route: Any = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    return template if isinstance(template, str) else UNMATCHED_ROUTE


def _path_ids(path: str) -> dict[str, str | None]:
    batch = _BATCH_PATH.match(path)
    generation = _GENERATION_PATH.match(path)
    return {
        "batch_id": batch.group(1) if batch else None,
        "generation_id": generation.group(1) if generation else None,
    }


class ObservabilityMiddleware:
    """Sets the request's log context, adds ``X-Request-Id`` to the answer, and counts the request."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(scope)
        status = 500  # an exception before the answer starts ends as a 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = [h for h in message.get("headers", []) if h[0].lower() != _HEADER]
                headers.append((_HEADER, request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            with bound(request_id=request_id, **_path_ids(scope.get("path", ""))):
                await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            method = scope.get("method", "")
            method = method if method in _METHODS else "other"  # a label never takes arbitrary client text
            self.metrics.observe_request(method, route_template(scope), status, elapsed)


def instrument(app: FastAPI, metrics: Metrics) -> None:
    """Wrap ``app``'s whole middleware stack, Starlette's error middleware included, in the middleware.

    ``add_middleware`` would put it inside the error middleware, which answers (and logs) a crash after
    the request's context is gone: the 500 would carry no ``X-Request-Id`` and its log line no request id.
    """
    build = app.build_middleware_stack

    def build_outermost() -> ASGIApp:
        return ObservabilityMiddleware(build(), metrics)

    app.build_middleware_stack = build_outermost  # type: ignore[method-assign]
