"""How showup reaches URLs chosen by tenants: the SSRF policy and the DNS resolver.

The runtime holds one :class:`Outbound`. Production leaves ``resolver`` unset (the system
resolver); tests set it to answer like a rebinding DNS server would, so the delivery
job's re-check (``url_guard.resolve_and_check`` before every attempt) is exercised
without touching real DNS.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from showup.config import Settings
from showup.security.url_guard import (
    IPAddress,
    Resolver,
    UrlPolicy,
    UrlRejected,
    resolve_and_check,
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

    async def check(self, url: str, settings: Settings) -> list[IPAddress]:
        """Syntax, resolution and address checks; raises ``UrlRejected`` with a code.

        The lookup is bounded by ``webhook_timeout``: a DNS server that never answers is
        ``unresolvable``, not a stuck request or worker slot.
        """
        try:
            async with asyncio.timeout(settings.webhook_timeout.total_seconds()):
                return await resolve_and_check(
                    url, webhook_policy(settings), resolver=self.resolver
                )
        except TimeoutError:
            raise UrlRejected("unresolvable", "host name lookup timed out") from None
