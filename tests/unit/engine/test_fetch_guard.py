"""The address guard, URL redaction and the guarded network backend, without any real network."""

from __future__ import annotations

from collections.abc import Iterable

import httpcore
import pytest

from lipsync_api.engine.fetch import redact_url
from lipsync_api.netguard import BlockedAddressError, GuardedBackend, is_blocked_address

BLOCKED = [
    "127.0.0.1",  # loopback
    "127.255.255.254",
    "10.1.2.3",  # private
    "172.16.0.1",
    "172.31.255.255",
    "192.168.1.1",
    "169.254.169.254",  # link-local (cloud metadata)
    "100.64.0.1",  # CGNAT
    "100.127.255.255",
    "224.0.0.1",  # multicast
    "239.255.255.250",
    "240.0.0.1",  # reserved
    "255.255.255.255",
    "0.0.0.0",  # unspecified
    "0.1.2.3",
    "192.0.2.1",  # documentation
    "198.18.0.1",  # benchmarking
    "::1",
    "::",
    "fe80::1",
    "fe80::1%eth0",
    "fc00::1",  # unique local
    "fd12:3456::1",
    "fec0::1",  # site-local (deprecated)
    "ff02::1",  # multicast
    "::ffff:127.0.0.1",  # IPv4-mapped forms of the above
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "::ffff:100.64.0.1",
    "::127.0.0.1",  # IPv4-compatible (deprecated)
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
    "2002:7f00:1::",  # 6to4 of 127.0.0.1
    "2002:a00:1::",  # 6to4 of 10.0.0.1
    "2001:db8::1",  # documentation
    "not-an-ip",
    "",
]

ALLOWED = [
    "8.8.8.8",
    "1.1.1.1",
    "93.184.215.14",
    "100.63.255.255",  # just below CGNAT
    "100.128.0.0",  # just above
    "172.32.0.1",  # just outside 172.16/12
    "2606:4700:4700::1111",
    "2a00:1450:4001:80b::200e",
    "::ffff:8.8.8.8",  # mapped public
    "64:ff9b::808:808",  # NAT64 of a public address (DNS64 networks)
]


@pytest.mark.parametrize("address", BLOCKED)
def test_blocked_addresses(address: str) -> None:
    assert is_blocked_address(address)


@pytest.mark.parametrize("address", ALLOWED)
def test_public_addresses(address: str) -> None:
    assert not is_blocked_address(address)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://user:secret@example.com/a/b.mp4?token=x#frag", "https://example.com/a/b.mp4"),
        ("http://example.com:8080/v.mp4?sig=abc", "http://example.com:8080/v.mp4"),
        ("http://[::1]:9000/x", "http://[::1]:9000/x"),
        ("/tmp/clip.mp4", "/tmp/clip.mp4"),
        ("http://[::1/x", "<invalid URL>"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_redact_url_shortens_long_urls() -> None:
    assert len(redact_url("data:text/plain;base64," + "A" * 5000)) < 250


class _RecordingDialer(httpcore.NetworkBackend):
    """Records where it was asked to connect; refuses the addresses in ``refuse``."""

    def __init__(self, refuse: Iterable[str] = ()) -> None:
        self.dialed: list[str] = []
        self._refuse = set(refuse)

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        self.dialed.append(host)
        if host in self._refuse:
            raise httpcore.ConnectError("refused")
        return httpcore.NetworkStream()


def _backend(
    answers: dict[str, list[str]], dialer: _RecordingDialer, *, guard: bool = True
) -> GuardedBackend:
    return GuardedBackend(lambda host, port: answers[host], dialer, guard=guard)


def test_backend_dials_the_checked_ip_not_the_name() -> None:
    dialer = _RecordingDialer()
    _backend({"media.example": ["93.184.215.14"]}, dialer).connect_tcp("media.example", 443)
    assert dialer.dialed == ["93.184.215.14"]


def test_backend_refuses_a_private_answer_before_dialing() -> None:
    dialer = _RecordingDialer()
    with pytest.raises(
        BlockedAddressError, match=r"internal\.example resolves to a private address 10\.0\.0\.7"
    ):
        _backend({"internal.example": ["10.0.0.7"]}, dialer).connect_tcp("internal.example", 80)
    assert dialer.dialed == []


def test_backend_refuses_when_any_answer_is_private() -> None:
    dialer = _RecordingDialer()
    backend = _backend({"mixed.example": ["93.184.215.14", "127.0.0.1"]}, dialer)
    with pytest.raises(BlockedAddressError, match=r"127\.0\.0\.1"):
        backend.connect_tcp("mixed.example", 80)
    assert dialer.dialed == []


def test_backend_checks_ip_literals_too() -> None:
    dialer = _RecordingDialer()
    with pytest.raises(BlockedAddressError, match=r"::ffff:169\.254\.169\.254"):
        _backend({"::ffff:169.254.169.254": ["::ffff:169.254.169.254"]}, dialer).connect_tcp(
            "::ffff:169.254.169.254", 80
        )


def test_backend_resolves_once_per_connection() -> None:
    calls: list[str] = []

    def rebinding_resolver(host: str, port: int) -> list[str]:
        calls.append(host)
        return ["93.184.215.14"] if len(calls) == 1 else ["127.0.0.1"]

    dialer = _RecordingDialer()
    GuardedBackend(rebinding_resolver, dialer, guard=True).connect_tcp("rebind.example", 80)
    assert calls == ["rebind.example"]
    assert dialer.dialed == ["93.184.215.14"]


def test_backend_without_guard_allows_private() -> None:
    dialer = _RecordingDialer()
    _backend({"localhost": ["127.0.0.1"]}, dialer, guard=False).connect_tcp("localhost", 80)
    assert dialer.dialed == ["127.0.0.1"]


def test_backend_falls_back_to_the_next_address() -> None:
    dialer = _RecordingDialer(refuse=["2606:4700::1"])
    _backend({"dual.example": ["2606:4700::1", "93.184.215.14"]}, dialer).connect_tcp("dual.example", 80)
    assert dialer.dialed == ["2606:4700::1", "93.184.215.14"]


def test_backend_raises_the_last_connect_error_when_all_fail() -> None:
    dialer = _RecordingDialer(refuse=["93.184.215.14"])
    with pytest.raises(httpcore.ConnectError):
        _backend({"down.example": ["93.184.215.14"]}, dialer).connect_tcp("down.example", 80)


@pytest.mark.parametrize("answer", [OSError("Name or service not known"), []])
def test_backend_turns_resolution_failure_into_connect_error(answer: OSError | list[str]) -> None:
    def resolver(host: str, port: int) -> list[str]:
        if isinstance(answer, OSError):
            raise answer
        return answer

    with pytest.raises(httpcore.ConnectError, match=r"cannot resolve host nowhere\.example"):
        GuardedBackend(resolver, _RecordingDialer(), guard=True).connect_tcp("nowhere.example", 80)
