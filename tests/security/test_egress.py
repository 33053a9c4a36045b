"""The guarded client for tenant URLs: it connects only to addresses the SSRF policy allows.

Real sockets to servers on 127.0.0.1 (plain HTTP, and TLS with a CA made here), a scripted
resolver that answers like a rebinding DNS server, and an inner network backend that
records every address a connection was opened to. No external network is used: every
address the guard lets through in these tests is loopback, or the inner backend refuses
to connect.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpcore
import httpx
import pytest

from showup.launchers.base import LaunchRequest, Rejected, ServedEvent
from showup.launchers.webhook import WebhookLauncher, _Endpoint
from showup.runtime import build_runtime
from showup.security.egress import EgressRejected, GuardedBackend, GuardedTransport
from showup.security.url_guard import Resolver, UrlPolicy, UrlRejected
from showup.webhooks.delivery import _attempt, _Target
from showup.webhooks.outbound import Outbound
from showup.webhooks.signing import generate_secret
from tests.conftest import make_settings
from tests.support.tls import CA

PROD = UrlPolicy()
DEV = UrlPolicy(allow_http_loopback=True)
PRIVATE = UrlPolicy(allow_private=True)


class FakeResolver:
    """Answers from a script: one list of addresses per call, the last one repeating."""

    def __init__(self, *answers: Sequence[str]) -> None:
        self.answers = [list(a) for a in answers]
        self.calls: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append((host, port))
        return list(self.answers[min(len(self.calls), len(self.answers)) - 1])


class RecordingStream(httpcore.AsyncNetworkStream):
    def __init__(self, inner: httpcore.AsyncNetworkStream, tls: list[str | None]) -> None:
        self.inner = inner
        self.tls = tls

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        return await self.inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        await self.inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> httpcore.AsyncNetworkStream:
        self.tls.append(server_hostname)
        return await self.inner.start_tls(ssl_context, server_hostname, timeout)

    def get_extra_info(self, info: str) -> Any:
        return self.inner.get_extra_info(info)


class RecordingBackend(httpcore.AsyncNetworkBackend):
    """Opens real sockets (unless ``offline``) and records where, and each TLS hostname."""

    def __init__(self, *, offline: bool = False) -> None:
        self.inner = httpcore.AnyIOBackend()
        self.offline = offline
        self.connected: list[str] = []
        self.tls: list[str | None] = []

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.connected.append(host)
        if self.offline:
            raise httpcore.ConnectError("offline test backend")
        stream = await self.inner.connect_tcp(
            host, port, timeout=timeout, local_address=local_address, socket_options=socket_options
        )
        return RecordingStream(stream, self.tls)

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class Server:
    """A minimal HTTP/1.1 server on 127.0.0.1 (TLS when given a context): answers 200 "ok"
    to every request and keeps what it received, and the SNI names of TLS handshakes."""

    def __init__(self) -> None:
        self.requests: list[bytes] = []
        self.sni: list[str | None] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self, context: ssl.SSLContext | None = None) -> Server:
        if context is not None:
            context.sni_callback = lambda _sock, name, _ctx: self.sni.append(name)
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=context)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            self.requests.append(head + await reader.readexactly(length))
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    srv = await Server().start()
    yield srv
    await srv.stop()


def client(
    policy: UrlPolicy,
    resolver: Resolver | None,
    inner: RecordingBackend,
    ssl_context: ssl.SSLContext | None = None,
) -> httpx.AsyncClient:
    transport = GuardedTransport(policy, resolver=resolver, inner=inner, ssl_context=ssl_context)
    return httpx.AsyncClient(transport=transport, timeout=5.0, follow_redirects=False)


# --- DNS rebinding ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rebound",
    [
        ["10.0.0.7"],
        ["169.254.169.254"],
        ["127.0.0.1", "10.0.0.7"],  # one bad record spoils the answer
        ["::ffff:10.0.0.1"],
        ["::ffff:169.254.169.254"],
        ["fd00::1"],
        ["fe80::1"],
        ["100.64.0.1"],
        ["0.0.0.0"],
    ],
)
async def test_rebinding_after_the_check_never_reaches_the_private_address(
    tmp_path: Path, server: Server, rebound: list[str]
) -> None:
    # The pre-attempt check (what delivery does) sees loopback, allowed in development;
    # the connection's own lookup gets the rebound answer.
    settings = make_settings(tmp_path, allow_http_loopback_webhooks=True)
    resolver = FakeResolver(["127.0.0.1"], rebound, ["127.0.0.1"])
    outbound = Outbound(resolver=resolver)
    inner = RecordingBackend()
    url = f"http://rebind.localhost:{server.port}/hook"
    async with client(DEV, outbound.resolve, inner) as http:
        await outbound.check(url, settings)
        with pytest.raises(UrlRejected) as err:
            await http.post(url, content=b"{}")
        assert err.value.code == "private_address"
        assert isinstance(err.value, EgressRejected)
        assert isinstance(err.value, httpx.TransportError)
        assert inner.connected == []
        assert server.requests == []
        # Rebound back: the same client connects, to the address it vetted.
        response = await http.post(url, content=b"{}")
    assert response.status_code == 200
    assert inner.connected == ["127.0.0.1"]
    assert len(server.requests) == 1
    assert [host for host, _ in resolver.calls] == ["rebind.localhost"] * 3


@pytest.mark.parametrize(
    ("answers", "policy"),
    [
        (["127.0.0.1"], PROD),
        (["::1"], PROD),
        (["::ffff:127.0.0.1"], PROD),
        (["10.0.0.1"], PROD),
        (["172.16.5.4"], PROD),
        (["192.168.1.1"], PROD),
        (["100.64.0.1"], PROD),
        (["100.127.255.254"], PROD),
        (["::ffff:10.0.0.1"], PROD),
        (["::ffff:169.254.169.254"], PROD),
        (["fd00::1"], PROD),
        (["fd12:3456:789a::1"], PROD),
        (["fe80::1"], PROD),
        (["fe80::1%eth0"], PROD),
        (["0.0.0.0"], PRIVATE),
        (["::"], PRIVATE),
        (["::ffff:0.0.0.0"], PRIVATE),
        (["169.254.169.254"], PRIVATE),
        (["::ffff:169.254.169.254"], PRIVATE),
        (["64:ff9b::a9fe:a9fe"], PRIVATE),
        (["fd00:ec2::254"], PRIVATE),
        (["100.100.100.200"], PRIVATE),
        (["224.0.0.1"], PRIVATE),
        (["93.184.216.34", "10.0.0.1"], PROD),
        (["2606:4700::1111", "::ffff:10.0.0.1"], PROD),
    ],
)
async def test_refused_addresses_are_never_connected_to(
    answers: list[str], policy: UrlPolicy
) -> None:
    inner = RecordingBackend(offline=True)
    backend = GuardedBackend(policy, resolver=FakeResolver(answers), inner=inner)
    with pytest.raises(EgressRejected) as err:
        await backend.connect_tcp("hooks.example.test", 443, timeout=5.0)
    assert err.value.code == "private_address"
    assert inner.connected == []
    # The message names the kind, never the address (no probing of our network).
    assert answers[-1].partition("%")[0] not in err.value.message


@pytest.mark.parametrize(
    "url",
    [
        "https://10.0.0.1/",
        "https://[::ffff:10.0.0.1]/",
        "https://[::ffff:169.254.169.254]/",
        "https://[fd00::1]/",
        "https://[fe80::1]/",
        "https://0.0.0.0/",
        "https://100.64.0.1/",
        "https://169.254.169.254/latest/meta-data/",
        "https://2852039166/",  # 169.254.169.254 as one number: getaddrinfo would accept it
        "https://0x7f.1/",
    ],
)
async def test_literal_and_encoded_hosts_sent_without_a_check_are_refused(url: str) -> None:
    # Even a caller that skips the check cannot reach them: the client checks itself.
    inner = RecordingBackend(offline=True)
    async with client(PROD, None, inner) as http:
        with pytest.raises(UrlRejected) as err:
            await http.get(url)
    assert err.value.code == "private_address"
    assert inner.connected == []


async def test_connects_to_the_vetted_address_not_the_name() -> None:
    inner = RecordingBackend(offline=True)  # refuses, so nothing leaves the machine
    resolver = FakeResolver(["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"])
    async with client(PROD, resolver, inner) as http:
        with pytest.raises(httpx.ConnectError):
            await http.get("https://hooks.example.test:8443/x")
    # Happy Eyeballs order: IPv6 first; both tried, both by address.
    assert inner.connected == ["2606:2800:220:1:248:1893:25c8:1946", "93.184.216.34"]
    assert resolver.calls == [("hooks.example.test", 8443)]


async def test_falls_back_to_the_next_vetted_address(server: Server) -> None:
    inner = RecordingBackend()
    resolver = FakeResolver(["127.0.0.3", "127.0.0.1"])  # nothing listens on 127.0.0.3
    async with client(DEV, resolver, inner) as http:
        response = await http.post(f"http://hooks.localhost:{server.port}/", content=b"x")
    assert response.status_code == 200
    assert inner.connected == ["127.0.0.3", "127.0.0.1"]


async def test_lookup_failure_and_empty_answer_are_unresolvable() -> None:
    async def failing(host: str, port: int) -> list[str]:
        raise OSError("no such host")

    inner = RecordingBackend(offline=True)
    for resolver in (failing, FakeResolver([])):
        backend = GuardedBackend(PROD, resolver=resolver, inner=inner)
        with pytest.raises(EgressRejected) as err:
            await backend.connect_tcp("gone.example.test", 443)
        assert err.value.code == "unresolvable"
    assert inner.connected == []


async def test_a_lookup_that_never_answers_is_a_connect_timeout() -> None:
    async def hanging(host: str, port: int) -> list[str]:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    transport = GuardedTransport(PROD, resolver=hanging, inner=RecordingBackend(offline=True))
    async with httpx.AsyncClient(transport=transport, timeout=0.05) as http:
        with pytest.raises(httpx.ConnectTimeout):
            await http.get("https://slow.example.test/")


# --- schemes ---------------------------------------------------------------------------------


async def test_plain_http_only_in_development_and_only_to_loopback(server: Server) -> None:
    inner = RecordingBackend()
    url = f"http://localhost:{server.port}/"
    async with client(PROD, FakeResolver(["127.0.0.1"]), inner) as http:
        with pytest.raises(UrlRejected) as err:
            await http.get(url)
        assert err.value.code == "scheme_not_allowed"
    for answers, code in [
        (["93.184.216.34"], "scheme_not_allowed"),
        (["127.0.0.1", "93.184.216.34"], "scheme_not_allowed"),
        (["10.0.0.1"], "private_address"),
    ]:
        async with client(DEV, FakeResolver(answers), inner) as http:
            with pytest.raises(UrlRejected) as err:
                await http.get(url)
            assert err.value.code == code
    async with client(DEV, FakeResolver(["93.184.216.34"]), inner) as http:
        with pytest.raises(UrlRejected) as err:
            await http.get("http://93.184.216.34/")
        assert err.value.code == "scheme_not_allowed"
    assert inner.connected == []
    assert server.requests == []


async def test_loopback_over_real_http_with_the_system_resolver(
    tmp_path: Path, server: Server
) -> None:
    # The development setting, as the runtime builds it: "localhost" from the hosts file.
    settings = make_settings(tmp_path, allow_http_loopback_webhooks=True)
    outbound = Outbound()
    url = f"http://localhost:{server.port}/hook?x=1"
    async with httpx.AsyncClient(transport=outbound.transport(settings)) as http:
        await outbound.check(url, settings)
        response = await http.post(url, content=b'{"hello": 1}')
    assert response.status_code == 200
    assert response.text == "ok"
    [received] = server.requests
    assert received.startswith(b"POST /hook?x=1 HTTP/1.1\r\n")
    assert received.endswith(b'{"hello": 1}')


async def test_without_the_development_setting_loopback_is_refused(
    tmp_path: Path, server: Server
) -> None:
    settings = make_settings(tmp_path)
    outbound = Outbound()
    async with httpx.AsyncClient(transport=outbound.transport(settings)) as http:
        for url in (f"http://localhost:{server.port}/", f"https://localhost:{server.port}/"):
            with pytest.raises(UrlRejected):
                await http.get(url)
    assert server.requests == []


# --- TLS: SNI and certificate verification use the host name ---------------------------------


async def test_https_verifies_the_certificate_against_the_host_name(tmp_path: Path) -> None:
    ca = CA()
    srv = await Server().start(ca.server_context("hooks.example.test", tmp_path))
    try:
        inner = RecordingBackend()
        resolver = FakeResolver(["127.0.0.1"])
        async with client(DEV, resolver, inner, ca.client_context()) as http:
            response = await http.post(f"https://hooks.example.test:{srv.port}/", content=b"x")
            assert response.status_code == 200
            assert inner.connected == ["127.0.0.1"]  # the socket went to the address...
            assert inner.tls == ["hooks.example.test"]  # ...TLS was told the name
            assert srv.sni == ["hooks.example.test"]

            # Same server and address, another name: the certificate does not match.
            with pytest.raises(httpx.ConnectError) as err:
                await http.post(f"https://other.example.test:{srv.port}/", content=b"x")
            assert "CERTIFICATE_VERIFY_FAILED" in str(err.value)
            assert "not valid for 'other.example.test'" in str(err.value)
            # And by address: verified against 127.0.0.1, which the certificate lacks.
            with pytest.raises(httpx.ConnectError) as err:
                await http.post(f"https://127.0.0.1:{srv.port}/", content=b"x")
            assert "not valid for '127.0.0.1'" in str(err.value)
            assert inner.tls == ["hooks.example.test", "other.example.test", "127.0.0.1"]
        assert len(srv.requests) == 1
    finally:
        await srv.stop()


async def test_https_with_a_certificate_from_an_unknown_ca_fails(tmp_path: Path) -> None:
    srv = await Server().start(CA().server_context("hooks.example.test", tmp_path))
    try:
        inner = RecordingBackend()
        other_ca = CA()
        async with client(DEV, FakeResolver(["127.0.0.1"]), inner, other_ca.client_context()) as h:
            with pytest.raises(httpx.ConnectError) as err:
                await h.get(f"https://hooks.example.test:{srv.port}/")
            assert "CERTIFICATE_VERIFY_FAILED" in str(err.value)
        assert srv.requests == []
    finally:
        await srv.stop()


# --- the runtime and its users ---------------------------------------------------------------


async def test_runtime_webhook_client_is_guarded_and_uses_the_injected_resolver(
    tmp_path: Path, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An environment proxy would do its own lookup: the guarded client ignores it.
    monkeypatch.setenv("HTTP_PROXY", "http://10.9.9.9:3128")
    monkeypatch.setenv("ALL_PROXY", "http://10.9.9.9:3128")
    rt = build_runtime(make_settings(tmp_path, allow_http_loopback_webhooks=True))
    try:
        assert isinstance(rt.webhook_http._transport, GuardedTransport)
        # Set after the runtime was built, as tests/webhooks do: the client sees it too.
        rt.outbound.resolver = FakeResolver(["127.0.0.1"], ["169.254.169.254"], ["127.0.0.1"])
        url = f"http://hooks.localhost:{server.port}/hook"
        await rt.outbound.check(url, rt.settings)
        with pytest.raises(UrlRejected) as err:
            await rt.webhook_http.post(url, content=b"{}")
        assert err.value.code == "private_address"
        assert server.requests == []
        response = await rt.webhook_http.post(url, content=b"{}")
        assert response.status_code == 200
        assert len(server.requests) == 1
    finally:
        await rt.aclose()


def _launch_request() -> LaunchRequest:
    join = datetime(2026, 11, 2, 9, 58, tzinfo=UTC)
    event = ServedEvent(
        "ev-1",
        "cal-1",
        "user-a",
        "a@example.com",
        "Planning",
        "uid@x",
        join + timedelta(minutes=2),
        join + timedelta(minutes=62),
    )
    return LaunchRequest(
        bot_id="5d1c7a0e-0000-4000-8000-000000000001",
        tenant_id="tenant-1",
        deduplication_key="k",
        meeting_url="https://meet.google.com/abc-defg-hij",
        meeting_platform="google_meet",
        join_at=join,
        deadline=join + timedelta(minutes=5),
        bot_config={},
        events=(event,),
        attempt=1,
    )


async def test_bot_launch_records_a_connect_time_refusal_as_the_guard_code(
    tmp_path: Path, server: Server
) -> None:
    rt = build_runtime(make_settings(tmp_path, allow_http_loopback_webhooks=True))
    try:
        rt.outbound.resolver = FakeResolver(["127.0.0.1"], ["10.0.0.7"])
        url = f"http://bots.localhost:{server.port}/dispatch"
        launcher = WebhookLauncher(rt, [_Endpoint("ep-1", url, [generate_secret()])])
        outcome = await launcher.launch(_launch_request())
        assert outcome == Rejected("endpoint ep-1: url:private_address")
        assert server.requests == []
    finally:
        await rt.aclose()


async def test_webhook_delivery_records_a_connect_time_refusal_as_the_guard_code(
    tmp_path: Path, server: Server
) -> None:
    # The pre-attempt check sees loopback; the connection's own lookup is rebound to a
    # private address: the attempt is refused with the guard's code, nothing is sent.
    rt = build_runtime(make_settings(tmp_path, allow_http_loopback_webhooks=True))
    try:
        rt.outbound.resolver = FakeResolver(["127.0.0.1"], ["10.0.0.7"])
        target = _Target(
            "dl-1",
            "tenant-1",
            "msg_1",
            "ep-1",
            f"http://hooks.localhost:{server.port}/hook",
            b"{}",
            [generate_secret()],
        )
        result = await _attempt(rt, target)
        assert (result.status_code, result.error) == (None, "private_address")
        assert server.requests == []
    finally:
        await rt.aclose()
