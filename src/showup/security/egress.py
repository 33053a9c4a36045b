"""HTTP to tenant-chosen URLs that connects only to addresses the SSRF guard allowed.

Checking a URL (``url_guard.resolve_and_check``) and then handing it to an HTTP client
leaves a gap: the client resolves the name again when it connects, and a rebinding DNS
server can answer a public address to the check and ``169.254.169.254`` or ``10.0.0.7``
to the connection. Here the lookup *is* the connection's: :class:`GuardedBackend` is an
httpcore network backend whose ``connect_tcp(host, port)`` resolves ``host`` through
``url_guard.resolve_host`` (the guard's address policy, applied to every answer) and
opens the socket to one of those vetted addresses, never to the name. Whatever a
pre-attempt check saw, a connection can only reach an address the policy allows.

TLS is unaffected: httpcore calls ``start_tls(server_hostname=<the URL's host>)`` on the
stream this backend returns, so SNI and certificate verification still use the host
name, not the address (tests/security/test_egress.py checks it against a real server).

:class:`GuardedTransport` is the httpx transport for such a client. It sends ``https``
through a pool on a :class:`GuardedBackend`, plain ``http`` (development only,
``allow_http_loopback``) through a second pool whose backend accepts loopback addresses
only, and refuses every other scheme. It does not use ``HTTP(S)_PROXY`` from the
environment: a proxy would do its own lookup, out of our reach.

A refusal raises :class:`EgressRejected`, which is a ``url_guard.UrlRejected`` (its
``code`` is the guard's: ``private_address``, ``unresolvable``, ``scheme_not_allowed``,
``host_not_allowed``) and also an ``httpx.TransportError``, so code that only knows httpx
still treats it as a failed request. Catch ``UrlRejected`` first to record the code.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable
from typing import Final

import anyio
import httpcore
import httpx

from showup.security.url_guard import (
    IPAddress,
    RejectCode,
    Resolver,
    UrlPolicy,
    UrlRejected,
    resolve_host,
)

__all__ = ["EgressRejected", "GuardedBackend", "GuardedTransport"]

# As anyio's connect_tcp (RFC 8305 "Happy Eyeballs"): start the next address's attempt
# when the previous one has neither failed nor succeeded after this long.
HAPPY_EYEBALLS_DELAY: Final = 0.25

SocketOption = (
    tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]
)


class EgressRejected(UrlRejected, httpx.TransportError):
    """The guard refused the address (or scheme) of a request while it was being sent."""

    def __init__(self, code: RejectCode, message: str) -> None:
        UrlRejected.__init__(self, code, message)
        httpx.TransportError.__init__(self, message)

    @classmethod
    def from_rejection(cls, exc: UrlRejected) -> EgressRejected:
        return cls(exc.code, exc.message)


def _happy_eyeballs_order(addresses: list[IPAddress]) -> list[IPAddress]:
    """The first IPv6 address, then the first IPv4 one, then the rest in resolver order."""
    first6 = next((a for a in addresses if a.version == 6), None)
    first4 = next((a for a in addresses if a.version == 4), None)
    head = [a for a in (first6, first4) if a is not None]
    return head + [a for a in addresses if a not in head]


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that resolves names itself and connects only to
    addresses ``policy`` allows (all of them must be; see ``url_guard.resolve_host``).

    ``resolver`` answers lookups (default: the system's); ``loopback_only`` is the
    plain-http rule. ``inner`` opens the sockets, to IP addresses only (default: httpcore's
    anyio backend, which httpx uses under asyncio).
    """

    def __init__(
        self,
        policy: UrlPolicy,
        *,
        resolver: Resolver | None = None,
        loopback_only: bool = False,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self.policy = policy
        self.resolver = resolver
        self.loopback_only = loopback_only
        self._inner = inner or httpcore.AnyIOBackend()

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        """The vetted addresses for ``host``; raises :class:`EgressRejected`."""
        try:
            return await resolve_host(
                host,
                port,
                self.policy,
                resolver=self.resolver,
                loopback_only=self.loopback_only,
            )
        except UrlRejected as exc:
            raise EgressRejected.from_rejection(exc) from exc

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        # The connect timeout bounds the lookup and the attempts together.
        try:
            with anyio.fail_after(timeout):
                addresses = await self.resolve(host, port)
                return await self._connect_any(
                    _happy_eyeballs_order(addresses), port, local_address, socket_options
                )
        except TimeoutError:
            raise httpcore.ConnectTimeout("connection timed out") from None

    async def _connect_any(
        self,
        addresses: list[IPAddress],
        port: int,
        local_address: str | None,
        socket_options: Iterable[SocketOption] | None,
    ) -> httpcore.AsyncNetworkStream:
        """Race the addresses as Happy Eyeballs does: the first connection wins."""
        options = list(socket_options) if socket_options is not None else None
        if len(addresses) == 1:  # nothing to race (every literal-IP URL): skip the task group
            return await self._inner.connect_tcp(
                str(addresses[0]), port, local_address=local_address, socket_options=options
            )
        winner: httpcore.AsyncNetworkStream | None = None
        errors: list[httpcore.ConnectError] = []

        async def attempt(address: IPAddress, done: anyio.Event) -> None:
            nonlocal winner
            try:
                stream = await self._inner.connect_tcp(
                    str(address), port, local_address=local_address, socket_options=options
                )
            except httpcore.ConnectError as exc:
                errors.append(exc)
                done.set()
                return
            if winner is None:
                winner = stream
                tg.cancel_scope.cancel()
            else:  # pragma: no cover - two attempts finishing in the same loop turn
                await stream.aclose()

        async with anyio.create_task_group() as tg:
            for address in addresses:
                done = anyio.Event()
                tg.start_soon(attempt, address, done)
                with anyio.move_on_after(HAPPY_EYEBALLS_DELAY):
                    await done.wait()
        if winner is not None:
            return winner
        if len(errors) == 1:
            raise errors[0]
        raise httpcore.ConnectError(f"all {len(errors)} connection attempts failed")

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise EgressRejected("invalid_url", "unix sockets are not allowed")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _PoolTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport, over an httpcore pool that connects through ``backend``.

    httpx has no parameter for the network backend; its transport keeps the httpcore pool
    in ``_pool`` (httpx 0.23 to 0.28), which is replaced here. tests/security exercise
    this through a real client, so an httpx that changes it fails them.
    """

    def __init__(
        self, backend: GuardedBackend, ssl_context: ssl.SSLContext, limits: httpx.Limits
    ) -> None:
        super().__init__(verify=ssl_context, limits=limits, trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=False,
            network_backend=backend,
        )


class GuardedTransport(httpx.AsyncBaseTransport):
    """The httpx transport for tenant URLs (see the module docstring).

    ``ssl_context`` defaults to httpx's (certifi, or ``SSL_CERT_FILE``/``SSL_CERT_DIR``
    as httpx honours them); tests pass one trusting their own CA. ``resolver`` and
    ``inner`` as for :class:`GuardedBackend`.
    """

    def __init__(
        self,
        policy: UrlPolicy,
        *,
        resolver: Resolver | None = None,
        ssl_context: ssl.SSLContext | None = None,
        limits: httpx.Limits | None = None,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        ssl_context = ssl_context or httpx.create_ssl_context()
        limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20)
        self._https = _PoolTransport(
            GuardedBackend(policy, resolver=resolver, inner=inner), ssl_context, limits
        )
        self._http: _PoolTransport | None = None
        if policy.allow_http_loopback:
            backend = GuardedBackend(policy, resolver=resolver, loopback_only=True, inner=inner)
            self._http = _PoolTransport(backend, ssl_context, limits)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        scheme = request.url.scheme
        if scheme == "https":
            return await self._https.handle_async_request(request)
        if scheme == "http" and self._http is not None:
            return await self._http.handle_async_request(request)
        raise EgressRejected(
            "scheme_not_allowed", "URL must use https (http only to loopback in development)"
        )

    async def aclose(self) -> None:
        await self._https.aclose()
        if self._http is not None:
            await self._http.aclose()
