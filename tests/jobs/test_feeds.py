"""A finished job makes the worker claim only the kinds it actually fed (``JobKind.fed``):
a sync that changed nothing costs no claim of bots, webhooks or push (on SQLite each claim
is a write transaction); one that queued a webhook wakes the webhooks kind.

``drain`` follows the same rules between its first pass and a last pass over every kind,
so it still runs whatever became due meanwhile, fed or not, and collects each job once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from showup.clock import FakeClock
from showup.config import Settings
from showup.db.models import Calendar
from showup.jobs.kinds import JobKind, default_kinds
from showup.jobs.worker import Worker
from showup.push.schedule import request_sync
from showup.runtime import Runtime
from showup.sync.runner import SyncOutcome
from tests.conftest import make_settings
from tests.sync.helpers import Connector

ALICE = "alice@example.com"
OTHERS = ("webhooks", "bots", "push")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # No idle poll within a test: every claim after the first pass has a reason.
    return make_settings(tmp_path, worker_idle_poll=timedelta(hours=1))


class StillClock(FakeClock):
    """A FakeClock whose ``sleep`` never returns: timers cannot wake the worker."""

    async def sleep(self, delay: timedelta) -> None:
        await asyncio.Event().wait()


class Claims(list[str]):
    def __init__(self) -> None:
        super().__init__()
        self.more = asyncio.Event()
        self.runs = 0  # jobs of counted kinds finished
        self.ran = asyncio.Event()

    def note(self, name: str) -> None:
        self.append(name)
        self.more.set()

    async def finished(self, n: int) -> None:
        """Until ``n`` jobs of counted kinds have finished in all."""
        async with asyncio.timeout(10):
            while self.runs < n:
                await self.ran.wait()
                self.ran.clear()

    async def settle(self, n: int) -> list[str]:
        """The claims once there are ``n`` and the worker has gone back to waiting."""
        async with asyncio.timeout(10):
            while len(self) < n:
                await self.more.wait()
                self.more.clear()
        for _ in range(50):  # let a wrongly woken kind show up too
            await asyncio.sleep(0)
        got = list(self)
        self.clear()
        return got


def counted(kind: JobKind, claims: Claims) -> JobKind:
    """``kind`` with its claims noted in ``claims``."""

    async def claim(rt: Runtime, owner: str, limit: int) -> list[str]:
        claims.note(kind.name)
        return await kind.claim(rt, owner, limit)

    async def claim_next(rt: Runtime, owner: str, limit: int) -> tuple[list[str], Any]:
        claims.note(kind.name)
        assert kind.claim_next is not None
        return await kind.claim_next(rt, owner, limit)

    async def run(rt: Runtime, row_id: str, owner: str) -> object:
        try:
            return await kind.run(rt, row_id, owner)
        finally:
            claims.runs += 1
            claims.ran.set()

    return replace(kind, claim=claim, run=run, claim_next=claim_next if kind.claim_next else None)


def idle(name: str, claims: Claims) -> JobKind:
    """A kind with nothing to do that notes its claims."""

    async def claim(rt: Runtime, owner: str, limit: int) -> list[str]:
        claims.note(name)
        return []

    async def run(rt: Runtime, row_id: str, owner: str) -> object:
        raise AssertionError("nothing was claimed")

    return JobKind(name=name, concurrency=1, claim=claim, run=run)


@asynccontextmanager
async def running(worker: Worker) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run_forever(stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def pushed(runtime: Any, cid: str) -> None:
    """A push notification: the calendar is due now, and the worker is told."""
    async with runtime.sessions() as session:
        assert await request_sync(session, cid, runtime.clock.now())
        await session.commit()
    runtime.notifier.notify("sync:google_calendar")


async def test_run_forever_claims_only_the_kinds_a_sync_fed(
    api: httpx.AsyncClient, world: Any, worker: Worker, runtime: Any, clock: FakeClock
) -> None:
    world.add_user(ALICE, name="Alice")
    cid = await Connector(api, world).connect(ALICE)
    await worker.drain()  # the first sync, with the real kinds
    async with runtime.sessions() as session:  # changes are now announced to the calendar
        await session.execute(
            update(Calendar)
            .where(Calendar.id == cid)
            .values(webhook_url="https://hooks.example.com/calendar")
        )
        await session.commit()
    runtime.clock = StillClock(clock.now())
    await runtime.notifier.wait(0)  # nothing pending from setup
    claims = Claims()
    by_name = {k.name: k for k in default_kinds(runtime)}
    kinds = [counted(by_name["sync:google_calendar"], claims)]
    kinds += [idle(name, claims) for name in OTHERS]
    async with running(Worker(runtime, owner="loop", kinds=kinds)):
        assert await claims.settle(4) == ["sync:google_calendar", *OTHERS]  # the first pass

        await pushed(runtime, cid)  # nothing changed at the provider
        await claims.finished(1)
        assert await claims.settle(1) == ["sync:google_calendar"]

        world.create_event(
            ALICE,
            {
                "summary": "New",
                "start": {"dateTime": "2026-11-03T10:00:00Z"},
                "end": {"dateTime": "2026-11-03T11:00:00Z"},
            },
        )
        await pushed(runtime, cid)  # a new event: calendar.sync_events is queued
        await claims.finished(2)
        assert await claims.settle(2) == ["sync:google_calendar", "webhooks"]


async def test_drain_claims_other_kinds_on_its_first_and_last_pass_only(
    api: httpx.AsyncClient, world: Any, runtime: Any
) -> None:
    conn = Connector(api, world)
    ids = [await conn.connect(f"user{i}@example.com") for i in range(3)]
    claims = Claims()
    by_name = {k.name: k for k in default_kinds(runtime)}
    # One sync at a time: each finished sync makes the worker claim its kind again.
    sync = replace(by_name["sync:google_calendar"], concurrency=1)
    kinds = [counted(sync, claims), *(idle(name, claims) for name in OTHERS)]
    outcomes = await Worker(runtime, owner="w", kinds=kinds).drain()
    assert sorted(o.calendar_id for o in outcomes if isinstance(o, SyncOutcome)) == sorted(ids)
    assert all(o.result == "synced" for o in outcomes if isinstance(o, SyncOutcome))
    assert len(outcomes) == 3
    assert [claims.count(name) for name in OTHERS] == [2, 2, 2]


def queue_kind(name: str, queue: list[str], done: list[str], **extra: Any) -> JobKind:
    """A kind over an in-memory queue: its claim takes queued ids, its run records them and
    may add to another queue (``then``) or yield first (``yields``)."""
    then: tuple[list[str], str] | None = extra.pop("then", None)
    yields: dict[str, int] = extra.pop("yields", {})

    async def claim(rt: Runtime, owner: str, limit: int) -> list[str]:
        taken = queue[:limit]
        del queue[:limit]
        return taken

    async def run(rt: Runtime, row_id: str, owner: str) -> object:
        for _ in range(yields.get(row_id, 0)):
            await asyncio.sleep(0)
        done.append(row_id)
        if then is not None:
            then[0].append(then[1] + row_id)
        return row_id

    return JobKind(name=name, concurrency=extra.pop("concurrency", 4), claim=claim, run=run)


async def test_drain_runs_work_a_job_made_due_without_feeding_its_kind(runtime: Any) -> None:
    a_queue, b_queue = ["1", "2"], []
    done: list[str] = []
    kinds = [
        # "a" makes work for "b" but does not say so (no ``feeds``): the last pass finds it.
        queue_kind("a", a_queue, done, then=(b_queue, "b")),
        queue_kind("b", b_queue, done),
    ]
    outcomes = await Worker(runtime, owner="w", kinds=kinds).drain()
    assert sorted(done) == ["1", "2", "b1", "b2"]
    assert sorted(str(o) for o in outcomes) == ["1", "2", "b1", "b2"]


async def test_drain_collects_each_job_once_when_jobs_finish_together(runtime: Any) -> None:
    # Jobs that finish a loop turn apart: the worker wakes for one while another is done
    # but its done-callbacks have not run yet (it is still in its kind's in-flight set).
    queue = [str(i) for i in range(12)]
    done: list[str] = []
    kinds = [
        queue_kind("a", queue, done, concurrency=12, yields={str(i): i % 4 for i in range(12)})
    ]
    outcomes = await Worker(runtime, owner="w", kinds=kinds).drain()
    assert sorted(done) == sorted(str(i) for i in range(12))
    assert sorted(str(o) for o in outcomes) == sorted(done)  # each job's result once
