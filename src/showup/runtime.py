"""The process-wide runtime: settings, clock, database, vault, HTTP client, providers.

The API and the worker share one Runtime. Tests build one around a FakeClock and an
emulator transport; production builds one from Settings.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from showup.clock import Clock, SystemClock
from showup.config import Settings
from showup.db.engine import engine_from_settings, make_sessionmaker
from showup.providers.base import CalendarProvider
from showup.providers.transport import provider_transport
from showup.security.vault import Vault
from showup.sync.tokens import TokenCache
from showup.webhooks.outbound import Outbound


class Notifier:
    """Wakes an in-process worker early (e.g. a new calendar wants its first sync now).

    ``notify()`` asks the worker to look at every job kind. ``notify("sync:google_calendar")``
    names the kinds that may have new work (a kind's name, or the part before its ``:``,
    e.g. ``"sync"`` for every provider's), so that a push notification costs a claim of its
    sync kind only, not one of every kind (on SQLite each claim is a write transaction).

    Only a latency optimisation: the database stays the schedule, so a worker in another
    process finds the same work on its next poll.
    """

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self._kinds: set[str] | None = set()  # named since the last wait; None: every kind

    def notify(self, *kinds: str) -> None:
        if not kinds:
            self._kinds = None
        elif self._kinds is not None:
            self._kinds.update(kinds)
        self._event.set()

    async def wait(self, seconds: float) -> frozenset[str] | None:
        """Until notified, or ``seconds``. Returns the kinds named since the last wait, or
        None for every kind (a notification that named none, or no notification)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), seconds)
        self._event.clear()
        kinds, self._kinds = self._kinds, set()
        return frozenset(kinds) if kinds else None


@dataclass
class Runtime:
    settings: Settings
    clock: Clock
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    vault: Vault
    http: httpx.AsyncClient
    providers: dict[str, CalendarProvider]
    # Outbound calls to tenants (webhooks, bot launch): a separate client so provider
    # faults and tenant faults never share connection pools or timeouts.
    webhook_http: httpx.AsyncClient
    notifier: Notifier = field(default_factory=Notifier)
    tokens: TokenCache = field(default_factory=TokenCache)
    # SSRF policy and DNS resolver for tenant URLs (tests inject a resolver).
    outbound: Outbound = field(default_factory=Outbound)

    def provider(self, platform: str) -> CalendarProvider:
        try:
            return self.providers[platform]
        except KeyError:
            raise LookupError(f"no provider for platform {platform!r}") from None

    async def aclose(self) -> None:
        await self.http.aclose()
        await self.webhook_http.aclose()
        await self.engine.dispose()


def build_providers(
    settings: Settings, http: httpx.AsyncClient, clock: Clock
) -> dict[str, CalendarProvider]:
    from showup.providers.google import GoogleCalendarProvider
    from showup.providers.microsoft import MicrosoftCalendarProvider

    return {
        "google_calendar": GoogleCalendarProvider(
            http,
            api_url=settings.google_api_url,
            token_url=settings.google_token_url,
            page_size=settings.sync_page_size,
            clock=clock,
        ),
        "microsoft_outlook": MicrosoftCalendarProvider(
            http,
            graph_url=settings.microsoft_graph_url,
            login_url=settings.microsoft_login_url,
            # Graph's page maximum is undocumented (PROTOCOLS §2.2): stay within 1000.
            page_size=min(settings.sync_page_size, 1000),
            clock=clock,
        ),
    }


def build_runtime(
    settings: Settings,
    *,
    clock: Clock | None = None,
    engine: AsyncEngine | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    webhook_transport: httpx.AsyncBaseTransport | None = None,
) -> Runtime:
    """Assemble a Runtime. ``transport`` lets tests route provider HTTP to an emulator,
    ``webhook_transport`` routes calls to tenants to a test receiver."""
    engine = engine or engine_from_settings(settings)
    timeout = settings.http_timeout.total_seconds()
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=50)
    http = httpx.AsyncClient(
        transport=transport or provider_transport(limits),
        timeout=httpx.Timeout(timeout),
        limits=limits,
        headers={"User-Agent": "showup/0.1"},
    )
    clock = clock or SystemClock()
    # Tenant URLs go through a client that connects only to addresses the SSRF policy
    # allows, resolved by ``outbound``'s resolver (DNS rebinding; webhooks/outbound.py).
    outbound = Outbound()
    if webhook_transport is None:
        webhook_transport = outbound.transport(settings)
    return Runtime(
        settings=settings,
        clock=clock,
        engine=engine,
        sessions=make_sessionmaker(engine),
        vault=Vault(settings.master_key_bytes()),
        http=http,
        providers=build_providers(settings, http, clock),
        webhook_http=httpx.AsyncClient(
            transport=webhook_transport,
            timeout=httpx.Timeout(15.0),
            follow_redirects=False,
            headers={"User-Agent": "showup-webhooks/0.1"},
        ),
        outbound=outbound,
    )
