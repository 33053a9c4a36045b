"""The providers' transport (httpx on an asyncio network backend), over real sockets on
127.0.0.1: plain HTTP and TLS with a CA made here, keep-alive, a connection the server
closed while idle, timeouts, refused connections, backpressure."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from showup.providers.transport import AsyncioBackend, provider_transport
from showup.runtime import build_runtime
from tests.conftest import make_settings
from tests.support.tls import CA

LIMITS = httpx.Limits(max_connections=10, max_keepalive_connections=5)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Server:
    """An HTTP/1.1 server on 127.0.0.1 whose handler is the test's."""

    def __init__(self, handler: Handler, tls: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.tls = tls
        self.connections = 0
        self.open = self.peak = 0
        self.closed = asyncio.Event()  # set each time the server has closed a connection

    async def __aenter__(self) -> Server:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open += 1
        self.peak = max(self.peak, self.open)
        try:
            await self.handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            self.open -= 1
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await writer.wait_closed()
            self.closed.set()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """One request: its head and its Content-Length body."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head + await reader.readexactly(length)


def response(body: bytes, *, chunked: bool = False, close: bool = False) -> bytes:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    if close:
        head += b"Connection: close\r\n"
    if not chunked:
        return head + b"Content-Length: %d\r\n\r\n" % len(body) + body
    out = head + b"Transfer-Encoding: chunked\r\n\r\n"
    for i in range(0, len(body), 7000):
        part = body[i : i + 7000]
        out += b"%x\r\n" % len(part) + part + b"\r\n"
    return out + b"0\r\n\r\n"


async def keep_alive(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers every request on the connection with its path, echoed in a big body."""
    while True:
        request = await read_request(reader)
        path = request.split(b" ", 2)[1]
        body = b'{"path": "%s", "pad": "%s"}' % (path, b"x" * 300_000)
        writer.write(response(body, chunked=path.endswith(b"chunked")))
        await writer.drain()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=provider_transport(LIMITS), timeout=5.0) as c:
        yield c


async def test_requests_reuse_one_kept_alive_connection(client: httpx.AsyncClient) -> None:
    async with Server(keep_alive) as srv:
        base = f"http://127.0.0.1:{srv.port}"
        for path in ("/a", "/b-chunked", "/c"):
            r = await client.get(base + path)
            assert r.status_code == 200
            assert r.json()["path"] == path and len(r.json()["pad"]) == 300_000
        posted = await client.post(base + "/d", content=b"y" * 2_000_000)
        assert posted.json()["path"] == "/d"
        assert srv.connections == 1


async def test_concurrent_requests_each_get_their_own_answer(client: httpx.AsyncClient) -> None:
    async with Server(keep_alive) as srv:
        base = f"http://127.0.0.1:{srv.port}"
        paths = [f"/p{i}" for i in range(20)]
        answers = await asyncio.gather(*(client.get(base + p) for p in paths))
        assert [a.json()["path"] for a in answers] == paths
        assert srv.peak <= LIMITS.max_connections


async def test_a_connection_the_server_closed_while_idle_is_not_reused(
    client: httpx.AsyncClient,
) -> None:
    async def one_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(response(b'{"ok": true}'))  # keep-alive promised, then closed
        await writer.drain()

    async with Server(one_then_close) as srv:
        base = f"http://127.0.0.1:{srv.port}"
        assert (await client.get(base + "/1")).status_code == 200
        await asyncio.wait_for(srv.closed.wait(), 5)  # the idle connection is closed
        assert (await client.get(base + "/2")).status_code == 200
        assert srv.connections == 2


async def test_a_silent_server_is_a_read_timeout() -> None:
    answer = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await answer.wait()

    async with (
        Server(silent) as srv,
        httpx.AsyncClient(transport=provider_transport(LIMITS), timeout=0.2) as c,
    ):
        with pytest.raises(httpx.ReadTimeout):
            await c.get(f"http://127.0.0.1:{srv.port}/")
        answer.set()


async def test_a_server_that_stops_reading_is_a_write_timeout() -> None:
    stop = asyncio.Event()

    async def not_reading(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await stop.wait()

    async with (
        Server(not_reading) as srv,
        httpx.AsyncClient(transport=provider_transport(LIMITS), timeout=0.3) as c,
    ):
        with pytest.raises(httpx.WriteTimeout):
            await c.post(f"http://127.0.0.1:{srv.port}/", content=b"z" * 64_000_000)
        stop.set()


async def test_a_connection_cut_mid_response_is_a_read_error(client: httpx.AsyncClient) -> None:
    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\npartial")
        await writer.drain()

    async with Server(cut) as srv:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get(f"http://127.0.0.1:{srv.port}/")


async def test_a_refused_connection_is_a_connect_error(client: httpx.AsyncClient) -> None:
    async with Server(keep_alive) as srv:
        port = srv.port
    with pytest.raises(httpx.ConnectError):
        await client.get(f"http://127.0.0.1:{port}/")


async def test_tls_is_verified_against_the_context(tmp_path: Path) -> None:
    ca = CA()
    tls = ca.server_context("localhost", tmp_path)
    async with Server(keep_alive, tls=tls) as srv:
        url = f"https://localhost:{srv.port}/secure"
        trusting = provider_transport(LIMITS, ssl_context=ca.client_context())
        async with httpx.AsyncClient(transport=trusting, timeout=5.0) as c:
            for _ in range(2):
                r = await c.get(url)
                assert r.json()["path"] == "/secure"
            assert srv.connections == 1
        other = provider_transport(LIMITS, ssl_context=CA().client_context())
        async with httpx.AsyncClient(transport=other, timeout=5.0) as c:
            with pytest.raises(httpx.ConnectError):
                await c.get(url)
        # The certificate names localhost, not 127.0.0.1.
        trusting = provider_transport(LIMITS, ssl_context=ca.client_context())
        async with httpx.AsyncClient(transport=trusting, timeout=5.0) as c:
            with pytest.raises(httpx.ConnectError):
                await c.get(f"https://127.0.0.1:{srv.port}/")


async def test_the_runtime_talks_to_providers_through_it(tmp_path: Path) -> None:
    rt = build_runtime(make_settings(tmp_path))
    try:
        pool = rt.http._transport._pool  # type: ignore[attr-defined]
        assert isinstance(pool._network_backend, AsyncioBackend)
        async with Server(keep_alive) as srv:
            r = await rt.http.get(f"http://127.0.0.1:{srv.port}/via-runtime")
            assert r.json()["path"] == "/via-runtime"
    finally:
        await rt.http.aclose()
        await rt.webhook_http.aclose()
        await rt.engine.dispose()
