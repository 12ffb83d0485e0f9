"""Bring an input to a local file: download a URL within size, time, redirect and address limits."""

from __future__ import annotations

import ipaddress
import os
import socket
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

import anyio.to_thread
import httpcore
import httpx

from lipsync_api.engine.request import FetchLimits
from lipsync_api.errors import ErrorCode, GenerationError

Resolver = Callable[[str, int], list[str]]
"""(host, port) -> the IP addresses to connect to, in order of preference."""

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_HTTP_SCHEMES = ("http", "https")
_CHUNK_BYTES = 64 * 1024
_MB = 1024 * 1024
_MAX_URL_IN_MESSAGE = 200
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class FetchFailure(Exception):
    """A reason a download failed, before it is turned into a GenerationError naming the URL."""

    def __init__(self, reason: str, *, transient: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.transient = transient


class BlockedAddressError(FetchFailure):
    """The host resolved to an address the guard refuses."""

    def __init__(self, host: str, address: str) -> None:
        super().__init__(f"host {host} resolves to a private address {address} (not allowed)")


# --- address guard -------------------------------------------------------------------------------------


def is_blocked_address(address: str) -> bool:
    """True unless ``address`` is a public unicast IP (unparseable counts as blocked)."""
    try:
        return _is_blocked(ipaddress.ip_address(address))
    except ValueError:
        return True


def _is_blocked(ip: IPAddress) -> bool:
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _translated_ipv4(ip)
        if embedded is not None:  # packets really go to this IPv4 address, so it alone decides
            return _is_blocked(embedded)
        if ip.sixtofour is not None and _is_blocked(ip.sixtofour):
            return True
        if ip.is_site_local:
            return True
    special = ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_multicast
    # not is_global also covers what the flags miss: CGNAT 100.64/10, benchmarking, documentation ranges.
    return special or ip.is_reserved or ip.is_unspecified or not ip.is_global


def _translated_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def system_resolver(host: str, port: int) -> list[str]:
    """The system's answers for ``host``, deduplicated, in its order."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class GuardedBackend(httpcore.NetworkBackend):
    """Resolves each host once, checks every address, then dials a checked IP.

    Dialing the IP that was checked (rather than the name) is what defeats DNS rebinding: there is no
    second lookup for an attacker's DNS to answer differently. httpcore still sends the hostname as the
    TLS SNI and certificate name, and httpx as the Host header, since both come from the URL.
    """

    def __init__(self, resolver: Resolver, dialer: httpcore.NetworkBackend, *, guard: bool) -> None:
        self._resolver = resolver
        self._dialer = dialer
        self._guard = guard

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = _checked(host, self._resolve(host, port), guard=self._guard)
        last_error: Exception | None = None
        for address in addresses:
            try:
                return self._dialer.connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc
        assert last_error is not None
        raise last_error

    def _resolve(self, host: str, port: int) -> list[str]:
        try:
            addresses = self._resolver(host, port)
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve host {host}: {exc}") from exc
        return addresses


def _checked(host: str, addresses: list[str], *, guard: bool) -> list[str]:
    """``addresses`` if there are any and, when guarding, none is blocked."""
    if not addresses:
        raise httpcore.ConnectError(f"cannot resolve host {host}: no addresses")
    if guard:
        # One bad answer refuses the host: a mixed answer is a rebinding attempt, not bad luck.
        for address in addresses:
            if is_blocked_address(address):
                raise BlockedAddressError(host, address)
    return addresses


class AsyncGuardedBackend(httpcore.AsyncNetworkBackend):
    """GuardedBackend for async clients: the resolver runs in a worker thread, the dial is async."""

    def __init__(self, resolver: Resolver, dialer: httpcore.AsyncNetworkBackend, *, guard: bool) -> None:
        self._resolver = resolver
        self._dialer = dialer
        self._guard = guard

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            resolved = await anyio.to_thread.run_sync(self._resolver, host, port)
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve host {host}: {exc}") from exc
        last_error: Exception | None = None
        for address in _checked(host, resolved, guard=self._guard):
            try:
                return await self._dialer.connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc
        assert last_error is not None
        raise last_error

    async def sleep(self, seconds: float) -> None:
        await self._dialer.sleep(seconds)


# Opens the sockets GuardedBackend asks for; tests swap it to reach a local server under a public IP.
_DIALER: httpcore.NetworkBackend = httpcore.SyncBackend()


class _GuardedTransport(httpx.HTTPTransport):
    def __init__(self, backend: httpcore.NetworkBackend) -> None:
        ssl_context = httpx.create_ssl_context()  # certificates are checked against the URL's hostname
        super().__init__(verify=ssl_context)
        # HTTPTransport takes no network backend, so swap its pool for one that dials through ours;
        # the rest of HTTPTransport (exception and stream mapping) is kept.
        self._pool = httpcore.ConnectionPool(ssl_context=ssl_context, network_backend=backend)


class _AsyncGuardedTransport(httpx.AsyncHTTPTransport):
    def __init__(self, backend: httpcore.AsyncNetworkBackend) -> None:
        ssl_context = httpx.create_ssl_context()
        super().__init__(verify=ssl_context)
        self._pool = httpcore.AsyncConnectionPool(ssl_context=ssl_context, network_backend=backend)


def guarded_async_client(
    timeout: httpx.Timeout,
    *,
    allow_private_addresses: bool,
    resolver: Resolver = system_resolver,
    dialer: httpcore.AsyncNetworkBackend | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.AsyncClient:
    """An async client whose every connection passes the address guard (redirects are not followed)."""
    dialer = dialer or httpcore.AnyIOBackend()
    backend = AsyncGuardedBackend(resolver, dialer, guard=not allow_private_addresses)
    return httpx.AsyncClient(
        transport=_AsyncGuardedTransport(backend),
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,  # an environment proxy would connect on our behalf, past the guard
        headers=headers,
    )


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
        transport=_GuardedTransport(backend),
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
