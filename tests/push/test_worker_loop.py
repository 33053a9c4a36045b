"""The push kind in ``Worker.run_forever``: a first sync feeds it, so the channel opens
at once, with the idle poll set to an hour and a clock whose timers never fire (nothing
else could explain it); and its next due time is the earliest ``renew_at`` ahead."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from showup.clock import FakeClock
from showup.config import Settings
from showup.jobs.kinds import default_kinds
from showup.jobs.worker import Worker
from tests.conftest import make_settings
from tests.push.support import ALICE, channels, connect


class StillClock(FakeClock):
    """A FakeClock whose ``sleep`` never returns: timers cannot wake the worker."""

    async def sleep(self, delay: timedelta) -> None:
        await asyncio.Event().wait()


@pytest.fixture
def clock() -> FakeClock:
    return StillClock()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, push_allow_http=True, worker_idle_poll=timedelta(hours=1))


async def test_a_first_sync_feeds_the_push_kind(
    api: httpx.AsyncClient, world: Any, clock: Any, runtime: Any
) -> None:
    world.add_user(ALICE, name="Alice")
    cid = await connect(api, world)
    await runtime.notifier.wait(0)  # consume the calendar's creation notice: no poll at all
    # Push before sync, so the first pass's push claim cannot see the sync's channel.
    by_name = {k.name: k for k in default_kinds(runtime)}
    worker = Worker(runtime, owner="loop", kinds=[by_name["push"], by_name["sync:google_calendar"]])
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run_forever(stop))
    try:
        async with asyncio.timeout(10):  # waiting for I/O; the fake clock stands still
            while True:
                if [r.status for r in await channels(runtime, cid)] == ["active"]:
                    break
                await asyncio.sleep(0.01)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    [row] = await channels(runtime, cid)
    assert row.renew_at == clock.now() + timedelta(days=6)
    push = worker.kind("push")
    assert push.next_due is not None and await push.next_due(runtime) == row.renew_at
