"""Bots follow their meetings, end to end: emulator → sync → reconcile → webhooks → launch.

Runs on Google and Outlook calendars (the ``platform`` fixture), on SQLite and PostgreSQL.
The world's ids name events on both emulators (it accepts Graph ids too); the provider's own
ids come from ``Connector.pid``. The FakeClock is shared by the service and the emulator;
each step moves it and drains the worker. Every webhook is verified with the official
``standardwebhooks`` library.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select

from showup.db.bot_models import Bot
from showup.db.models import Event
from tests.bots.support import (
    MEET,
    Receiver,
    add_endpoint,
    all_bots,
    at,
    connect,
    event_of,
    get_bot,
    meeting,
    schedule,
    verify,
)
from tests.sync.helpers import Connector

ALICE = "alice@example.com"
BOB = "bob@example.com"


def t(hh: int, mm: int = 0, day: int = 2) -> datetime:
    return datetime(2026, 11, day, hh, mm, tzinfo=UTC)


async def test_schedule_move_cancel_restore_then_dispatch_at_join_time(
    api: httpx.AsyncClient,
    world: Any,
    worker: Any,
    clock: Any,
    runtime: Any,
    receiver: Receiver,
    secret: str,
    platform: str,
) -> None:
    world.add_user(ALICE, name="Alice")
    gid = world.create_event(
        ALICE, meeting("Design review", "2026-11-02T15:00:00Z", "2026-11-02T16:00:00Z")
    )["id"]
    conn = Connector(api, world, platform)
    cid = await conn.connect(ALICE)
    await worker.drain()
    ev = await event_of(api, cid, "Design review")
    assert (ev["platform"], ev["platform_id"]) == (platform, conn.pid(ALICE, gid))

    r = await schedule(api, ev["id"], "design-review", {"bot_name": "Notes"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["id"] == ev["id"] and body["raw"]["id"] == conn.pid(ALICE, gid)  # full, raw
    [entry] = body["bots"]
    bot_id = entry["bot_id"]
    assert entry == {
        "bot_id": bot_id,
        "start_time": "2026-11-02T14:58:00Z",  # 2 minutes' lead by default
        "deduplication_key": "design-review",
        "meeting_url": MEET,
        "status": "scheduled",
    }
    bot = await get_bot(api, bot_id)
    assert bot["events"] == [ev["id"]] and bot["bot_config"] == {"bot_name": "Notes"}
    assert bot["deadline"] == "2026-11-02T15:03:00Z"
    await worker.drain()  # delivers bot.scheduled (deliveries of one drain race each other)

    # Move: the bot moves in the same sync (and the same transaction as the event).
    clock.advance(timedelta(minutes=1))
    world.move_event(ALICE, gid, t(17), t(18))
    clock.advance(timedelta(minutes=5))
    await worker.drain()
    bot = await get_bot(api, bot_id)
    assert (bot["status"], bot["join_at"]) == ("scheduled", "2026-11-02T16:58:00Z")
    async with runtime.sessions() as session:
        row = await session.get(Bot, bot_id)
        event_row = await session.get(Event, ev["id"])
        assert row is not None and event_row is not None
        assert row.updated_at == event_row.updated_at == clock.now()

    # Cancel: the bot is cancelled, and the event's bots[] is empty.
    world.cancel_event(ALICE, gid)
    clock.advance(timedelta(minutes=5))
    await worker.drain()
    bot = await get_bot(api, bot_id)
    assert (bot["status"], bot["status_reason"]) == ("cancelled", "event_cancelled")
    assert (await api.get(f"/api/v2/calendar-events/{ev['id']}/")).json()["bots"] == []

    # Restore: the same bot comes back.
    world.update_event(ALICE, gid, {"status": "confirmed"})
    clock.advance(timedelta(minutes=5))
    await worker.drain()
    bot = await get_bot(api, bot_id)
    assert (bot["status"], bot["join_at"]) == ("scheduled", "2026-11-02T16:58:00Z")

    # Launch exactly at the join time, not a second earlier.
    clock.set(t(16, 58) - timedelta(seconds=1))
    await worker.drain()
    assert not receiver.of_type("bot.dispatch")
    assert (await get_bot(api, bot_id))["status"] == "scheduled"
    clock.set(t(16, 58))
    await worker.drain()
    bot = await get_bot(api, bot_id)
    assert (bot["status"], bot["dispatched_at"], bot["attempts"]) == (
        "dispatched",
        "2026-11-02T16:58:00Z",
        1,
    )
    [dispatch] = receiver.of_type("bot.dispatch")
    assert dispatch.headers["webhook-id"] == f"dispatch_{bot_id}"
    payload = verify(secret, dispatch)
    data = payload["data"]
    assert data["bot_id"] == data["idempotency_key"] == bot_id
    assert data["meeting_url"] == MEET and data["meeting_platform"] == "google_meet"
    assert data["join_at"] == "2026-11-02T16:58:00Z" and data["bot_config"] == {"bot_name": "Notes"}
    assert data["calendar_users"] == [ALICE]
    assert [e["id"] for e in data["events"]] == [ev["id"]]

    # The outbox told the tenant each step, in order, each message verified.
    for req in receiver.requests:
        verify(secret, req)
    assert [t for t in receiver.types() if t.startswith("bot.")] == [
        "bot.scheduled",
        "bot.updated",
        "bot.cancelled",
        "bot.scheduled",
        "bot.dispatch",
    ]
    moved = receiver.of_type("bot.updated")[0].json["data"]
    assert moved["id"] == bot_id and moved["join_at"] == "2026-11-02T16:58:00Z"
    # Nothing more: a drain later launches nothing twice.
    clock.advance(timedelta(minutes=10))
    await worker.drain()
    assert len(receiver.of_type("bot.dispatch")) == 1


async def test_attendees_sharing_a_key_share_one_bot(
    api: httpx.AsyncClient,
    world: Any,
    worker: Any,
    clock: Any,
    runtime: Any,
    secret: str,
    platform: str,
) -> None:
    world.add_user(ALICE, name="Alice")
    world.add_user(BOB, name="Bob")
    gid = world.create_event(
        ALICE,
        meeting("Kickoff", "2026-11-03T10:00:00Z", "2026-11-03T11:00:00Z", attendees=[BOB]),
    )["id"]
    cal_a, cal_b = await connect(api, world, ALICE, BOB, platform=platform)
    await worker.drain()
    ev_a = await event_of(api, cal_a, "Kickoff")
    ev_b = await event_of(api, cal_b, "Kickoff")
    assert ev_a["ical_uid"] == ev_b["ical_uid"] and ev_a["id"] != ev_b["id"]

    key = f"{ev_a['start_time']}-{ev_a['meeting_url']}"
    bot_a = (await schedule(api, ev_a["id"], key)).json()["bots"][0]["bot_id"]
    bot_b = (await schedule(api, ev_b["id"], key)).json()["bots"][0]["bot_id"]
    assert bot_a == bot_b
    assert sorted((await get_bot(api, bot_a))["events"]) == sorted([ev_a["id"], ev_b["id"]])
    assert len(await all_bots(runtime)) == 1

    # The organizer moves the meeting: both copies sync, the one bot moves once per change.
    world.move_event(ALICE, gid, t(12, day=3), t(13, day=3))
    clock.advance(timedelta(minutes=5))
    await worker.drain()
    assert (await get_bot(api, bot_a))["join_at"] == "2026-11-03T11:58:00Z"

    # Removing one attendee's bot keeps the shared bot; removing again is fine.
    for _ in range(2):
        r = await api.delete(f"/api/v2/calendar-events/{ev_a['id']}/bot/")
        assert r.status_code == 200 and r.json()["bots"] == []
    bot = await get_bot(api, bot_a)
    assert bot["status"] == "scheduled" and bot["events"] == [ev_b["id"]]

    # Bob's calendar goes away: no event wants the bot any more.
    r = await api.delete(f"/api/v2/calendars/{cal_b}/")
    assert r.status_code == 204
    bot = await get_bot(api, bot_a)
    assert (bot["status"], bot["status_reason"]) == ("cancelled", "calendar_deleted")


async def test_calendar_delete_keeps_a_bot_another_calendar_shares(
    api: httpx.AsyncClient, world: Any, worker: Any, clock: Any, runtime: Any, platform: str
) -> None:
    world.add_user(ALICE, name="Alice")
    world.add_user(BOB, name="Bob")
    gid = world.create_event(
        ALICE, meeting("Sync", "2026-11-03T10:00:00Z", "2026-11-03T11:00:00Z", attendees=[BOB])
    )["id"]
    cal_a, cal_b = await connect(api, world, ALICE, BOB, platform=platform)
    await worker.drain()
    ev_a = await event_of(api, cal_a, "Sync")
    ev_b = await event_of(api, cal_b, "Sync")
    bot_id = (await schedule(api, ev_a["id"], "sync")).json()["bots"][0]["bot_id"]
    await schedule(api, ev_b["id"], "sync")
    assert (await api.delete(f"/api/v2/calendars/{cal_a}/")).status_code == 204
    bot = await get_bot(api, bot_id)
    assert bot["status"] == "scheduled" and bot["events"] == [ev_b["id"]]

    # The organizer cancels; seen from the attendee's calendar alone (where Outlook keeps
    # the meeting, marked isCancelled), the bot is cancelled.
    world.cancel_event(ALICE, gid)
    clock.advance(timedelta(minutes=5))
    await worker.drain()
    bot = await get_bot(api, bot_id)
    assert (bot["status"], bot["status_reason"]) == ("cancelled", "event_cancelled")


async def test_disconnect_cancels_and_reconnect_restores(
    api: httpx.AsyncClient, world: Any, worker: Any, clock: Any, runtime: Any, platform: str
) -> None:
    world.add_user(ALICE, name="Alice")
    world.create_event(ALICE, meeting("1:1", "2026-11-03T10:00:00Z", "2026-11-03T10:30:00Z"))
    conn = Connector(api, world, platform)
    cid = await conn.connect(ALICE)
    await worker.drain()
    ev = await event_of(api, cid, "1:1")
    bot_id = (await schedule(api, ev["id"], "one-on-one")).json()["bots"][0]["bot_id"]

    world.revoke(conn.refresh_tokens[ALICE])  # every token of the grant, rotated ones too
    runtime.tokens.drop_calendar(cid)  # the cached access token would still work
    clock.advance(timedelta(minutes=5))
    await worker.drain()
    assert (await api.get(f"/api/v2/calendars/{cid}/")).json()["status"] == "disconnected"
    bot = await get_bot(api, bot_id)
    assert (bot["status"], bot["status_reason"]) == ("cancelled", "calendar_disconnected")

    fresh = world.grant(conn.client_id, ALICE)
    r = await api.patch(f"/api/v2/calendars/{cid}/", json={"oauth_refresh_token": fresh})
    assert r.status_code == 200, r.text
    await worker.drain()
    bot = await get_bot(api, bot_id)
    assert (bot["status"], bot["join_at"]) == ("scheduled", "2026-11-03T09:58:00Z")


async def test_moved_into_the_past_and_back_regains_its_bot(
    api: httpx.AsyncClient, world: Any, worker: Any, clock: Any, platform: str
) -> None:
    world.add_user(ALICE, name="Alice")
    gid = world.create_event(
        ALICE, meeting("Retro", "2026-11-02T15:00:00Z", "2026-11-02T16:00:00Z")
    )["id"]
    [cid] = await connect(api, world, ALICE, platform=platform)
    await worker.drain()
    ev = await event_of(api, cid, "Retro")
    bot_id = (await schedule(api, ev["id"], "retro")).json()["bots"][0]["bot_id"]

    world.move_event(ALICE, gid, t(7), t(8))  # before now (09:00): already over
    clock.advance(timedelta(minutes=5))
    await worker.drain()
    bot = await get_bot(api, bot_id)
    assert (bot["status"], bot["status_reason"]) == ("cancelled", "meeting_ended")

    world.move_event(ALICE, gid, t(11), t(12))  # back in the future: same bot again
    clock.advance(timedelta(minutes=5))
    await worker.drain()
    bot = await get_bot(api, bot_id)
    assert (bot["status"], bot["join_at"]) == ("scheduled", "2026-11-02T10:58:00Z")


async def test_a_launched_bots_event_moved_to_a_later_day_gets_a_fresh_bot(
    api: httpx.AsyncClient,
    world: Any,
    worker: Any,
    clock: Any,
    receiver: Receiver,
    secret: str,
    platform: str,
) -> None:
    world.add_user(ALICE, name="Alice")
    gid = world.create_event(
        ALICE, meeting("Weekly", "2026-11-02T10:00:00Z", "2026-11-02T10:30:00Z")
    )["id"]
    [cid] = await connect(api, world, ALICE, platform=platform)
    await worker.drain()
    ev = await event_of(api, cid, "Weekly")
    first = (await schedule(api, ev["id"], "weekly")).json()["bots"][0]["bot_id"]
    clock.set(t(9, 58))
    await worker.drain()
    assert (await get_bot(api, first))["status"] == "dispatched"
    # A repeat POST during the meeting (clients repeat on every sync) launches nothing new.
    r = await schedule(api, ev["id"], "weekly")
    assert [b["bot_id"] for b in r.json()["bots"]] == [first]

    # The organizer drags the (reused) event to next week: a new occurrence, a new bot.
    clock.set(t(11))
    world.move_event(ALICE, gid, t(10, day=9), t(10, 30, day=9))
    clock.advance(timedelta(minutes=5))
    await worker.drain()
    bots = (await api.get(f"/api/v2/calendar-events/{ev['id']}/")).json()["bots"]
    assert [(b["bot_id"] == first, b["status"]) for b in bots] == [
        (True, "dispatched"),
        (False, "scheduled"),
    ]
    second = await get_bot(api, bots[1]["bot_id"])
    assert second["join_at"] == "2026-11-09T09:58:00Z" and second["events"] == [ev["id"]]
    assert at(second["deadline"]) == t(10, 3, day=9)
    assert len(receiver.of_type("bot.dispatch")) == 1


async def test_endpoint_filtering_bot_dispatch_only(
    api: httpx.AsyncClient,
    world: Any,
    worker: Any,
    clock: Any,
    runtime: Any,
    tenant: Any,
    receiver: Receiver,
    platform: str,
) -> None:
    await add_endpoint(runtime, tenant.tenant_id, event_types=["bot.dispatch"])
    world.add_user(ALICE, name="Alice")
    world.create_event(ALICE, meeting("Standup", "2026-11-02T09:30:00Z", "2026-11-02T09:45:00Z"))
    [cid] = await connect(api, world, ALICE, platform=platform)
    await worker.drain()
    ev = await event_of(api, cid, "Standup")
    await schedule(api, ev["id"], "standup")
    clock.set(t(9, 28))
    await worker.drain()
    assert receiver.types() == ["bot.dispatch"]
    async with runtime.sessions() as session:
        [row] = await session.scalars(select(Bot))
        assert row.status == "dispatched"
