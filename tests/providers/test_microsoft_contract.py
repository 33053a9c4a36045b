"""The provider contract suite against the Graph emulator, plus Graph-only wire cases.

The adapter talks to the emulator's ASGI app in-process through ``httpx.ASGITransport``
(DESIGN invariant 10); the world and the test share one FakeClock. The suite runs twice:
with the emulator's realistic quirks (replays within a round, sparse occurrences, old
refresh tokens refused so rotation must be honoured) and with them off.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from showup.clock import FakeClock
from showup.emulator import World, create_app
from showup.emulator.graph import graph_calendar_id, graph_event_id
from showup.providers.base import OAuthCredentials
from showup.providers.errors import AuthRevoked, CursorExpired, Rejected
from showup.providers.microsoft import MicrosoftCalendarProvider

from .contract import CachingTokenSource, FaultKind, Harness, ProviderContract, single, sync

BASE = "http://graph.emulator.test"
GRAPH = f"{BASE}/graph/v1.0"
OWNER = "ada@example.com"
TIME_ZONE = "Europe/Berlin"
DELTA = "/calendarView/delta"


class GraphBackend:
    """:class:`~tests.providers.contract.Backend` over the emulator's World (world ids)."""

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
        # World instance ids: {series}_{original start, UTC} (docs/emulator.md).
        return f"{series}_{original_start.astimezone(UTC):%Y%m%dT%H%M%SZ}"

    def expire_cursors(self) -> None:
        self.world.expire_sync_tokens()

    def revoke(self) -> None:
        self.world.revoke(self.refresh_token)  # kills every rotated token of the grant

    def expire_access_tokens(self) -> None:
        clock = self.world.clock
        assert isinstance(clock, FakeClock)
        clock.advance(self.world.settings.access_token_ttl + timedelta(seconds=1))

    def fail_next(self, kind: FaultKind, *, retry_after: timedelta | None = None) -> None:
        seconds = retry_after.total_seconds() if retry_after is not None else None
        if kind == "rate_limit":
            self.world.faults.add(429, path_contains=DELTA, retry_after=seconds)
        elif kind == "server_error":
            self.world.faults.add(503, path_contains=DELTA, retry_after=seconds)
        else:
            self.world.faults.add(500, path_contains="/oauth2/v2.0/token", retry_after=seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 11, 2, 9, 0, tzinfo=UTC))


@pytest.fixture
def world(clock: FakeClock) -> World:
    return World(clock)


async def _harness(world: World, clock: FakeClock, *, quirks: bool) -> AsyncIterator[Harness]:
    world.settings.graph_replays = quirks
    world.settings.graph_sparse_occurrences = quirks
    world.settings.quirky_pages = quirks
    # Rotation must be honoured: a reused (rotated-away) refresh token is invalid_grant.
    world.settings.graph_old_refresh_tokens = not quirks
    client_id, client_secret = world.add_oauth_client(provider="microsoft")
    world.add_user(OWNER, name="Ada", time_zone=TIME_ZONE)
    refresh = world.grant(client_id, OWNER)
    transport = httpx.ASGITransport(app=create_app(world))
    async with httpx.AsyncClient(transport=transport) as http:
        provider = MicrosoftCalendarProvider(
            http, graph_url=GRAPH, login_url=f"{BASE}/login", page_size=4, clock=clock
        )
        creds = OAuthCredentials(client_id, client_secret, refresh)
        yield Harness(
            provider=provider,
            tokens=CachingTokenSource(provider, creds),
            backend=GraphBackend(world, OWNER, refresh),
            clock=clock,
            calendar_id="primary",
            owner_email=OWNER,
            time_zone=TIME_ZONE,
            missing_calendar_id="AAMkAGNvbnRyYWN0LW1pc3Npbmc=",
            has_empty_pages=quirks,
            # The adapter drops in-round replays (§2.2), so even the quirky rounds are exact.
            exact_incremental=True,
            # Graph has the zone only in mailboxSettings (another scope); None is fine.
            time_zone_known=False,
        )


@pytest.fixture
async def graph(world: World, clock: FakeClock) -> AsyncIterator[Harness]:
    async for harness in _harness(world, clock, quirks=True):
        yield harness


@pytest.fixture
async def graph_plain(world: World, clock: FakeClock) -> AsyncIterator[Harness]:
    async for harness in _harness(world, clock, quirks=False):
        yield harness


class TestMicrosoftContract(ProviderContract):
    @pytest.fixture
    async def harness(self, graph: Harness) -> AsyncIterator[Harness]:
        yield graph


class TestMicrosoftContractWithoutQuirks(ProviderContract):
    @pytest.fixture
    async def harness(self, graph_plain: Harness) -> AsyncIterator[Harness]:
        yield graph_plain


# -- Graph-only cases (PROTOCOLS §2) over the emulator ----------------------------------------


async def test_every_refresh_rotates_and_the_new_token_is_the_one_that_works(
    graph: Harness, world: World
) -> None:
    creds = graph.tokens.creds
    first = await graph.provider.refresh_access_token(creds)
    assert first.rotated_refresh_token and first.rotated_refresh_token != creds.refresh_token
    second = await graph.provider.refresh_access_token(
        OAuthCredentials(creds.client_id, creds.client_secret, first.rotated_refresh_token)
    )
    assert second.rotated_refresh_token not in (None, first.rotated_refresh_token)
    # The emulator is set to refuse rotated-away tokens (graph_old_refresh_tokens=False).
    with pytest.raises(AuthRevoked, match="invalid_grant"):
        await graph.provider.refresh_access_token(creds)


async def test_explicit_tenant_and_aadsts_description(graph: Harness) -> None:
    creds = graph.tokens.creds
    tenant = OAuthCredentials(
        creds.client_id, creds.client_secret, creds.refresh_token, oauth_tenant="organizations"
    )
    assert (await graph.provider.refresh_access_token(tenant)).token
    wrong = OAuthCredentials(creds.client_id, "not-the-secret", creds.refresh_token)
    with pytest.raises(AuthRevoked, match="invalid_client: AADSTS"):
        await graph.provider.refresh_access_token(wrong)


async def test_a_google_client_is_refused(graph: Harness, world: World) -> None:
    google_id, google_secret = world.add_oauth_client()
    refresh = world.grant(google_id, OWNER)
    # docs/emulator.md says invalid_client; the emulator answers invalid_grant (AADSTS65001,
    # its scope check runs first). Either way the user must reconnect.
    with pytest.raises(AuthRevoked) as info:
        await graph.provider.refresh_access_token(
            OAuthCredentials(google_id, google_secret, refresh)
        )
    assert "Trace ID" not in str(info.value)


async def test_sync_state_not_found_is_cursor_expired(graph: Harness, world: World) -> None:
    graph.backend.create_event(single(graph, "Standup", (2026, 11, 3, 10, 0)))
    first = await sync(graph)
    assert first.cursor.startswith(f"{GRAPH}/me/calendarView/delta?")
    world.expire_sync_tokens()
    with pytest.raises(CursorExpired, match="SyncStateNotFound"):
        await sync(graph, first.cursor)


async def test_cursor_pointing_elsewhere_is_never_called(graph: Harness) -> None:
    first = await sync(graph)
    forged = first.cursor.replace("graph.emulator.test", "attacker.test")
    with pytest.raises(CursorExpired):
        await sync(graph, forged)


async def test_secondary_calendar(graph: Harness, world: World) -> None:
    calendar = world.add_calendar(OWNER, "Team", time_zone="America/New_York")
    world.create_event(OWNER, single(graph, "Team sync", (2026, 11, 3, 10, 0)), calendar)
    graph_id = graph_calendar_id(world, OWNER, calendar)
    info = await graph.provider.get_calendar(graph.tokens, graph_id)
    assert info.platform_calendar_id == graph_id
    assert info.summary == "Team"
    assert info.email == OWNER
    pages = [
        p
        async for p in graph.provider.list_changes(
            graph.tokens, graph_id, cursor=None, window=graph.window
        )
    ]
    assert [e.title for p in pages for e in p.upserts] == ["Team sync"]


async def test_teams_link_people_and_self(graph: Harness, world: World) -> None:
    world.add_user("bob@partner.test", name="Bob", time_zone="UTC")
    event = world.create_event(
        "bob@partner.test",
        {
            **single(graph, "Teams review", (2026, 11, 3, 14, 0)),
            "conferenceData": {
                "entryPoints": [
                    {
                        "entryPointType": "video",
                        "uri": "https://teams.microsoft.com/l/meetup-join/19%3ameeting_Zm9v%40thread.v2/0",
                    }
                ]
            },
            "attendees": [
                {"email": "bob@partner.test", "responseStatus": "accepted"},
                {"email": OWNER, "responseStatus": "needsAction"},
                {"email": "room@example.com", "resource": True, "responseStatus": "accepted"},
            ],
        },
    )
    world.respond(OWNER, event["id"], "tentative")
    (ev,) = (await sync(graph)).upserts
    assert ev.platform_id == graph_event_id(world, OWNER, event["id"])
    assert ev.meeting_platform == "microsoft_teams"
    assert ev.meeting_url is not None and "teams.microsoft.com" in ev.meeting_url
    assert ev.organizer_email == "bob@partner.test"
    people = {a.email: a for a in ev.attendees}
    assert people[OWNER].is_self and people[OWNER].response_status == "tentative"
    assert people["room@example.com"].is_resource
    assert sum(a.is_self for a in ev.attendees) == 1


async def test_all_day_events_are_midnights_in_the_event_zone(graph: Harness) -> None:
    graph.backend.create_event(
        {"summary": "Holiday", "start": {"date": "2026-11-05"}, "end": {"date": "2026-11-07"}}
    )
    (event,) = (await sync(graph)).upserts
    assert event.is_all_day
    assert event.start_time == datetime(2026, 11, 4, 23, 0, tzinfo=UTC)  # CET midnight
    assert event.end_time == datetime(2026, 11, 6, 23, 0, tzinfo=UTC)


async def test_sparse_occurrences_are_complete(graph: Harness) -> None:
    graph.backend.create_event(
        {
            **single(graph, "Weekly", (2026, 11, 4, 15, 0)),
            "location": "https://zoom.us/j/1234567890",
            "recurrence": ["RRULE:FREQ=WEEKLY;COUNT=3"],
        }
    )
    result = await sync(graph)
    assert len(result.upserts) == 3
    for event in result.upserts:
        assert event.title == "Weekly" and event.recurring_event_id
        assert event.meeting_url is not None and "zoom.us" in event.meeting_url


async def test_rejected_when_graph_refuses_our_query(graph: Harness, world: World) -> None:
    world.faults.add(400, path_contains=DELTA)
    with pytest.raises(Rejected):
        await sync(graph)
