"""Notifications drive syncs (DESIGN invariant 1, PROTOCOLS §1.5): a change in the
emulator pings our receiver, which only makes the calendar due; the worker syncs. Bursts,
duplicates and reordering coalesce into one sync, a dropped ping is recovered by the
24 h safety sync, a ping arriving mid-sync re-runs it, and the rate limit delays but
never loses a sync. SQLite and PostgreSQL; the clock only moves when a test says so."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx

from showup.jobs.worker import Worker
from showup.sync.runner import sync_calendar
from tests.push.support import ALICE, Pings, calendar, channels, connect


def _event(summary: str, day: int = 12) -> dict[str, Any]:
    return {
        "summary": summary,
        "start": {"dateTime": f"2026-11-{day:02d}T10:00:00Z"},
        "end": {"dateTime": f"2026-11-{day:02d}T11:00:00Z"},
    }


async def _settled(
    api: httpx.AsyncClient, world: Any, worker: Worker, clock: Any, pings: Pings
) -> str:
    """Connected, channel open, and on the 24 h schedule."""
    world.add_user(ALICE, name="Alice")
    cid = await connect(api, world)
    await worker.drain()
    await pings.deliver()
    clock.advance(timedelta(minutes=5))
    await worker.drain()
    return cid


def _syncs(outcomes: list[object]) -> list[Any]:
    return [o for o in outcomes if type(o).__name__ == "SyncOutcome"]


async def test_a_change_is_synced_on_its_ping_without_waiting(
    api: httpx.AsyncClient, world: Any, worker: Worker, clock: Any, runtime: Any, pings: Pings
) -> None:
    cid = await _settled(api, world, worker, clock, pings)
    now = clock.now()
    assert (await calendar(runtime, cid)).next_sync_at == now + timedelta(hours=24)

    world.create_event(ALICE, _event("Pinged"))
    assert await pings.deliver() == [("exists", 200)]
    cal = await calendar(runtime, cid)
    assert cal.next_sync_at == now and cal.sync_requested_at == now  # due, not synced
    [outcome] = _syncs(await worker.drain())
    assert (outcome.result, outcome.inserted) == ("synced", 1)
    cal = await calendar(runtime, cid)
    assert cal.next_sync_at == now + timedelta(hours=24) and cal.sync_requested_at is None
    assert clock.now() == now
    [row] = await channels(runtime, cid)
    assert row.last_notification_at == now and (row.last_message_number or 0) > 1


async def test_bursts_duplicates_and_reordering_coalesce_into_one_sync(
    api: httpx.AsyncClient, world: Any, worker: Worker, clock: Any, runtime: Any, pings: Pings
) -> None:
    cid = await _settled(api, world, worker, clock, pings)
    for day in (12, 13, 14):
        world.create_event(ALICE, _event(f"Burst {day}", day))
    pings.duplicate(3)
    pings.reverse()
    assert [status for _, status in await pings.deliver()] == [200] * 9
    [outcome] = _syncs(await worker.drain())
    assert (outcome.result, outcome.inserted) == ("synced", 3)
    # Replayed afterwards (a retry of an old message): stale, no sync.
    world.outbox.pending.extend(m for m in world.outbox.sent[-9:])
    assert [status for _, status in await pings.deliver()] == [200] * 9
    assert _syncs(await worker.drain()) == []
    assert (await calendar(runtime, cid)).sync_requested_at is None


async def test_a_dropped_ping_is_recovered_by_the_safety_sync(
    api: httpx.AsyncClient, world: Any, worker: Worker, clock: Any, runtime: Any, pings: Pings
) -> None:
    cid = await _settled(api, world, worker, clock, pings)
    world.create_event(ALICE, _event("Never pinged"))
    assert pings.drop() == 1
    clock.advance(timedelta(hours=24) - timedelta(seconds=1))
    assert _syncs(await worker.drain()) == []
    clock.advance(timedelta(seconds=1))
    [outcome] = _syncs(await worker.drain())
    assert (outcome.result, outcome.inserted) == ("synced", 1)
    assert (await calendar(runtime, cid)).next_sync_at == clock.now() + timedelta(hours=24)


async def test_a_ping_during_a_sync_runs_it_again(
    api: httpx.AsyncClient, world: Any, worker: Worker, clock: Any, runtime: Any, pings: Pings
) -> None:
    cid = await _settled(api, world, worker, clock, pings)
    world.create_event(ALICE, _event("First"))
    await pings.deliver()
    assert await worker.claim_calendars("google_calendar", 1) == [cid]  # the sync starts
    # A change and its ping land while that sync is running (after its claim).
    world.create_event(ALICE, _event("Second", 13))
    assert await pings.deliver() == [("exists", 200)]
    outcome = await sync_calendar(runtime, cid, worker.owner)
    assert outcome.result == "synced"
    assert (await calendar(runtime, cid)).next_sync_at == clock.now()  # not +24 h
    [again] = _syncs(await worker.drain())
    assert again.result == "synced"
    assert (await calendar(runtime, cid)).next_sync_at == clock.now() + timedelta(hours=24)


async def test_rate_limit_delays_syncs_but_never_loses_the_last_one(
    api: httpx.AsyncClient, world: Any, worker: Worker, clock: Any, runtime: Any, pings: Pings
) -> None:
    runtime.settings.push_rate_burst = 2
    runtime.settings.push_rate_interval = timedelta(seconds=10)
    cid = await _settled(api, world, worker, clock, pings)
    now = clock.now()
    for n in range(2):  # the burst: synced at once
        world.create_event(ALICE, _event(f"Fast {n}", 12 + n))
        await pings.deliver()
        assert (await calendar(runtime, cid)).next_sync_at == now
        assert len(_syncs(await worker.drain())) == 1
    world.create_event(ALICE, _event("Throttled", 20))
    await pings.deliver()
    world.create_event(ALICE, _event("Last", 21))  # coalesced into the delayed request
    await pings.deliver()
    assert (await calendar(runtime, cid)).next_sync_at == now + timedelta(seconds=10)
    assert _syncs(await worker.drain()) == []
    clock.advance(timedelta(seconds=10))
    [outcome] = _syncs(await worker.drain())
    assert (outcome.result, outcome.inserted) == ("synced", 2)


async def test_a_calendar_in_backoff_is_not_hurried_by_pings(
    api: httpx.AsyncClient, world: Any, worker: Worker, clock: Any, runtime: Any, pings: Pings
) -> None:
    cid = await _settled(api, world, worker, clock, pings)
    world.faults.add(status=500, times=1, path_contains="/events", method="GET")
    world.create_event(ALICE, _event("During an outage"))
    await pings.deliver()
    [failed] = _syncs(await worker.drain())
    assert failed.result == "failed"
    retry_at = (await calendar(runtime, cid)).next_sync_at
    world.create_event(ALICE, _event("Another", 13))
    await pings.deliver()
    assert (await calendar(runtime, cid)).next_sync_at == retry_at  # the retry covers it
    assert retry_at is not None
    clock.set(retry_at)
    [outcome] = _syncs(await worker.drain())
    assert (outcome.result, outcome.inserted) == ("synced", 2)
