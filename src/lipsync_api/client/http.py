"""Requests to a lipsync-api (or sync.so) server: base URL, ``x-api-key``, error bodies as exceptions."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

import httpx

from lipsync_api.errors import LipsyncError

CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 120.0  # an upload or a dry run's media probes may take a while


class ApiError(LipsyncError):
    """The server answered with an error body: its HTTP status, ``errorCode`` and every message."""

    def __init__(self, status: int, messages: list[str], error_code: str | None = None) -> None:
        super().__init__("; ".join(messages), error_code=error_code)
        self.status_code = status
        self.messages = messages


class ServerUnreachable(LipsyncError):
    """No answer from the server: refused, unknown host, timed out, or the connection broke."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"cannot reach the server at {url}: {reason}")
        self.url = url


def path_part(value: str) -> str:
    """An id made safe to put in a URL path."""
    return quote(value, safe="")


def error_from(response: httpx.Response) -> ApiError:
    """The API error body (``{"statusCode", "message", "errorCode"}``) of a failed response."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        text = response.text.strip()[:300] or response.reason_phrase
        return ApiError(response.status_code, [text])
    message = body.get("message", body.get("detail", response.reason_phrase))
    messages = [str(m) for m in message] if isinstance(message, list) else [str(message)]
    code = body.get("errorCode")
    return ApiError(response.status_code, messages or [response.reason_phrase], str(code) if code else None)


def _reason(error: httpx.TransportError) -> str:
    if isinstance(error, httpx.ConnectError):
        text = str(error).lower()
        if "refused" in text:
            return "connection refused"
        return f"cannot connect ({error})" if str(error) else "cannot connect"
    if isinstance(error, httpx.TimeoutException):
        return "timed out"
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


class ApiClient:
    """One server and one key; every method raises ApiError or ServerUnreachable instead of returning one."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        timeout: float = READ_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"x-api-key": api_key} if api_key else {}
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=CONNECT_TIMEOUT),
            transport=transport,
        )

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The successful (2xx) response of one request."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as error:
            raise ServerUnreachable(self.base_url, _reason(error)) from None
        if response.is_error:
            raise error_from(response)
        return response

    def get_json(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """GET ``path`` and decode its JSON."""
        return self._json(self.request("GET", path, params=params))

    def post_json(self, path: str, **kwargs: Any) -> Any:
        """POST to ``path`` (``json=``, ``data=``, ``files=``) and decode the JSON answer."""
        return self._json(self.request("POST", path, **kwargs))

    @contextmanager
    def stream(self, method: str, path: str, **kwargs: Any) -> Iterator[httpx.Response]:
        """A streamed response, whatever its status (the caller decides); transport errors propagate."""
        with self._http.stream(method, path, **kwargs) as response:
            yield response

    def _json(self, response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            raise ApiError(response.status_code, ["the server's answer is not JSON"]) from None
