"""Bots follow Outlook meetings too: Graph emulator → sync → reconcile → launch.

The same flow as test_follow_meetings.py with a Microsoft calendar, plus one meeting seen
from an Outlook calendar and a Google calendar at once: its Teams link normalizes to the
same URL on both, so one deduplication key gives one bot.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.bots.support import Receiver, all_bots, event_of, get_bot, schedule, verify
from tests.sync.helpers import Connector

ALICE = "alice@example.com"
BOB = "bob@example.com"
TEAMS = "https://teams.microsoft.com/l/meetup-join/19%3ameeting_Zm9vYmFy%40thread.v2/0"


def teams_meeting(summary: str, start: str, end: str, **extra: Any) -> dict[str, Any]:
    return {
        "summary": summary,
        "start": {"dateTime": start},
        "end": {"dateTime": end},
        "conferenceData": {"entryPoints": [{"entryPointType": "video", "uri": TEAMS}]},
        **extra,
    }


async def test_outlook_meeting_moves_and_its_bot_follows_then_launches(
    api: httpx.AsyncClient,
    world: Any,
    worker: Any,
    clock: Any,
    runtime: Any,
    receiver: Receiver,
    secret: str,
) -> None:
    world.add_user(ALICE, name="Alice")
    wid = world.create_event(
        ALICE, teams_meeting("Design review", "2026-11-02T15:00:00Z", "2026-11-02T16:00:00Z")
    )["id"]
    conn = Connector(api, world, "microsoft_outlook")
    cid = await conn.connect(ALICE)
    await worker.drain()
    ev = await event_of(api, cid, "Design review")
    assert ev["platform"] == "microsoft_outlook"
    assert ev["platform_id"] == conn.pid(ALICE, wid)
    assert ev["meeting_platform"] == "microsoft_teams"

    r = await schedule(api, ev["id"], "design-review")
    assert r.status_code == 200, r.text
    [entry] = r.json()["bots"]
    bot_id = entry["bot_id"]
    assert entry["start_time"] == "2026-11-02T14:58:00Z"
    assert entry["meeting_url"] == ev["meeting_url"]

    clock.advance(timedelta(minutes=1))
    world.move_event(
        ALICE,
        wid,
        datetime(2026, 11, 2, 17, tzinfo=UTC),
        datetime(2026, 11, 2, 18, tzinfo=UTC),
    )
    clock.advance(timedelta(minutes=5))
    await worker.drain()
    bot = await get_bot(api, bot_id)
    assert (bot["status"], bot["join_at"]) == ("scheduled", "2026-11-02T16:58:00Z")

    clock.set(datetime(2026, 11, 2, 16, 58, tzinfo=UTC))
    await worker.drain()
    [dispatch] = receiver.of_type("bot.dispatch")
    data = verify(secret, dispatch)["data"]
    assert data["bot_id"] == bot_id and data["meeting_platform"] == "microsoft_teams"
    assert data["join_at"] == "2026-11-02T16:58:00Z"
    assert data["calendar_users"] == [ALICE]


async def test_one_meeting_on_outlook_and_google_calendars_shares_one_bot(
    api: httpx.AsyncClient, world: Any, worker: Any, clock: Any, runtime: Any, secret: str
) -> None:
    world.add_user(ALICE, name="Alice")
    world.add_user(BOB, name="Bob")
    wid = world.create_event(
        ALICE,
        teams_meeting(
            "Kickoff", "2026-11-03T10:00:00Z", "2026-11-03T11:00:00Z", attendees=[{"email": BOB}]
        ),
    )["id"]
    cal_a = await Connector(api, world, "microsoft_outlook").connect(ALICE)
    cal_b = await Connector(api, world).connect(BOB)
    await worker.drain()
    ev_a = await event_of(api, cal_a, "Kickoff")
    ev_b = await event_of(api, cal_b, "Kickoff")
    assert (ev_a["platform"], ev_b["platform"]) == ("microsoft_outlook", "google_calendar")
    # Graph's onlineMeeting.joinUrl and Google's conferenceData give one normalized URL.
    assert ev_a["meeting_url"] == ev_b["meeting_url"]
    assert ev_a["start_time"] == ev_b["start_time"]

    key = f"{ev_a['start_time']}-{ev_a['meeting_url']}"
    bot_a = (await schedule(api, ev_a["id"], key)).json()["bots"][0]["bot_id"]
    bot_b = (await schedule(api, ev_b["id"], key)).json()["bots"][0]["bot_id"]
    assert bot_a == bot_b and len(await all_bots(runtime)) == 1

    world.move_event(
        ALICE, wid, datetime(2026, 11, 3, 12, tzinfo=UTC), datetime(2026, 11, 3, 13, tzinfo=UTC)
    )
    clock.advance(timedelta(minutes=5))
    await worker.drain()
    bot = await get_bot(api, bot_a)
    assert bot["join_at"] == "2026-11-03T11:58:00Z"
    assert sorted(bot["events"]) == sorted([ev_a["id"], ev_b["id"]])
