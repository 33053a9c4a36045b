"""Microsoft-only end-to-end cases (PROTOCOLS §2) through the API and the worker.

The shared end-to-end tests (test_sync_e2e.py) already run for both platforms; these pin
what only Graph has: refresh-token rotation stored on every refresh, the tenant in the
token URL, Teams join links, and attendee copies cancelled in place.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select

from showup.db.models import Calendar
from tests.sync.helpers import Connector, all_events, by_title

ALICE = "alice@example.com"
BOB = "bob@partner.test"
TEAMS = "https://teams.microsoft.com/l/meetup-join/19%3ameeting_Zm9vYmFy%40thread.v2/0"


async def stored_refresh_token(runtime: Any, calendar_id: str) -> str:
    async with runtime.sessions() as s:
        cal = await s.get(Calendar, calendar_id)
        assert cal is not None
        return str(runtime.vault.open(cal.tenant_id, cal.oauth_refresh_token_enc))


async def test_rotated_refresh_token_is_stored_on_every_refresh(
    api: httpx.AsyncClient, world: Any, worker: Any, clock: Any, runtime: Any
) -> None:
    # Refuse rotated-away tokens, as a strict tenant policy would: only storing works.
    world.settings.graph_old_refresh_tokens = False
    world.add_user(ALICE, name="Alice", time_zone="Europe/Berlin")
    world.create_event(
        ALICE,
        {
            "summary": "Standup",
            "start": {"dateTime": "2026-11-03T09:00:00Z"},
            "end": {"dateTime": "2026-11-03T09:15:00Z"},
        },
    )
    conn = Connector(api, world, "microsoft_outlook")
    cid = await conn.connect(ALICE)
    assert [o.result for o in await worker.drain()] == ["synced"]
    tokens = conn.all_refresh_tokens(ALICE)
    assert len(tokens) == 2
    assert await stored_refresh_token(runtime, cid) == tokens[-1]

    for round_ in range(2):  # each access-token expiry means a refresh, hence a new token
        clock.advance(world.settings.access_token_ttl + timedelta(minutes=1))
        assert [o.result for o in await worker.drain()] == ["synced"], round_
        tokens = conn.all_refresh_tokens(ALICE)
        assert len(tokens) == 3 + round_
        assert await stored_refresh_token(runtime, cid) == tokens[-1]
    cal = (await api.get(f"/api/v2/calendars/{cid}/")).json()
    assert cal["status"] == "connected" and cal["platform_email"] == ALICE
    assert cal["oauth_tenant_id"] == "common"


async def test_tenant_and_teams_links_and_attendee_cancellations(
    api: httpx.AsyncClient, world: Any, worker: Any, clock: Any
) -> None:
    world.add_user(ALICE, name="Alice", time_zone="Europe/Berlin")
    world.add_user(BOB, name="Bob", time_zone="UTC")
    conn = Connector(api, world, "microsoft_outlook")
    refresh = world.grant(conn.client_id, ALICE)
    r = await api.post(
        "/api/v2/calendars/",
        json={
            "platform": "microsoft_outlook",
            "oauth_client_id": conn.client_id,
            "oauth_client_secret": conn.client_secret,
            "oauth_refresh_token": refresh,
            "oauth_tenant_id": "contoso.onmicrosoft.com",
            "external_user_id": ALICE,
        },
    )
    assert r.status_code == 201, r.text
    cid = r.json()["id"]
    meeting = world.create_event(
        BOB,
        {
            "summary": "Partner review",
            "start": {"dateTime": "2026-11-04T14:00:00Z"},
            "end": {"dateTime": "2026-11-04T15:00:00Z"},
            "conferenceData": {"entryPoints": [{"entryPointType": "video", "uri": TEAMS}]},
            "description": "Backup: https://zoom.us/j/1234567890",
            "attendees": [{"email": BOB}, {"email": ALICE}],
        },
    )
    assert [o.result for o in await worker.drain()] == ["synced"]
    (review,) = by_title(await all_events(api, calendar_id=cid))["Partner review"]
    # onlineMeeting.joinUrl first, even though the body has a Zoom link too.
    assert review["meeting_platform"] == "microsoft_teams"
    assert "teams.microsoft.com" in review["meeting_url"]
    assert review["raw"]["seriesMasterId"] is None
    people = {a["email"]: a for a in review["attendees"]}
    assert people[ALICE]["is_self"] and not people[ALICE]["is_organizer"]

    # Bob cancels: Outlook keeps it on Alice's calendar with isCancelled: a deletion here.
    world.cancel_event(BOB, meeting["id"])
    clock.advance(timedelta(minutes=5))
    assert [o.result for o in await worker.drain()] == ["synced"]
    (gone,) = await all_events(api, calendar_id=cid)
    assert gone["is_deleted"] is True


async def test_revoked_grant_disconnects_with_the_aadsts_reason(
    api: httpx.AsyncClient, world: Any, worker: Any, clock: Any, runtime: Any
) -> None:
    world.add_user(ALICE, name="Alice", time_zone="Europe/Berlin")
    conn = Connector(api, world, "microsoft_outlook")
    cid = await conn.connect(ALICE)
    await worker.drain()
    world.revoke(conn.refresh_tokens[ALICE])
    clock.advance(timedelta(minutes=5))
    assert [o.result for o in await worker.drain()] == ["disconnected"]
    cal = (await api.get(f"/api/v2/calendars/{cid}/")).json()
    error = cal["status_changes"][-1]["details"]["error"]
    assert "invalid_grant" in error and "AADSTS" in error and "Trace ID" not in error
    async with runtime.sessions() as s:
        row = await s.scalar(select(Calendar).where(Calendar.id == cid))
        assert row is not None and row.next_sync_at is None
