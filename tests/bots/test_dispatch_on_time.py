"""``Worker.run_forever`` launches a bot at its join time, not at its next poll.

The poll interval is set to an hour, so only the worker's own wake-ups can explain a
launch: the next due time of the bots kind, a slot freeing after a full claim, the
notifier, or a sync (which feeds the bots kind) finishing. The FakeClock's ``sleep``
moves it to the wake-up time at once, so a launch "at the join time" is exact.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from showup.clock import FakeClock
from showup.config import Settings
from showup.db.bot_models import Bot
from showup.db.models import Calendar
from showup.jobs.kinds import JobKind, default_kinds
from showup.jobs.worker import Worker
from tests.bots.support import Receiver, all_bots, connect, event_of, meeting, schedule
from tests.conftest import make_settings

ALICE = "alice@example.com"
JOIN = datetime(2026, 11, 2, 9, 58, tzinfo=UTC)  # 2 minutes before the 10:00 meetings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(
        tmp_path, allow_http_loopback_webhooks=True, worker_idle_poll=timedelta(hours=1)
    )


class StillClock(FakeClock):
    """A FakeClock whose ``sleep`` never returns: timers cannot wake the worker."""

    async def sleep(self, delay: timedelta) -> None:
        await asyncio.Event().wait()


def kinds(runtime: Any, *names: str, concurrency: int | None = None) -> list[JobKind]:
    chosen = [k for k in default_kinds(runtime) if k.name in names]
    if concurrency is not None:
        chosen = [replace(k, concurrency=concurrency) for k in chosen]
    return chosen


@asynccontextmanager
async def running(worker: Worker) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run_forever(stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def until_dispatched(runtime: Any, count: int) -> list[Bot]:
    """Wait (for I/O, not for a schedule: the clock is fake) until ``count`` bots launched."""
    async with asyncio.timeout(10):
        while True:
            bots = [b for b in await all_bots(runtime) if b.status == "dispatched"]
            if len(bots) >= count:
                return bots
            await asyncio.sleep(0.01)


async def scheduled_bots(
    api: httpx.AsyncClient, world: Any, worker: Any, n: int, platform: str = "google_calendar"
) -> tuple[str, list[str]]:
    """``n`` meetings at 10:00 on Alice's calendar (on ``platform``), each with a bot; the
    calendar id and the meetings' world ids."""
    world.add_user(ALICE, name="Alice")
    gids = []
    for i in range(n):
        created = world.create_event(
            ALICE,
            meeting(
                f"Meeting {i}",
                "2026-11-02T10:00:00Z",
                "2026-11-02T11:00:00Z",
                link=f"https://meet.google.com/abc-defg-hi{chr(97 + i)}",
            ),
        )
        gids.append(created["id"])
    [cid] = await connect(api, world, ALICE, platform=platform)
    await worker.drain()
    for i in range(n):
        ev = await event_of(api, cid, f"Meeting {i}")
        r = await schedule(api, ev["id"], f"meeting-{i}")
        assert r.status_code == 200, r.text
    await worker.drain()  # bot.scheduled delivered
    return cid, gids


def dispatch_times(receiver: Receiver) -> list[datetime]:
    return [r.at for r in receiver.of_type("bot.dispatch")]


# The worker's wake-ups for bots do not depend on the calendar's provider: Google only, to
# keep the suite's time; the wake-up by a sync, which does, runs on both (the last test).
async def test_a_bot_is_launched_at_its_join_time_not_at_the_next_poll(
    api: httpx.AsyncClient, world: Any, worker: Any, runtime: Any, receiver: Receiver, secret: str
) -> None:
    await scheduled_bots(api, world, worker, 1)
    async with running(Worker(runtime, kinds=kinds(runtime, "bots"))):
        await until_dispatched(runtime, 1)
    assert dispatch_times(receiver) == [JOIN]


async def test_after_a_full_claim_the_rest_is_claimed_as_slots_free(
    api: httpx.AsyncClient,
    world: Any,
    worker: Any,
    runtime: Any,
    clock: FakeClock,
    receiver: Receiver,
    secret: str,
) -> None:
    await scheduled_bots(api, world, worker, 3)
    clock.set(JOIN)
    # One slot: the first claim is full, so the other two wait for its job, not for a poll.
    async with running(Worker(runtime, kinds=kinds(runtime, "bots", concurrency=1))):
        bots = await until_dispatched(runtime, 3)
    assert dispatch_times(receiver) == [JOIN] * 3
    assert all(b.attempts == 1 for b in bots)


async def test_work_added_in_process_is_claimed_when_notified(
    api: httpx.AsyncClient,
    world: Any,
    worker: Any,
    runtime: Any,
    clock: FakeClock,
    receiver: Receiver,
    secret: str,
) -> None:
    world.add_user(ALICE, name="Alice")
    world.create_event(ALICE, meeting("Soon", "2026-11-02T09:01:00Z", "2026-11-02T10:00:00Z"))
    [cid] = await connect(api, world, ALICE)
    await worker.drain()
    ev = await event_of(api, cid, "Soon")
    runtime.clock = still = StillClock(clock.now())
    await runtime.notifier.wait(0)  # consumes the API's notifications so far
    async with running(Worker(runtime, kinds=kinds(runtime, "bots"))):
        # Let the worker's first pass (which claims every kind) find nothing; were it not
        # over yet, the bot would merely be claimed by that pass instead.
        await asyncio.sleep(0.05)
        # Starts in a minute: the join time (2 minutes' lead) has passed, so it is due now.
        r = await schedule(api, ev["id"], "soon")  # commits, then notifies the worker
        assert r.status_code == 200, r.text
        await until_dispatched(runtime, 1)
    assert dispatch_times(receiver) == [still.now()]


async def test_a_sync_that_makes_a_bot_due_wakes_the_bots_kind(
    api: httpx.AsyncClient,
    world: Any,
    worker: Any,
    runtime: Any,
    clock: FakeClock,
    receiver: Receiver,
    secret: str,
    platform: str,
) -> None:
    cid, [gid] = await scheduled_bots(api, world, worker, 1, platform)
    world.move_event(
        ALICE, gid, datetime(2026, 11, 2, 9, 1, tzinfo=UTC), datetime(2026, 11, 2, 10, tzinfo=UTC)
    )
    async with runtime.sessions() as session:
        await session.execute(
            update(Calendar).where(Calendar.id == cid).values(next_sync_at=clock.now())
        )
        await session.commit()
    # Timers never fire and nothing is notified: only the sync finishing can make the
    # worker claim bots again.
    runtime.clock = still = StillClock(clock.now())
    await runtime.notifier.wait(0)  # consumes the API's notifications so far
    async with running(Worker(runtime, kinds=kinds(runtime, f"sync:{platform}", "bots"))):
        await until_dispatched(runtime, 1)
    assert dispatch_times(receiver) == [still.now()]
