"""A notification names the job kinds it concerns: a push notification wakes its sync kind
only, not every kind (on SQLite every claim is a write transaction). A notification that
names none, and the idle poll, still claim every kind."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from showup.config import Settings
from showup.jobs.kinds import JobKind
from showup.jobs.worker import Worker
from showup.runtime import Notifier, Runtime
from tests.conftest import make_settings

KINDS = ("sync:google_calendar", "sync:microsoft_outlook", "webhooks")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # No idle poll within the test: every claim after the first pass is a notification's.
    return make_settings(tmp_path, worker_idle_poll=timedelta(hours=1))


async def test_the_notifier_returns_the_kinds_named_since_the_last_wait() -> None:
    notifier = Notifier()
    notifier.notify("sync:google_calendar")
    notifier.notify("push")
    assert await notifier.wait(0) == frozenset({"sync:google_calendar", "push"})
    assert await notifier.wait(0) is None  # nothing since: a poll, every kind
    notifier.notify("push")
    notifier.notify()
    assert await notifier.wait(0) is None  # one of them asked for every kind


class Claims(list[str]):
    def __init__(self) -> None:
        super().__init__()
        self.more = asyncio.Event()


def _counting(name: str, claims: Claims) -> JobKind:
    async def claim(rt: Runtime, owner: str, limit: int) -> list[str]:
        claims.append(name)
        claims.more.set()
        return []

    async def run(rt: Runtime, row_id: str, owner: str) -> object:
        return None

    return JobKind(name=name, concurrency=1, claim=claim, run=run)


async def _settle(claims: Claims, n: int) -> list[str]:
    """The claims once there are ``n`` and the worker has gone back to waiting."""
    async with asyncio.timeout(10):  # the first pass waits for I/O (maintenance)
        while len(claims) < n:
            await claims.more.wait()
            claims.more.clear()
    for _ in range(50):  # let a wrongly woken kind show up too
        await asyncio.sleep(0)
    got = list(claims)
    claims.clear()
    return got


async def test_a_notification_claims_the_kinds_it_names(runtime: Any) -> None:
    claims = Claims()
    await runtime.notifier.wait(0)  # nothing pending from setup
    worker = Worker(runtime, owner="notify", kinds=[_counting(k, claims) for k in KINDS])
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run_forever(stop))
    try:
        assert await _settle(claims, 3) == list(KINDS)  # the first pass: every kind
        runtime.notifier.notify("sync:google_calendar")
        assert await _settle(claims, 1) == ["sync:google_calendar"]
        runtime.notifier.notify("sync")  # a family: every provider's sync
        assert await _settle(claims, 2) == ["sync:google_calendar", "sync:microsoft_outlook"]
        runtime.notifier.notify()
        assert await _settle(claims, 3) == list(KINDS)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
