"""The demo's seed and tenant-side steps, driven with the FakeClock (the demo itself runs
them on a fast real clock)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select

from showup.db.bot_models import Bot
from showup.demo import USERS, Receiver, schedule_bots, seed_world
from tests.sync.helpers import Connector, all_events, by_title


async def test_seeded_calendars_sync_and_get_one_bot_per_meeting(
    api: httpx.AsyncClient, world: Any, worker: Any, runtime: Any, clock: Any
) -> None:
    seed_world(world, clock.now())
    conn = Connector(api, world)
    for email in USERS:
        await conn.connect(email)
    assert {getattr(o, "result", None) for o in await worker.drain()} == {"synced"}
    events = by_title(await all_events(api))
    standups = [e for e in events["Daily standup"] if not e["is_deleted"]]
    assert len(standups) == 2 * 19  # Alice's and Bob's copies; one instance cancelled
    assert len({e["start_time"] for e in standups}) == 19  # one moved an hour later
    assert events["Acme / Globex: intro call"][0]["meeting_platform"] == "zoom"
    assert events["Quarterly review with Initech"][0]["meeting_platform"] == "microsoft_teams"
    assert events["Company offsite"][0]["is_all_day"]
    assert events["Deep work (no link)"][0]["meeting_url"] is None
    pitch = {e["calendar_id"]: e for e in events["Vendor pitch"]}
    assert len(pitch) == 2  # Bob's, and Carol's declined copy

    receiver = Receiver(clock)
    n = await schedule_bots(api, receiver, clock, horizon=timedelta(hours=36))
    assert n >= 5
    async with runtime.sessions() as session:
        bots = (await session.scalars(select(Bot))).all()
    # Meetings on two colleagues' calendars share one bot (the key is start + link).
    assert len(bots) == len({b.deduplication_key for b in bots}) < n
    one_on_one = events["1:1 Carol / Alice"]
    assert len(one_on_one) == 2
    shared = [
        (await api.get(f"/api/v2/calendar-events/{e['id']}/")).json()["bots"] for e in one_on_one
    ]
    assert len(shared[0]) == 1 and shared[0][0]["bot_id"] == shared[1][0]["bot_id"]
    # Carol declined the vendor pitch: her copy gets no bot.
    carol_pitch = [
        e
        for e in events["Vendor pitch"]
        if any(a["is_self"] and a["response_status"] == "declined" for a in e["attendees"])
    ]
    assert (await api.get(f"/api/v2/calendar-events/{carol_pitch[0]['id']}/")).json()["bots"] == []
    for kind in ("bot.scheduled", "bot.updated", "bot.cancelled"):
        receiver.show(kind, {"events": [one_on_one[0]["id"]], "join_at": "2026-11-02T10:00:00Z"})
