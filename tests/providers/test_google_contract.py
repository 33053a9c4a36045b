"""The provider contract suite against the Google emulator, plus Google-only wire cases.

The adapter talks to the emulator's ASGI app in-process through ``httpx.ASGITransport``
(DESIGN invariant 10); the world and the test share one FakeClock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from showup.clock import FakeClock
from showup.emulator import World, create_app
from showup.providers.base import OAuthCredentials
from showup.providers.errors import AuthRevoked, RateLimited, Rejected
from showup.providers.google import GoogleCalendarProvider

from .contract import CachingTokenSource, FaultKind, Harness, ProviderContract, single, sync

BASE = "http://google.emulator.test"
OWNER = "ada@example.com"
TIME_ZONE = "Europe/Berlin"


class GoogleBackend:
    """:class:`~tests.providers.contract.Backend` over the emulator's World."""

    def __init__(self, world: World, email: str, refresh_token: str) -> None:
        self.world = world
        self.email = email
        self.refresh_token = refresh_token

    def create_event(self, event: dict[str, Any]) -> str:
        return str(self.world.create_event(self.email, event)["id"])

    def update_event(self, handle: str, patch: dict[str, Any]) -> None:
        self.world.update_event(self.email, handle, patch)

    def move_event(self, handle: str, start: datetime, end: datetime | None = None) -> None:
        self.world.move_event(self.email, handle, start, end)

    def cancel_event(self, handle: str) -> None:
        self.world.cancel_event(self.email, handle)

    def instance(self, series: str, original_start: datetime) -> str:
        # PROTOCOLS §1.3: instance ids are {recurringEventId}_{original start, UTC}.
        return f"{series}_{original_start.astimezone(UTC):%Y%m%dT%H%M%SZ}"

    def expire_cursors(self) -> None:
        self.world.expire_sync_tokens()

    def revoke(self) -> None:
        self.world.revoke(self.refresh_token)

    def expire_access_tokens(self) -> None:
        clock = self.world.clock
        assert isinstance(clock, FakeClock)
        clock.advance(self.world.settings.access_token_ttl + timedelta(seconds=1))

    def fail_next(self, kind: FaultKind, *, retry_after: timedelta | None = None) -> None:
        seconds = retry_after.total_seconds() if retry_after is not None else None
        if kind == "rate_limit":
            self.world.faults.add(429, path_contains="/events", retry_after=seconds)
        elif kind == "server_error":
            self.world.faults.add(503, path_contains="/events", retry_after=seconds)
        else:
            self.world.faults.add(500, path_contains="/token", retry_after=seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 11, 2, 9, 0, tzinfo=UTC))


@pytest.fixture
def world(clock: FakeClock) -> World:
    return World(clock)


@pytest.fixture
async def google(world: World, clock: FakeClock) -> AsyncIterator[Harness]:
    client_id, client_secret = world.add_oauth_client()
    world.add_user(OWNER, name="Ada", time_zone=TIME_ZONE)
    refresh = world.grant(client_id, OWNER)
    transport = httpx.ASGITransport(app=create_app(world))
    async with httpx.AsyncClient(transport=transport) as http:
        provider = GoogleCalendarProvider(
            http,
            api_url=f"{BASE}/calendar/v3",
            token_url=f"{BASE}/token",
            page_size=4,
            clock=clock,
        )
        creds = OAuthCredentials(client_id, client_secret, refresh)
        yield Harness(
            provider=provider,
            tokens=CachingTokenSource(provider, creds),
            backend=GoogleBackend(world, OWNER, refresh),
            clock=clock,
            calendar_id="primary",
            owner_email=OWNER,
            time_zone=TIME_ZONE,
            missing_calendar_id="nobody@example.com",
        )


class TestGoogleContract(ProviderContract):
    @pytest.fixture
    async def harness(self, google: Harness) -> AsyncIterator[Harness]:
        yield google


# -- Google-only cases (PROTOCOLS §1.6) over the emulator -------------------------------------


@pytest.mark.parametrize("reason", ["rateLimitExceeded", "userRateLimitExceeded", "quotaExceeded"])
async def test_403_usage_limits_are_rate_limited(
    google: Harness, world: World, reason: str
) -> None:
    world.faults.add(403, path_contains="/events", reason=reason, retry_after=30)
    with pytest.raises(RateLimited) as info:
        await sync(google)
    assert info.value.status == 403
    assert info.value.retry_after == timedelta(seconds=30)


async def test_secondary_calendar_by_encoded_id(google: Harness, world: World) -> None:
    calendar_id = world.add_calendar(OWNER, "Team", time_zone="America/New_York")
    world.create_event(OWNER, single(google, "Team sync", (2026, 11, 3, 10, 0)), calendar_id)
    info = await google.provider.get_calendar(google.tokens, calendar_id)
    assert info.platform_calendar_id == calendar_id
    assert info.email is None  # …@group.calendar.google.com has no owner address
    assert info.time_zone == "America/New_York"
    pages = [
        p
        async for p in google.provider.list_changes(
            google.tokens, calendar_id, cursor=None, window=google.window
        )
    ]
    assert [e.title for p in pages for e in p.upserts] == ["Team sync"]


async def test_unknown_client_is_auth_revoked(google: Harness) -> None:
    creds = OAuthCredentials(
        "nope.apps.googleusercontent.com", "x", google.tokens.creds.refresh_token
    )
    with pytest.raises(AuthRevoked, match="invalid_client"):
        await google.provider.refresh_access_token(creds)


async def test_invalid_grant_message_carries_google_description(google: Harness) -> None:
    google.backend.revoke()
    with pytest.raises(AuthRevoked, match="Token has been expired or revoked"):
        await google.provider.refresh_access_token(google.tokens.creds)


async def test_all_day_events_use_the_calendar_zone(google: Harness) -> None:
    google.backend.create_event(
        {"summary": "Holiday", "start": {"date": "2026-11-05"}, "end": {"date": "2026-11-07"}}
    )
    (event,) = (await sync(google)).upserts
    assert event.is_all_day
    assert event.start_time == datetime(2026, 11, 4, 23, 0, tzinfo=UTC)  # CET midnight
    assert event.end_time == datetime(2026, 11, 6, 23, 0, tzinfo=UTC)  # exclusive


async def test_rejected_when_the_server_refuses_our_query(google: Harness, world: World) -> None:
    # A 4xx we did not expect is a bug or a setting: Rejected, not retried.
    world.faults.add(400, path_contains="/events", reason="badRequest")
    with pytest.raises(Rejected):
        await sync(google)
