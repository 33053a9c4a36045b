"""One meeting seen from an Outlook calendar and a Google calendar at once: its Teams link
normalizes to the same URL on both, so one deduplication key gives one bot, which follows
the meeting and launches once for both users.

The single-provider flows (test_follow_meetings.py, test_dispatch.py, tests/api/test_bots.py)
run on both providers through the ``platform`` fixture.
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


async def test_one_meeting_on_outlook_and_google_calendars_shares_one_bot(
    api: httpx.AsyncClient,
    world: Any,
    worker: Any,
    clock: Any,
    runtime: Any,
    receiver: Receiver,
    secret: str,
) -> None:
    world.add_user(ALICE, name="Alice")
    world.add_user(BOB, name="Bob")
    wid = world.create_event(
        ALICE,
        teams_meeting(
            "Kickoff", "2026-11-03T10:00:00Z", "2026-11-03T11:00:00Z", attendees=[{"email": BOB}]
        ),
    )["id"]
    outlook = Connector(api, world, "microsoft_outlook")
    cal_a = await outlook.connect(ALICE)
    cal_b = await Connector(api, world).connect(BOB)
    await worker.drain()
    ev_a = await event_of(api, cal_a, "Kickoff")
    ev_b = await event_of(api, cal_b, "Kickoff")
    assert (ev_a["platform"], ev_b["platform"]) == ("microsoft_outlook", "google_calendar")
    assert (ev_a["platform_id"], ev_b["platform_id"]) == (outlook.pid(ALICE, wid), wid)
    assert ev_a["meeting_platform"] == ev_b["meeting_platform"] == "microsoft_teams"
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

    # One launch at the join time, for the users of both providers.
    clock.set(datetime(2026, 11, 3, 11, 58, tzinfo=UTC))
    await worker.drain()
    [dispatch] = receiver.of_type("bot.dispatch")
    data = verify(secret, dispatch)["data"]
    assert data["bot_id"] == bot_a and data["meeting_platform"] == "microsoft_teams"
    assert data["join_at"] == "2026-11-03T11:58:00Z"
    assert sorted(data["calendar_users"]) == [ALICE, BOB]
    assert sorted(e["id"] for e in data["events"]) == sorted([ev_a["id"], ev_b["id"]])
