"""The providers' HTTP transport: httpx's own, on a network backend written on asyncio.

httpx's default transport reaches the network through httpcore's anyio backend. Every
read and write there enters an anyio cancel scope (``fail_after``, a ``current_task``
lookup through sniffio on the way in and out), and every request makes the connection
pool ask each idle connection whether it has expired, which through anyio builds a dict
of every socket attribute (a ``getpeername`` system call included) to read one of them.
In the ingest benchmark that was several percent of the sync's CPU for three small
requests and a few large responses per calendar.

:class:`AsyncioBackend` is the same contract (``httpcore.AsyncNetworkBackend``) on an
``asyncio.Protocol``: bytes received are buffered by the protocol, a read that finds the
buffer empty waits on one future, under ``asyncio.timeout`` only then; a write that fills
the transport's buffer waits for it to drain. TLS is asyncio's (``loop.start_tls``), with
the SSL context httpx made. Errors map to httpcore's exceptions exactly as its anyio
backend maps them: timeouts to ``ConnectTimeout``/``ReadTimeout``/``WriteTimeout``, a
refused or reset connection to ``ConnectError``/``ReadError``/``WriteError``; httpx turns
those into its own as ever. The pool, HTTP/1.1, keep-alive, proxies from the environment
(mounted by the client beside this transport) and limits are httpx's and httpcore's.
"""

# The ``timeout`` parameters are httpcore's interface (AsyncNetworkBackend/-Stream).
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Coroutine, Iterable
from typing import Any

import httpcore
import httpx
from httpcore import AsyncNetworkBackend, AsyncNetworkStream
from httpcore._backends.base import SOCKET_OPTION as SocketOption
from httpcore._utils import is_socket_readable


class _Protocol(asyncio.Protocol):
    """One connection's receive buffer and flow control."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.eof = False
        self.error: BaseException | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.paused = False
        self.drained: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.error = exc
        self._wake()
        self.paused = False
        self._drain()

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self._drain()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _drain(self) -> None:
        drained = self.drained
        if drained is not None and not drained.done():
            drained.set_result(None)


async def _wait(
    waiter: asyncio.Future[None],
    seconds: float | None,
    on_timeout: type[httpcore.TimeoutException],
) -> None:
    """Wait for ``waiter``, for at most ``seconds`` (None: no limit); past it, raise
    ``on_timeout``."""
    try:
        if seconds is None:
            await waiter
            return
        async with asyncio.timeout(seconds):
            await waiter
    except TimeoutError as exc:
        raise on_timeout(str(exc)) from exc


def _ended(proto: _Protocol) -> bytes:
    """What a read returns once the peer is done: end of stream, or the error it left."""
    if proto.error is not None:
        raise httpcore.ReadError(str(proto.error)) from proto.error
    return b""


class AsyncioStream(AsyncNetworkStream):
    """An ``httpcore.AsyncNetworkStream`` over an asyncio transport and :class:`_Protocol`."""

    def __init__(self, transport: asyncio.Transport, protocol: _Protocol) -> None:
        self._transport = transport
        self._protocol = protocol

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        proto = self._protocol
        if not proto.buffer:
            if proto.eof:
                return _ended(proto)
            waiter = proto.waiter = asyncio.get_running_loop().create_future()
            try:
                await _wait(waiter, timeout, httpcore.ReadTimeout)
            finally:
                proto.waiter = None
            if not proto.buffer:
                return _ended(proto)
        buffer = proto.buffer
        if len(buffer) <= max_bytes:
            data = bytes(buffer)
            buffer.clear()
        else:
            data = bytes(buffer[:max_bytes])
            del buffer[:max_bytes]
        return data

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        proto, transport = self._protocol, self._transport
        if transport.is_closing():
            raise httpcore.WriteError("the connection is closed")
        try:
            transport.write(buffer)
        except (OSError, RuntimeError) as exc:
            raise httpcore.WriteError(str(exc)) from exc
        if proto.paused:
            drained = proto.drained = asyncio.get_running_loop().create_future()
            try:
                await _wait(drained, timeout, httpcore.WriteTimeout)
            finally:
                proto.drained = None
            if proto.error is not None:
                raise httpcore.WriteError(str(proto.error)) from proto.error

    async def aclose(self) -> None:
        self._transport.close()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                tls = await loop.start_tls(
                    self._transport,
                    self._protocol,
                    ssl_context,
                    server_hostname=server_hostname,
                )
        except TimeoutError as exc:
            self._transport.abort()
            raise httpcore.ConnectTimeout(str(exc)) from exc
        except (OSError, ssl.SSLError, ConnectionError) as exc:
            self._transport.abort()
            raise httpcore.ConnectError(str(exc)) from exc
        if tls is None:  # the connection was lost during the handshake
            raise httpcore.ConnectError("the connection closed during the TLS handshake")
        assert isinstance(tls, asyncio.Transport)
        return AsyncioStream(tls, self._protocol)

    def get_extra_info(self, info: str) -> Any:
        transport = self._transport
        if info == "is_readable":
            proto = self._protocol
            if proto.eof or proto.buffer or transport.is_closing():
                return True
            sock = transport.get_extra_info("socket")
            return sock is not None and is_socket_readable(sock)
        if info == "ssl_object":
            return transport.get_extra_info("ssl_object")
        if info == "socket":
            return transport.get_extra_info("socket")
        if info == "client_addr":
            return transport.get_extra_info("sockname")
        if info == "server_addr":
            return transport.get_extra_info("peername")
        return None


class AsyncioBackend(AsyncNetworkBackend):
    """httpcore's network backend contract on asyncio (see the module docstring)."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> AsyncNetworkStream:
        local_addr = None if local_address is None else (local_address, 0)
        connecting = asyncio.get_running_loop().create_connection(
            _Protocol, host, port, local_addr=local_addr
        )
        return await _connect(connecting, timeout, socket_options)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> AsyncNetworkStream:
        connecting = asyncio.get_running_loop().create_unix_connection(_Protocol, path)
        return await _connect(connecting, timeout, socket_options)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


async def _connect(
    connecting: Coroutine[Any, Any, tuple[asyncio.BaseTransport, _Protocol]],
    seconds: float | None,
    socket_options: Iterable[SocketOption] | None,
) -> AsyncioStream:
    """The connection ``connecting`` opens within ``seconds``, with ``socket_options`` set;
    httpcore's errors for a timeout or a refusal."""
    try:
        async with asyncio.timeout(seconds):
            transport, proto = await connecting
    except TimeoutError as exc:
        raise httpcore.ConnectTimeout(str(exc)) from exc
    except OSError as exc:
        raise httpcore.ConnectError(str(exc)) from exc
    assert isinstance(transport, asyncio.Transport)
    sock: socket.socket | None = transport.get_extra_info("socket")
    try:
        for option in socket_options or ():
            if sock is not None:
                sock.setsockopt(*option)
    except OSError as exc:
        transport.abort()
        raise httpcore.ConnectError(str(exc)) from exc
    return AsyncioStream(transport, proto)


def provider_transport(
    limits: httpx.Limits, ssl_context: ssl.SSLContext | None = None
) -> httpx.AsyncHTTPTransport:
    """httpx's transport (HTTP/1.1; TLS verified with ``ssl_context``, by default httpx's
    own default context), its connection pool on :class:`AsyncioBackend`."""
    transport = httpx.AsyncHTTPTransport(limits=limits)
    # httpx builds its pool in __init__ and offers no network backend option: replace the
    # pool (unused so far) with the same one on ours (tests/providers/test_transport.py).
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=ssl_context or httpx.create_ssl_context(),
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        http1=True,
        http2=False,
        network_backend=AsyncioBackend(),
    )
    return transport
