"""How many transactions a sync takes, counted on the engine (SQLite and PostgreSQL, both
providers). On SQLite every transaction takes the one write lock and costs about a
millisecond of event-loop CPU (BENCHMARKS.md, "ingest"), so these counts are pinned:

- the claim, which also reads the snapshot the sync starts from;
- one per page, the last of which also ends the sync (unseen events deleted, cursor,
  status and schedule stored, lease released).

So a one-page sync takes two, whether it finds nothing, one change or a whole calendar
(and the first sync of a calendar without events reads none).
The one exception: Microsoft rotates the refresh token on every refresh, and the new one
is committed before it is used, in a transaction of its own (a first sync refreshes).

And what that folding must keep: the cursor still commits only with the last page (a sync
that fails there re-runs the round), and a lease lost mid-sync fences the last page off.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event, select, update

from showup.config import Settings
from showup.db.models import Calendar, Event
from showup.jobs.kinds import JobKind
from showup.jobs.worker import Worker
from showup.sync import runner
from showup.sync.runner import SyncOutcome
from tests.conftest import make_settings
from tests.sync.helpers import Connector

ALICE = "alice@example.com"
PAGE = 2  # events per page of the provider's listing


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, sync_page_size=PAGE)


class Transactions:
    """Counts the transactions begun on an engine, and keeps the statements."""

    def __init__(self, runtime: Any) -> None:
        self.n = 0
        self.statements: list[str] = []
        event.listen(runtime.engine.sync_engine, "begin", self._begun)
        event.listen(runtime.engine.sync_engine, "before_cursor_execute", self._executed)

    def _begun(self, _conn: Any) -> None:
        self.n += 1

    def _executed(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        self.statements.append(" ".join(statement.split()))

    def take(self) -> int:
        n, self.n = self.n, 0
        self.statements.clear()
        return n

    def reads_of(self, table: str) -> list[str]:
        """Statements selecting rows of ``table`` (not those merely testing for some)."""
        return [s for s in self.statements if s.startswith(f"SELECT {table}.")]


def add_events(world: Any, n: int, first: int = 0) -> None:
    for i in range(first, first + n):
        world.create_event(
            ALICE,
            {
                "summary": f"Meeting {i}",
                "start": {"dateTime": f"2026-11-03T{8 + i:02d}:00:00Z"},
                "end": {"dateTime": f"2026-11-03T{8 + i:02d}:30:00Z"},
            },
        )


async def make_due(runtime: Any, cid: str) -> None:
    async with runtime.sessions() as session:
        await session.execute(
            update(Calendar).where(Calendar.id == cid).values(next_sync_at=runtime.clock.now())
        )
        await session.commit()


async def sync_once(runtime: Any, kind: JobKind, owner: str, cid: str) -> SyncOutcome:
    """Claim ``cid`` (due now) through the sync kind and run its job, as the worker does."""
    assert await kind.claim(runtime, owner, 8) == [cid]
    outcome = await kind.run(runtime, cid, owner)
    assert isinstance(outcome, SyncOutcome)
    return outcome


async def stored(runtime: Any, cid: str) -> dict[str, str]:
    """Live events of ``cid``: platform id -> our id."""
    async with runtime.sessions() as session:
        rows = await session.execute(
            select(Event.platform_id, Event.id).where(
                Event.calendar_id == cid, Event.is_deleted.is_(False)
            )
        )
        return {pid: eid for pid, eid in rows}


async def test_one_page_syncs_take_the_claim_and_one_transaction(
    api: httpx.AsyncClient, world: Any, runtime: Any, platform: str
) -> None:
    world.add_user(ALICE, name="Alice")
    add_events(world, 1)
    cid = await Connector(api, world, platform).connect(ALICE)
    kind = Worker(runtime, owner="w").kind(f"sync:{platform}")
    assert kind.fed is not None
    txns = Transactions(runtime)
    rotation = 1 if platform == "microsoft_outlook" else 0  # the rotated refresh token

    first = await sync_once(runtime, kind, "w", cid)
    assert (first.result, first.full, first.inserted) == ("synced", True, 1)
    # The calendar had no events: none looked up, none looked for to delete.
    assert txns.reads_of("events") == []
    assert txns.take() == 2 + rotation

    await make_due(runtime, cid)
    txns.take()
    nothing = await sync_once(runtime, kind, "w", cid)
    assert (nothing.result, nothing.full, nothing.changed_event_ids) == ("synced", False, [])
    assert txns.take() == 2
    assert list(kind.fed(nothing)) == []  # the worker claims no other kind after it

    add_events(world, 1, first=1)
    await make_due(runtime, cid)
    txns.take()
    one = await sync_once(runtime, kind, "w", cid)
    assert (one.result, one.full, one.inserted) == ("synced", False, 1)
    assert txns.take() == 2
    assert len(await stored(runtime, cid)) == 2
    async with runtime.sessions() as session:
        cal = await session.get(Calendar, cid)
    assert cal is not None
    assert (cal.status, cal.lease_owner, cal.sync_requested_at) == ("connected", None, None)
    assert cal.next_sync_at == runtime.clock.now() + runtime.settings.poll_interval


async def test_every_page_but_the_last_has_its_own_transaction(
    api: httpx.AsyncClient, world: Any, runtime: Any, platform: str
) -> None:
    world.add_user(ALICE, name="Alice")
    add_events(world, 2 * PAGE + 1)  # three pages or more
    cid = await Connector(api, world, platform).connect(ALICE)
    kind = Worker(runtime, owner="w").kind(f"sync:{platform}")
    txns = Transactions(runtime)
    rotation = 1 if platform == "microsoft_outlook" else 0  # the rotated refresh token
    outcome = await sync_once(runtime, kind, "w", cid)
    assert (outcome.result, outcome.inserted) == ("synced", 2 * PAGE + 1)
    assert outcome.pages >= 3
    assert txns.take() == 1 + outcome.pages + rotation


async def test_a_sync_failing_at_its_last_page_keeps_no_cursor_and_reruns_the_round(
    api: httpx.AsyncClient,
    world: Any,
    runtime: Any,
    worker: Worker,
    clock: Any,
    platform: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world.add_user(ALICE, name="Alice")
    add_events(world, 2 * PAGE + 1)
    cid = await Connector(api, world, platform).connect(ALICE)

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("crash while ending the sync")

    monkeypatch.setattr(runner.push_schedule, "after_sync", broken)
    [failed] = await worker.drain()
    assert failed.result == "failed" and failed.error == "internal error: RuntimeError"
    early = await stored(runtime, cid)
    # The pages before the last one committed; the last one went with the failed ending.
    assert PAGE <= len(early) < 2 * PAGE + 1
    async with runtime.sessions() as session:
        cal = await session.get(Calendar, cid)
    assert cal is not None
    assert (cal.sync_cursor, cal.last_synced_at, cal.status) == (None, None, "connecting")

    monkeypatch.undo()
    clock.advance(timedelta(minutes=5))
    [synced] = await worker.drain()
    assert (synced.result, synced.full) == ("synced", True)
    after = await stored(runtime, cid)
    assert len(after) == 2 * PAGE + 1
    assert all(after[pid] == eid for pid, eid in early.items())  # same rows, not copies
    async with runtime.sessions() as session:
        cal = await session.get(Calendar, cid)
    assert cal is not None and cal.sync_cursor is not None and cal.status == "connected"


async def test_a_lease_lost_mid_sync_fences_off_the_last_page(
    api: httpx.AsyncClient, world: Any, runtime: Any, clock: Any, platform: str
) -> None:
    world.add_user(ALICE, name="Alice")
    add_events(world, 1)
    cid = await Connector(api, world, platform).connect(ALICE)
    slow = Worker(runtime, owner="slow").kind(f"sync:{platform}")
    fast = Worker(runtime, owner="fast").kind(f"sync:{platform}")
    # The slow worker claims (and reads its snapshot), then stalls past its lease.
    assert await slow.claim(runtime, "slow", 8) == [cid]
    clock.advance(runtime.settings.lease_duration + timedelta(seconds=1))
    done = await sync_once(runtime, fast, "fast", cid)
    assert (done.result, done.inserted) == ("synced", 1)
    add_events(world, 1, first=1)  # a change only the slow worker's listing would see
    late = await slow.run(runtime, cid, "slow")
    assert isinstance(late, SyncOutcome)
    assert late.result == "skipped" and late.wrote == set()
    assert len(await stored(runtime, cid)) == 1  # its page was not written
    async with runtime.sessions() as session:
        cal = await session.get(Calendar, cid)
    assert cal is not None and cal.lease_owner is None and cal.last_synced_at == clock.now()


async def test_sync_jobs_run_through_sync_calendar_with_the_claims_snapshot(
    api: httpx.AsyncClient,
    world: Any,
    runtime: Any,
    worker: Worker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A wrapper of runner.sync_calendar (the push-latency benchmark's probe) sees every
    # sync job, and the job starts from the snapshot its claim read.
    world.add_user(ALICE, name="Alice")
    cid = await Connector(api, world).connect(ALICE)
    original = runner.sync_calendar
    seen: list[tuple[str, Any]] = []

    async def wrapper(rt: Any, calendar_id: str, owner: str, **kw: Any) -> SyncOutcome:
        seen.append((calendar_id, kw.get("snapshot")))
        return await original(rt, calendar_id, owner, **kw)

    monkeypatch.setattr(runner, "sync_calendar", wrapper)
    [outcome] = await worker.drain()
    assert outcome.result == "synced"
    [(calendar_id, snapshot)] = seen
    assert calendar_id == cid
    assert snapshot is not None and (snapshot.id, snapshot.cursor) == (cid, None)
