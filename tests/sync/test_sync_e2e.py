"""End to end through the HTTP API against the Google and Microsoft Graph emulators (the
``platform`` fixture), on SQLite and PostgreSQL.

The clock is a FakeClock shared by the service and the emulator; the worker is driven
with ``drain()`` (run what is due now) after moving the clock. Nothing sleeps.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select

from showup.db.models import Calendar, Event
from tests.sync.helpers import Connector, all_events, by_title, gtime

ALICE = "alice@example.com"
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def seed(world: Any) -> dict[str, str]:
    world.add_user(ALICE, name="Alice", time_zone="Europe/Berlin")
    standup = world.create_event(
        ALICE,
        {
            "summary": "Daily standup",
            "start": gtime(datetime(2026, 11, 2, 10, 0)),
            "end": gtime(datetime(2026, 11, 2, 10, 15)),
            "recurrence": ["RRULE:FREQ=DAILY;COUNT=10"],
            "hangoutLink": "https://meet.google.com/abc-defg-hij",
        },
    )
    zoom = world.create_event(
        ALICE,
        {
            "summary": "Zoom call",
            "start": {"dateTime": "2026-11-03T15:00:00Z"},
            "end": {"dateTime": "2026-11-03T16:00:00Z"},
            "location": "https://acme.zoom.us/j/123456789?pwd=abc",
        },
    )
    allday = world.create_event(
        ALICE,
        {"summary": "Offsite", "start": {"date": "2026-11-05"}, "end": {"date": "2026-11-06"}},
    )
    nolink = world.create_event(
        ALICE,
        {
            "summary": "Focus",
            "start": {"dateTime": "2026-11-04T12:00:00Z"},
            "end": {"dateTime": "2026-11-04T13:00:00Z"},
        },
    )
    world.create_event(
        ALICE,
        {
            "summary": "Far future",
            "start": {"dateTime": "2026-12-20T12:00:00Z"},
            "end": {"dateTime": "2026-12-20T13:00:00Z"},
        },
    )
    return {
        "standup": standup["id"],
        "zoom": zoom["id"],
        "allday": allday["id"],
        "nolink": nolink["id"],
    }


async def connect_alice(
    api: httpx.AsyncClient, world: Any, platform: str = "google_calendar"
) -> tuple[Connector, str]:
    conn = Connector(api, world, platform)
    cid = await conn.connect(ALICE)
    return conn, cid


async def test_full_sync_then_incremental_changes(
    api: httpx.AsyncClient, world: Any, worker: Any, clock: Any, platform: str
) -> None:
    ids = seed(world)
    conn, cid = await connect_alice(api, world, platform)
    outcomes = await worker.drain()
    assert [o.result for o in outcomes] == ["synced"]
    assert outcomes[0].full

    cal = (await api.get(f"/api/v2/calendars/{cid}/")).json()
    assert cal["status"] == "connected"
    assert cal["platform_email"] == ALICE
    assert [c["status"] for c in cal["status_changes"]] == ["connecting", "connected"]

    events = await all_events(api, calendar_id=cid)
    titles = by_title(events)
    assert "Far future" not in titles  # outside the 28-day window
    standups = sorted(titles["Daily standup"], key=lambda e: e["start_time"])
    assert len(standups) == 10
    assert standups[0]["start_time"] == "2026-11-02T09:00:00Z"
    assert standups[0]["platform_id"] == conn.pid(ALICE, f"{ids['standup']}_20261102T090000Z")
    assert all(e["recurring_event_id"] == conn.pid(ALICE, ids["standup"]) for e in standups)
    assert standups[0]["meeting_url"] == "https://meet.google.com/abc-defg-hij"
    assert standups[0]["meeting_platform"] == "google_meet"
    zoom = titles["Zoom call"][0]
    assert zoom["meeting_platform"] == "zoom"
    assert zoom["meeting_url"].startswith("https://acme.zoom.us/j/123456789")
    assert zoom["platform"] == platform
    assert zoom["raw"]["id"] == conn.pid(ALICE, ids["zoom"])
    offsite = titles["Offsite"][0]
    assert offsite["is_all_day"] is True
    assert offsite["start_time"] == "2026-11-04T23:00:00Z"  # midnight in Berlin
    assert titles["Focus"][0]["meeting_url"] is None

    # Nothing is due until the poll interval passes.
    assert await worker.drain() == []

    # Edit, move, cancel one instance, cancel an event, add one.
    clock.advance(timedelta(minutes=1))
    world.update_event(ALICE, ids["zoom"], {"summary": "Zoom call (renamed)"})
    world.move_event(
        ALICE,
        f"{ids['standup']}_20261104T090000Z",
        datetime(2026, 11, 4, 14, 0, tzinfo=UTC),
        datetime(2026, 11, 4, 14, 30, tzinfo=UTC),
    )
    world.cancel_event(ALICE, f"{ids['standup']}_20261105T090000Z")
    world.cancel_event(ALICE, ids["nolink"])
    world.create_event(
        ALICE,
        {
            "summary": "New 1:1",
            "start": {"dateTime": "2026-11-06T10:00:00Z"},
            "end": {"dateTime": "2026-11-06T10:30:00Z"},
            "hangoutLink": "https://meet.google.com/xyz-abcd-efg",
        },
    )
    clock.advance(timedelta(minutes=5))
    changed_since = clock.now()
    outcomes = await worker.drain()
    assert [o.result for o in outcomes] == ["synced"] and not outcomes[0].full

    after = await all_events(api, calendar_id=cid)
    by_id = {e["platform_id"]: e for e in after}
    assert by_id[conn.pid(ALICE, ids["zoom"])]["title"] == "Zoom call (renamed)"
    moved = by_id[conn.pid(ALICE, f"{ids['standup']}_20261104T090000Z")]
    assert moved["start_time"] == "2026-11-04T14:00:00Z"
    assert moved["is_deleted"] is False
    assert by_id[conn.pid(ALICE, f"{ids['standup']}_20261105T090000Z")]["is_deleted"] is True
    assert by_id[conn.pid(ALICE, ids["nolink"])]["is_deleted"] is True
    assert "New 1:1" in by_title(after)

    # updated_at moved exactly for what changed.
    recent = await all_events(api, calendar_id=cid, updated_at__gte=changed_since.isoformat())
    assert {e["title"] for e in recent} == {
        "Zoom call (renamed)",
        "Daily standup",
        "Focus",
        "New 1:1",
    }
    assert len(recent) == 5
    live = await all_events(api, calendar_id=cid, is_deleted="false")
    assert len(live) == len(after) - 2


async def test_series_edit_and_cancel(
    api: httpx.AsyncClient, world: Any, worker: Any, clock: Any, platform: str
) -> None:
    ids = seed(world)
    _, cid = await connect_alice(api, world, platform)
    await worker.drain()
    world.update_event(ALICE, ids["standup"], {"summary": "Team sync"})
    clock.advance(timedelta(minutes=5))
    await worker.drain()
    titles = by_title(await all_events(api, calendar_id=cid, is_deleted="false"))
    assert len(titles["Team sync"]) == 10 and "Daily standup" not in titles

    world.cancel_event(ALICE, ids["standup"])
    clock.advance(timedelta(minutes=5))
    await worker.drain()
    titles = by_title(await all_events(api, calendar_id=cid, is_deleted="false"))
    assert "Team sync" not in titles
    gone = by_title(await all_events(api, calendar_id=cid, is_deleted="true"))
    assert len(gone["Team sync"]) == 10


async def test_revoked_token_disconnects_and_patch_reconnects(
    api: httpx.AsyncClient, world: Any, worker: Any, clock: Any, platform: str
) -> None:
    seed(world)
    conn, cid = await connect_alice(api, world, platform)
    await worker.drain()
    world.revoke(conn.refresh_tokens[ALICE])
    # Outstanding access tokens die with the grant; the next sync must find out.
    clock.advance(timedelta(minutes=5))
    outcomes = await worker.drain()
    assert [o.result for o in outcomes] == ["disconnected"]
    cal = (await api.get(f"/api/v2/calendars/{cid}/")).json()
    assert cal["status"] == "disconnected"
    last = cal["status_changes"][-1]
    assert last["status"] == "disconnected" and last["reason"] == "auth_revoked"
    assert "invalid_grant" in last["details"]["error"] or "revoked" in last["details"]["error"]
    clock.advance(timedelta(hours=1))
    assert await worker.drain() == []  # no retry storm against a dead token

    fresh = world.grant(conn.client_id, ALICE)
    r = await api.patch(f"/api/v2/calendars/{cid}/", json={"oauth_refresh_token": fresh})
    assert r.status_code == 200 and r.json()["status"] == "connecting"
    assert [o.result for o in await worker.drain()] == ["synced"]
    assert (await api.get(f"/api/v2/calendars/{cid}/")).json()["status"] == "connected"


async def test_rate_limit_waits_retry_after_without_counting_a_failure(
    api: httpx.AsyncClient, world: Any, worker: Any, clock: Any, platform: str
) -> None:
    seed(world)
    conn, cid = await connect_alice(api, world, platform)
    world.faults.add(status=429, times=1, path_contains=conn.list_path, retry_after=30)
    outcomes = await worker.drain()
    assert [o.result for o in outcomes] == ["rate_limited"]
    assert outcomes[0].next_sync_at == clock.now() + timedelta(seconds=30)
    cal = (await api.get(f"/api/v2/calendars/{cid}/")).json()
    assert cal["sync"]["consecutive_failures"] == 0
    clock.advance(timedelta(seconds=29))
    assert await worker.drain() == []
    clock.advance(timedelta(seconds=1))
    assert [o.result for o in await worker.drain()] == ["synced"]
    assert len(await all_events(api, calendar_id=cid)) == 13


async def test_server_errors_back_off_show_the_error_and_converge(
    api: httpx.AsyncClient,
    world: Any,
    worker: Any,
    clock: Any,
    runtime: Any,
    platform: str,
) -> None:
    seed(world)
    conn, cid = await connect_alice(api, world, platform)
    await worker.drain()
    world.faults.add(status=503, times=3, path_contains=conn.list_path)
    world.create_event(
        ALICE,
        {
            "summary": "Added during outage",
            "start": {"dateTime": "2026-11-07T10:00:00Z"},
            "end": {"dateTime": "2026-11-07T11:00:00Z"},
        },
    )
    clock.advance(timedelta(minutes=5))
    for attempt in (1, 2, 3):
        outcomes = await worker.drain()
        assert [o.result for o in outcomes] == ["failed"]
        cal = (await api.get(f"/api/v2/calendars/{cid}/")).json()
        assert cal["sync"]["consecutive_failures"] == attempt
        assert "Transient" in cal["sync"]["last_error"]
        assert cal["status"] == "connected"  # still connected, still retrying
        assert outcomes[0].next_sync_at is not None
        clock.set(outcomes[0].next_sync_at)
    assert [o.result for o in await worker.drain()] == ["synced"]
    cal = (await api.get(f"/api/v2/calendars/{cid}/")).json()
    assert cal["sync"]["consecutive_failures"] == 0 and cal["sync"]["last_error"] is None
    assert "Added during outage" in by_title(await all_events(api, calendar_id=cid))


async def test_expired_cursor_full_resync_keeps_ids_and_deletes_vanished(
    api: httpx.AsyncClient, world: Any, worker: Any, clock: Any, platform: str
) -> None:
    ids = seed(world)
    conn, cid = await connect_alice(api, world, platform)
    await worker.drain()
    before = {e["platform_id"]: e for e in await all_events(api, calendar_id=cid)}
    world.cancel_event(ALICE, ids["zoom"])
    world.expire_sync_tokens()
    clock.advance(timedelta(minutes=5))
    outcomes = await worker.drain()
    assert [o.result for o in outcomes] == ["synced"] and outcomes[0].full
    after = {e["platform_id"]: e for e in await all_events(api, calendar_id=cid)}
    assert set(after) == set(before)  # nothing duplicated
    for pid, ev in before.items():
        assert after[pid]["id"] == ev["id"]  # same showup ids: bots stay attached
    assert after[conn.pid(ALICE, ids["zoom"])]["is_deleted"] is True
    allday = conn.pid(ALICE, ids["allday"])
    assert after[allday]["updated_at"] == before[allday]["updated_at"]


async def test_events_entering_the_window_are_picked_up(
    api: httpx.AsyncClient, world: Any, worker: Any, clock: Any, platform: str
) -> None:
    seed(world)
    _, cid = await connect_alice(api, world, platform)
    await worker.drain()
    assert "Far future" not in by_title(await all_events(api, calendar_id=cid))
    clock.advance(timedelta(days=21))
    await worker.drain()
    assert "Far future" in by_title(await all_events(api, calendar_id=cid))


async def test_deleted_events_are_purged_after_retention(
    api: httpx.AsyncClient,
    world: Any,
    worker: Any,
    clock: Any,
    runtime: Any,
    platform: str,
) -> None:
    ids = seed(world)
    conn, cid = await connect_alice(api, world, platform)
    await worker.drain()
    nolink = conn.pid(ALICE, ids["nolink"])
    world.cancel_event(ALICE, ids["nolink"])
    clock.advance(timedelta(minutes=5))
    await worker.drain()
    assert any(e["is_deleted"] for e in await all_events(api, calendar_id=cid))
    clock.advance(timedelta(days=59))
    await worker.maintain(force=True)
    async with runtime.sessions() as s:
        row = await s.scalar(select(Event).where(Event.platform_id == nolink))
        assert row is not None
    clock.advance(timedelta(days=2))
    await worker.maintain(force=True)
    async with runtime.sessions() as s:
        assert await s.scalar(select(Event).where(Event.platform_id == nolink)) is None


async def test_lease_blocks_second_worker_until_it_expires(
    api: httpx.AsyncClient, world: Any, runtime: Any, clock: Any, platform: str
) -> None:
    from showup.jobs.worker import Worker
    from showup.sync.runner import sync_calendar

    seed(world)
    _, cid = await connect_alice(api, world, platform)
    crashed = Worker(runtime, owner="crashed")
    other = Worker(runtime, owner="other")
    assert await crashed.claim_calendars(platform, 10) == [cid]
    # The first worker dies here, holding the lease.
    assert await other.claim_calendars(platform, 10) == []
    clock.advance(runtime.settings.lease_duration + timedelta(seconds=1))
    assert await other.claim_calendars(platform, 10) == [cid]
    # The crashed worker wakes up: its writes are fenced off by the lease.
    late = await sync_calendar(runtime, cid, "crashed")
    assert late.result == "skipped"
    done = await sync_calendar(runtime, cid, "other")
    assert done.result == "synced"
    async with runtime.sessions() as s:
        cal = await s.get(Calendar, cid)
        assert cal is not None and cal.lease_owner is None and cal.status == "connected"


async def test_secrets_are_encrypted_at_rest(
    api: httpx.AsyncClient,
    world: Any,
    worker: Any,
    runtime: Any,
    settings: Any,
    platform: str,
) -> None:
    seed(world)
    conn, _ = await connect_alice(api, world, platform)
    await worker.drain()
    refresh_tokens = conn.all_refresh_tokens(ALICE)
    assert len(refresh_tokens) == (2 if conn.is_microsoft else 1)  # Graph rotated one
    if runtime.engine.dialect.name == "sqlite":
        await runtime.engine.dispose()  # checkpoint the WAL into the main file
        raw = b"".join(p.read_bytes() for p in settings.data_dir.glob("showup.db*"))
        assert b"calendars" in raw
    else:
        async with runtime.engine.connect() as c:
            rows = (await c.exec_driver_sql("SELECT * FROM calendars")).all()
        raw = repr(rows).encode()
    for refresh in refresh_tokens:
        assert refresh.encode() not in raw
    assert conn.client_secret.encode() not in raw
