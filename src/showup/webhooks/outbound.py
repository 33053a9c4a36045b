"""How showup reaches URLs chosen by tenants: the SSRF policy, the DNS resolver, the client.

The runtime holds one :class:`Outbound`. Production leaves ``resolver`` unset (the system
resolver); tests set it to answer like a rebinding DNS server would. Both users of the
resolver read it at call time, so setting it after the runtime is built affects both:

- :meth:`Outbound.check`: the API's check when a URL is stored, and the delivery and
  launch code's re-check before every attempt (``url_guard.resolve_and_check``);
- :meth:`Outbound.transport`: the runtime's ``webhook_http`` client, which resolves again
  when it opens a connection and connects only to an address the same policy allows
  (``security.egress``), so a DNS answer that changed after the re-check cannot take a
  request to a private or metadata address.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass

from showup.config import Settings
from showup.security.egress import GuardedTransport
from showup.security.url_guard import (
    IPAddress,
    Resolver,
    UrlPolicy,
    UrlRejected,
    resolve_and_check,
    system_resolver,
)


def webhook_policy(settings: Settings) -> UrlPolicy:
    """The URL policy for webhook targets, from the two ``allow_*`` settings."""
    return UrlPolicy(
        allow_http_loopback=settings.allow_http_loopback_webhooks,
        allow_private=settings.allow_private_webhook_targets,
    )


@dataclass
class Outbound:
    resolver: Resolver | None = None

    async def resolve(self, host: str, port: int) -> list[str]:
        """Resolve with ``resolver`` as it is now (the system's when unset)."""
        return await (self.resolver or system_resolver)(host, port)

    async def check(self, url: str, settings: Settings) -> list[IPAddress]:
        """Syntax, resolution and address checks; raises ``UrlRejected`` with a code.

        The lookup is bounded by ``webhook_timeout``: a DNS server that never answers is
        ``unresolvable``, not a stuck request or worker slot.
        """
        try:
            async with asyncio.timeout(settings.webhook_timeout.total_seconds()):
                return await resolve_and_check(url, webhook_policy(settings), resolver=self.resolve)
        except TimeoutError:
            raise UrlRejected("unresolvable", "host name lookup timed out") from None

    def transport(
        self, settings: Settings, *, ssl_context: ssl.SSLContext | None = None
    ) -> GuardedTransport:
        """The transport for a client to tenant URLs: ``settings``' policy, our resolver.

        A refused address raises ``security.egress.EgressRejected`` (a ``UrlRejected``
        with the guard's code) from the client's send.
        """
        return GuardedTransport(
            webhook_policy(settings), resolver=self.resolve, ssl_context=ssl_context
        )
