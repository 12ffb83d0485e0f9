"""Bring an input to a local file: download a URL within size, time, redirect and address limits."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

import httpcore
import httpx

from lipsync_api.engine.request import FetchLimits
from lipsync_api.errors import ErrorCode, GenerationError
from lipsync_api.netguard import (
    BlockedAddressError,
    GuardedBackend,
    GuardedTransport,
    Resolver,
    system_resolver,
)

_HTTP_SCHEMES = ("http", "https")
_CHUNK_BYTES = 64 * 1024
_MB = 1024 * 1024
_MAX_URL_IN_MESSAGE = 200


class FetchFailure(Exception):
    """A reason a download failed, before it is turned into a GenerationError naming the URL."""

    def __init__(self, reason: str, *, transient: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.transient = transient


_DIALER: httpcore.NetworkBackend = httpcore.SyncBackend()


# --- download --------------------------------------------------------------------------------------------


def fetch_input(
    source: str,
    dest_dir: Path,
    limits: FetchLimits,
    *,
    allow_local: bool,
    resolver: Resolver = system_resolver,
) -> Path:
    """A local file holding ``source`` (a downloaded copy of a URL, or the allowed local path itself)."""
    try:
        scheme = urlsplit(source).scheme
    except ValueError:
        raise _error(source, None, FetchFailure("invalid URL")) from None
    if scheme in _HTTP_SCHEMES:
        return _download(source, dest_dir, limits, resolver)
    if scheme in ("", "file"):
        return _local_file(source, allow_local)
    raise _error(source, None, FetchFailure(f"unsupported URL scheme '{scheme}'"))


def _local_file(source: str, allow_local: bool) -> Path:
    if not allow_local:
        raise _error(source, None, FetchFailure("local paths are not allowed"))
    parts = urlsplit(source)
    if parts.scheme == "file" and parts.netloc not in ("", "localhost"):
        raise _error(source, None, FetchFailure(f"file URL on a remote host '{parts.netloc}'"))
    path = Path(unquote(parts.path) if parts.scheme == "file" else source).resolve()
    if not path.exists():
        raise _error(source, None, FetchFailure("no such file"))
    if not path.is_file():
        raise _error(source, None, FetchFailure("not a regular file"))
    return path


def _download(url: str, dest_dir: Path, limits: FetchLimits, resolver: Resolver) -> Path:
    current = url
    try:
        with _client(limits, resolver) as client:
            for _ in range(limits.max_redirects + 1):
                with client.stream("GET", current) as response:
                    if not response.is_redirect:
                        return _save(response, dest_dir, limits.max_bytes)
                    current = _redirect_target(response)
            raise FetchFailure(f"too many redirects (max {limits.max_redirects})")
    except BlockedAddressError as exc:
        raise _error(url, current, FetchFailure(exc.reason)) from exc
    except (FetchFailure, httpx.HTTPError, httpx.InvalidURL) as exc:
        failure = exc if isinstance(exc, FetchFailure) else _describe(exc, limits)
        raise _error(url, current, failure) from exc


def _client(limits: FetchLimits, resolver: Resolver) -> httpx.Client:
    backend = GuardedBackend(resolver, _DIALER, guard=not limits.allow_private_addresses)
    # httpx's read timeout bounds each wait for data, not the whole download: a slow steady host is fine.
    timeout = httpx.Timeout(
        connect=limits.connect_timeout,
        read=limits.read_timeout,
        write=limits.read_timeout,
        pool=limits.connect_timeout,
    )
    return httpx.Client(
        transport=GuardedTransport(backend),
        timeout=timeout,
        follow_redirects=False,  # followed by hand so each hop is counted and its host guarded
        trust_env=False,  # an environment proxy would connect on our behalf, past the guard
        headers={"Accept-Encoding": "identity"},  # so Content-Length is the size that lands on disk
    )


def _redirect_target(response: httpx.Response) -> str:
    target = response.url.join(response.headers["Location"])
    if target.scheme not in _HTTP_SCHEMES:
        raise FetchFailure(f"redirect to unsupported URL scheme '{target.scheme}'")
    return str(target)


def _save(response: httpx.Response, dest_dir: Path, max_bytes: int) -> Path:
    _check_status(response)
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(max_bytes)
    dest_dir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="fetch-", dir=dest_dir)
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            written = 0
            for chunk in response.iter_bytes(_CHUNK_BYTES):
                written += len(chunk)
                if written > max_bytes:
                    raise _too_large(max_bytes)
                out.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


def _check_status(response: httpx.Response) -> None:
    code = response.status_code
    if not response.is_success:
        raise FetchFailure(f"HTTP {code}", transient=code >= 500 or code == 429)


def _too_large(max_bytes: int) -> FetchFailure:
    size = f"{round(max_bytes / _MB, 1):g} MB" if max_bytes >= _MB else f"{max_bytes} bytes"
    return FetchFailure(f"exceeds the {size} limit")


def _describe(exc: httpx.HTTPError | httpx.InvalidURL, limits: FetchLimits) -> FetchFailure:
    if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
        return FetchFailure(f"connection timed out after {limits.connect_timeout:g} s", transient=True)
    if isinstance(exc, httpx.TimeoutException):
        return FetchFailure(f"timed out after {limits.read_timeout:g} s", transient=True)
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return FetchFailure(f"invalid URL ({exc})")
    if isinstance(exc, httpx.TransportError):
        return FetchFailure(f"connection failed: {exc or type(exc).__name__}", transient=True)
    return FetchFailure(str(exc) or type(exc).__name__)


def _error(url: str, current: str | None, failure: FetchFailure) -> GenerationError:
    where = redact_url(url)
    if current is not None and current != url:
        where += f" (redirected to {redact_url(current)})"
    return GenerationError(
        ErrorCode.MEDIA_FETCH_FAILED,
        f"could not fetch {where}: {failure.reason}",
        transient=failure.transient,
    )


def redact_url(url: str) -> str:
    """``url`` without userinfo, query or fragment (where secrets live), shortened for messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid URL>"
    host = parts.netloc.rpartition("@")[2]
    text = urlunsplit((parts.scheme, host, parts.path, "", ""))
    return text if len(text) <= _MAX_URL_IN_MESSAGE else text[:_MAX_URL_IN_MESSAGE] + "..."
