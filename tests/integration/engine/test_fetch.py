"""fetch_input against a real HTTP server on 127.0.0.1 (and local files)."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpcore
import pytest

from lipsync_api.engine import fetch
from lipsync_api.engine.fetch import fetch_input
from lipsync_api.engine.request import FetchLimits
from lipsync_api.errors import ErrorCode, GenerationError
from lipsync_api.netguard import Resolver, system_resolver

PAYLOAD = bytes(range(256)) * 800  # 204,800 bytes: several read chunks
PUBLIC_IP = "93.184.215.14"  # what the fake DNS answers for public.test; the test dialer reroutes it here
LIMITS = FetchLimits(
    max_bytes=1024 * 1024, connect_timeout=2, read_timeout=2, max_redirects=3, allow_private_addresses=True
)
GUARDED = FetchLimits(max_bytes=1024 * 1024, connect_timeout=2, read_timeout=2, max_redirects=3)


@dataclass
class Server:
    port: int
    paths: list[str] = field(default_factory=list)  # every request path the server received
    release: threading.Event = field(default_factory=threading.Event)  # ends the slow route early

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:
        self.server.state.paths.append(self.path)
        parts = urlsplit(self.path)
        route, _, arg = parts.path[1:].partition("/")
        handler = ROUTES.get(route)
        try:
            if handler is None:
                self._send(404, b"not found")
            else:
                handler(self, arg, parse_qs(parts.query))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up on purpose (size cap, timeout)

    def _send(self, status: int, body: bytes, headers: Iterable[tuple[str, str]] = ()) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: Server

    def handle_error(self, request: object, client_address: object) -> None:
        # Clients hang up mid-request on purpose (size cap, timeout); anything else is still reported.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


def _ok(h: _Handler, arg: str, query: dict[str, list[str]]) -> None:
    h._send(200, PAYLOAD)


def _status(h: _Handler, arg: str, query: dict[str, list[str]]) -> None:
    h._send(int(arg), b"error page")


def _declared_big(h: _Handler, arg: str, query: dict[str, list[str]]) -> None:
    h._send(200, b"x" * 20_000)


def _declared_huge(h: _Handler, arg: str, query: dict[str, list[str]]) -> None:
    h.send_response(200)
    h.send_header("Content-Length", str(512 * 1024 * 1024 + 1))
    h.end_headers()
    h.close_connection = True


def _chunked(h: _Handler, arg: str, query: dict[str, list[str]]) -> None:
    h.send_response(200)
    h.send_header("Transfer-Encoding", "chunked")
    h.end_headers()
    for _ in range(40):
        h.wfile.write(b"400\r\n" + b"y" * 1024 + b"\r\n")
    h.wfile.write(b"0\r\n\r\n")


def _slow(h: _Handler, arg: str, query: dict[str, list[str]]) -> None:
    h.server.state.release.wait(10)
    h._send(200, b"late")


def _redirect(h: _Handler, arg: str, query: dict[str, list[str]]) -> None:
    hops = int(arg)
    location = "/ok" if hops <= 1 else f"/redirect/{hops - 1}"  # /redirect/N: N redirects, then /ok
    h._send(302, b"", [("Location", location)])


def _redirect_to(h: _Handler, arg: str, query: dict[str, list[str]]) -> None:
    h._send(302, b"", [("Location", query["to"][0])])


def _host(h: _Handler, arg: str, query: dict[str, list[str]]) -> None:
    h._send(200, h.headers["Host"].encode())


ROUTES: dict[str, Callable[[_Handler, str, dict[str, list[str]]], None]] = {
    "ok": _ok,
    "status": _status,
    "declared-big": _declared_big,
    "declared-huge": _declared_huge,
    "chunked": _chunked,
    "slow": _slow,
    "redirect": _redirect,
    "redirect-to": _redirect_to,
    "host": _host,
}


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    httpd = _Server(("127.0.0.1", 0), _Handler)
    httpd.state = Server(port=httpd.server_address[1])
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd.state
    finally:
        httpd.state.release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def _fetch_error(
    source: str, dest: Path, limits: FetchLimits = LIMITS, resolver: Resolver = system_resolver
) -> GenerationError:
    with pytest.raises(GenerationError) as info:
        fetch_input(source, dest, limits, allow_local=False, resolver=resolver)
    assert info.value.code is ErrorCode.MEDIA_FETCH_FAILED
    return info.value


# --- downloads -------------------------------------------------------------------------------------------


def test_download_writes_the_body(server: Server, tmp_path: Path) -> None:
    path = fetch_input(server.url("/ok"), tmp_path, LIMITS, allow_local=False)
    assert path.parent == tmp_path
    assert path.suffix == ""
    assert path.read_bytes() == PAYLOAD


def test_downloads_get_unique_names(server: Server, tmp_path: Path) -> None:
    first = fetch_input(server.url("/ok"), tmp_path, LIMITS, allow_local=False)
    second = fetch_input(server.url("/ok"), tmp_path, LIMITS, allow_local=False)
    assert first != second


def test_content_length_over_cap_is_refused(server: Server, tmp_path: Path) -> None:
    error = _fetch_error(
        server.url("/declared-big"), tmp_path, FetchLimits(max_bytes=10_000, allow_private_addresses=True)
    )
    assert "exceeds the 10000 bytes limit" in error.message
    assert not error.transient
    assert list(tmp_path.iterdir()) == []


def test_chunked_body_over_cap_stops_and_cleans_up(server: Server, tmp_path: Path) -> None:
    limits = FetchLimits(max_bytes=10_000, allow_private_addresses=True)
    error = _fetch_error(server.url("/chunked"), tmp_path, limits)
    assert "exceeds the 10000 bytes limit" in error.message
    assert list(tmp_path.iterdir()) == []


def test_content_length_is_checked_before_the_body(server: Server, tmp_path: Path) -> None:
    # The route declares 512 MB + 1 byte and never sends a body: only the header can refuse it.
    error = _fetch_error(server.url("/declared-huge"), tmp_path, FetchLimits(allow_private_addresses=True))
    assert "exceeds the 512 MB limit" in error.message
    assert list(tmp_path.iterdir()) == []


def test_http_404_is_permanent(server: Server, tmp_path: Path) -> None:
    error = _fetch_error(server.url("/status/404?token=secret"), tmp_path)
    assert "HTTP 404" in error.message
    assert server.url("/status/404") in error.message
    assert "secret" not in error.message
    assert not error.transient


@pytest.mark.parametrize("status", [500, 503, 429])
def test_server_errors_and_throttling_are_transient(server: Server, tmp_path: Path, status: int) -> None:
    error = _fetch_error(server.url(f"/status/{status}"), tmp_path)
    assert f"HTTP {status}" in error.message
    assert error.transient


def test_slow_response_times_out(server: Server, tmp_path: Path) -> None:
    limits = FetchLimits(read_timeout=0.3, allow_private_addresses=True)
    error = _fetch_error(server.url("/slow"), tmp_path, limits)
    assert "timed out after 0.3 s" in error.message
    assert error.transient


def test_connection_refused_is_transient(tmp_path: Path) -> None:
    error = _fetch_error("http://127.0.0.1:1/ok", tmp_path)
    assert "connection failed" in error.message
    assert error.transient


# --- redirects -------------------------------------------------------------------------------------------


def test_redirects_within_the_limit_are_followed(server: Server, tmp_path: Path) -> None:
    path = fetch_input(server.url("/redirect/3"), tmp_path, LIMITS, allow_local=False)
    assert path.read_bytes() == PAYLOAD


def test_too_many_redirects(server: Server, tmp_path: Path) -> None:
    error = _fetch_error(server.url("/redirect/4"), tmp_path)
    assert "too many redirects (max 3)" in error.message
    assert not error.transient
    assert list(tmp_path.iterdir()) == []


def test_redirect_to_another_scheme_is_refused(server: Server, tmp_path: Path) -> None:
    error = _fetch_error(server.url("/redirect-to?to=file:///etc/passwd"), tmp_path)
    assert "redirect to unsupported URL scheme 'file'" in error.message


# --- address guard ---------------------------------------------------------------------------------------


class _RerouteDialer(httpcore.NetworkBackend):
    """Connects PUBLIC_IP to the local server (as if it were that public host); records every dial."""

    def __init__(self) -> None:
        self.dialed: list[str] = []
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        self.dialed.append(host)
        target = "127.0.0.1" if host == PUBLIC_IP else host
        return self._inner.connect_tcp(target, port, timeout, local_address, socket_options)


def _fake_dns(host: str, port: int) -> list[str]:
    return {"public.test": [PUBLIC_IP], "internal.test": ["10.0.0.7"]}.get(host, [host])


@pytest.fixture
def dialer(monkeypatch: pytest.MonkeyPatch) -> _RerouteDialer:
    reroute = _RerouteDialer()
    monkeypatch.setattr(fetch, "_DIALER", reroute)
    return reroute


def test_private_address_is_refused_before_any_request(server: Server, tmp_path: Path) -> None:
    error = _fetch_error(server.url("/ok?guarded"), tmp_path, GUARDED)
    assert "resolves to a private address 127.0.0.1 (not allowed)" in error.message
    assert not error.transient
    assert "/ok?guarded" not in server.paths


def test_localhost_name_is_refused(server: Server, tmp_path: Path) -> None:
    error = _fetch_error(server.url("/ok", host="localhost"), tmp_path, GUARDED)
    assert "host localhost resolves to a private address" in error.message


def test_public_host_is_dialed_at_its_checked_ip(
    server: Server, tmp_path: Path, dialer: _RerouteDialer
) -> None:
    path = fetch_input(
        server.url("/host", "public.test"), tmp_path, GUARDED, allow_local=False, resolver=_fake_dns
    )
    assert path.read_bytes() == f"public.test:{server.port}".encode()  # Host header keeps the name
    assert dialer.dialed == [PUBLIC_IP]


def test_redirect_to_private_host_is_refused(server: Server, tmp_path: Path, dialer: _RerouteDialer) -> None:
    target = server.url("/ok", "internal.test")
    source = server.url(f"/redirect-to?to={target}", "public.test")
    error = _fetch_error(source, tmp_path, GUARDED, resolver=_fake_dns)
    assert "host internal.test resolves to a private address 10.0.0.7 (not allowed)" in error.message
    assert f"redirected to {target}" in error.message
    assert dialer.dialed == [PUBLIC_IP]


def test_redirect_to_private_ip_literal_is_refused(
    server: Server, tmp_path: Path, dialer: _RerouteDialer
) -> None:
    source = server.url(f"/redirect-to?to={server.url('/ok')}", "public.test")
    error = _fetch_error(source, tmp_path, GUARDED, resolver=_fake_dns)
    assert "private address 127.0.0.1" in error.message
    assert dialer.dialed == [PUBLIC_IP]


@pytest.fixture
def tls_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    """The same routes over TLS, with a self-signed certificate for public.test that the client trusts."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not available to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=public.test",
         "-addext", "subjectAltName=DNS:public.test"],
        check=True, capture_output=True,
    )  # fmt: skip
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    httpd = _Server(("127.0.0.1", 0), _Handler)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    httpd.state = Server(port=httpd.server_address[1])
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.state
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def test_tls_verifies_the_hostname_while_dialing_the_ip(
    tls_server: Server, tmp_path: Path, dialer: _RerouteDialer
) -> None:
    url = f"https://public.test:{tls_server.port}/host"
    path = fetch_input(url, tmp_path / "dest", GUARDED, allow_local=False, resolver=_fake_dns)
    assert path.read_bytes() == f"public.test:{tls_server.port}".encode()
    assert dialer.dialed == [PUBLIC_IP]


# --- local files and schemes -----------------------------------------------------------------------------


def test_local_path_allowed(tmp_path: Path) -> None:
    clip = tmp_path / "clip.bin"
    clip.write_bytes(b"media")
    assert fetch_input(str(clip), tmp_path / "dest", LIMITS, allow_local=True) == clip.resolve()


def test_file_url_allowed(tmp_path: Path) -> None:
    clip = tmp_path / "my clip.bin"
    clip.write_bytes(b"media")
    assert fetch_input(clip.as_uri(), tmp_path / "dest", LIMITS, allow_local=True) == clip.resolve()


@pytest.mark.parametrize("make_source", [str, Path.as_uri])
def test_local_path_refused_when_not_allowed(tmp_path: Path, make_source: Callable[[Path], str]) -> None:
    clip = tmp_path / "clip.bin"
    clip.write_bytes(b"media")
    error = _fetch_error(make_source(clip), tmp_path)
    assert "local paths are not allowed" in error.message
    assert not error.transient


def test_missing_local_file(tmp_path: Path) -> None:
    with pytest.raises(GenerationError, match="no such file"):
        fetch_input(str(tmp_path / "absent.mp4"), tmp_path, LIMITS, allow_local=True)


def test_directory_is_not_a_regular_file(tmp_path: Path) -> None:
    with pytest.raises(GenerationError, match="not a regular file"):
        fetch_input(str(tmp_path), tmp_path, LIMITS, allow_local=True)


@pytest.mark.parametrize(
    ("source", "scheme"),
    [("ftp://example.com/a.mp4", "ftp"), ("data:video/mp4;base64,AAAA", "data"), ("gopher://x/1", "gopher")],
)
def test_unsupported_scheme(tmp_path: Path, source: str, scheme: str) -> None:
    error = _fetch_error(source, tmp_path)
    assert f"unsupported URL scheme '{scheme}'" in error.message
    assert not error.transient
