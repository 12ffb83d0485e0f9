"""Outbound connections only to public addresses: the guard shared by media downloads and webhooks.

Loopback, private, link-local, multicast, reserved, CGNAT and unspecified addresses (and their IPv4-mapped
and NAT64 forms) are refused. The host is resolved once, every answer is checked, and the connection goes
to an address that was checked, so DNS rebinding cannot slip a private address past the check.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable

import anyio.to_thread
import httpcore
import httpx

Resolver = Callable[[str, int], list[str]]
"""(host, port) -> the IP addresses to connect to, in order of preference."""

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class BlockedAddressError(Exception):
    """The host resolved to an address the guard refuses."""

    def __init__(self, host: str, address: str) -> None:
        self.reason = f"host {host} resolves to a private address {address} (not allowed)"
        super().__init__(self.reason)


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


class GuardedTransport(httpx.HTTPTransport):
    def __init__(self, backend: httpcore.NetworkBackend) -> None:
        ssl_context = httpx.create_ssl_context()  # certificates are checked against the URL's hostname
        super().__init__(verify=ssl_context)
        # HTTPTransport takes no network backend, so swap its pool for one that dials through ours;
        # the rest of HTTPTransport (exception and stream mapping) is kept.
        self._pool = httpcore.ConnectionPool(ssl_context=ssl_context, network_backend=backend)


class AsyncGuardedTransport(httpx.AsyncHTTPTransport):
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
        transport=AsyncGuardedTransport(backend),
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,  # an environment proxy would connect on our behalf, past the guard
        headers=headers,
    )
