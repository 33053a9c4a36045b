"""Event retention: events deleted, or ended, longer ago than SHOWUP_DELETED_RETENTION go,
with their bot links, in small batches that each read through an index.

Driven by the FakeClock, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import bindparam, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from showup.db.bot_models import Bot, BotEvent
from showup.db.models import Event, new_id
from showup.jobs import retention as retention_module
from showup.jobs.retention import EventRetention
from tests.support.helpers import bare_calendar, counting_commits, listening, paced_pass

RETENTION = timedelta(days=60)  # the default
DAY = timedelta(days=1)


@dataclass
class Seeded:
    """What ``seed`` wrote: the event ids past the retention and those within it."""

    calendars: list[str] = field(default_factory=list)
    deleted: set[str] = field(default_factory=set)  # deleted before the cutoff
    ended: set[str] = field(default_factory=set)  # ended before the cutoff
    kept: set[str] = field(default_factory=set)
    bots: dict[str, str] = field(default_factory=dict)  # event id -> its bot's id


async def seed(runtime: Any, tenant_id: str, *, calendars: int = 3, deleted: int = 7) -> Seeded:
    """``calendars`` calendars with 5 events each that ended a day past the retention,
    ``deleted`` events deleted then (upcoming ones), and events within the retention:
    deleted a day within it, ended a day within it after starting long before, upcoming.
    One purged and one kept event have a bot."""
    now = runtime.clock.now()
    old, young = now - RETENTION - DAY, now - RETENTION + DAY
    out = Seeded()
    async with runtime.sessions() as session:
        for c in range(calendars):
            cal = bare_calendar(tenant_id, now)
            session.add(cal)
            await session.flush()
            out.calendars.append(cal.id)

            def add(start: datetime, end: datetime, deleted_at: datetime | None = None) -> str:
                ev = Event(
                    id=new_id(),
                    tenant_id=tenant_id,
                    calendar_id=cal.id,  # noqa: B023  (called in this iteration only)
                    platform_id=new_id(),
                    start_time=start,
                    end_time=end,
                    is_deleted=deleted_at is not None,
                    deleted_at=deleted_at,
                    raw={},
                    fingerprint="f",
                    created_at=now,
                    updated_at=now,
                )
                session.add(ev)
                return ev.id

            for i in range(5):
                start = old - timedelta(hours=i + 2)
                out.ended.add(add(start, start + timedelta(hours=1)))
            if c == 0:
                upcoming = now + DAY
                for i in range(deleted):
                    at = old - timedelta(minutes=i)
                    out.deleted.add(add(upcoming, upcoming + timedelta(hours=1), at))
            out.kept |= {
                add(upcoming := now + DAY, upcoming + timedelta(hours=1), young),
                add(old - 10 * DAY, young),  # started long before the cutoff, ends after
                add(young, young + timedelta(hours=1)),
                add(upcoming, upcoming + timedelta(hours=1)),
            }
        await session.flush()
        for event_id in (sorted(out.ended)[0], sorted(out.kept)[0]):
            bot = Bot(
                tenant_id=tenant_id,
                deduplication_key=event_id,
                status="dispatched",
                join_at=now,
                meeting_url="https://meet.google.com/abc-defg-hij",
                meeting_start=now,
                meeting_end=now,
                deadline=now,
                created_at=now,
                updated_at=now,
            )
            session.add(bot)
            await session.flush()
            session.add(
                BotEvent(
                    tenant_id=tenant_id,
                    bot_id=bot.id,
                    event_id=event_id,
                    calendar_id=out.calendars[0],
                    created_at=now,
                    updated_at=now,
                )
            )
            out.bots[event_id] = bot.id
        await session.commit()
    return out


async def event_ids(runtime: Any) -> set[str]:
    async with runtime.sessions() as session:
        return set(await session.scalars(select(Event.id)))


async def test_a_pass_purges_in_small_batches_over_several_calls(
    runtime: Any, tenant: Any, clock: Any, engine: AsyncEngine
) -> None:
    seeded = await seed(runtime, tenant.tenant_id)
    retention = EventRetention(batch_size=4, batches_per_call=1, calendars_per_batch=2)
    with counting_commits(engine) as commits:
        started = clock.now()
        per_call = await paced_pass(retention, runtime, clock)
    # 7 deleted: 4 | 3, then the first two calendars' 10 ended events topped up by one |
    # 4 | 4 | their last one | the third calendar's 5: 4 | 1.
    assert per_call == [4, 4, 4, 4, 1, 4, 1]
    assert commits[0] == 1 + 7  # the calendar list, then one transaction per batch
    assert await event_ids(runtime) == seeded.kept
    async with runtime.sessions() as session:
        linked = set(await session.scalars(select(BotEvent.event_id)))
        bots = set(await session.scalars(select(Bot.id)))
    # The purged event's bot link went with it; bots themselves are history and stay.
    assert linked == seeded.kept & set(seeded.bots)
    assert bots == set(seeded.bots.values())

    # The next pass starts an hour after this one started; nothing is read before.
    with counting_commits(engine) as commits:
        clock.set(started + timedelta(hours=1) - timedelta(microseconds=1))
        assert await retention.run(runtime) == 0 and commits[0] == 0
        clock.set(started + timedelta(hours=1))
        assert await retention.run(runtime) == 0 and commits[0] > 0


async def test_the_cutoff_is_fixed_when_a_pass_starts(
    runtime: Any, tenant: Any, clock: Any
) -> None:
    seeded = await seed(runtime, tenant.tenant_id, calendars=1, deleted=0)
    retention = EventRetention(batch_size=2)
    assert await retention.run(runtime) == 2 and retention.busy
    # Two days on, the young events are past the retention, but not past this pass's cutoff.
    clock.advance(2 * DAY)
    while retention.busy:
        await retention.run(runtime, force=True)
    assert await event_ids(runtime) == seeded.kept
    # The next pass (due: it is past an hour since the first started) takes them.
    assert await retention.run(runtime) > 0
    while retention.busy:
        await retention.run(runtime, force=True)
    assert len(await event_ids(runtime)) == 1  # the upcoming one


async def test_maintain_with_force_purges_a_whole_backlog_in_one_call(
    runtime: Any, tenant: Any, worker: Any, caplog: pytest.LogCaptureFixture
) -> None:
    seeded = await seed(runtime, tenant.tenant_id, calendars=4, deleted=250)
    caplog.set_level(logging.INFO, logger="showup.retention")
    # More than a batch (200) of each kind, and more calendars than one batch looks at.
    worker._event_retention = EventRetention(calendars_per_batch=3)
    assert await worker.maintain(force=True) == 250 + 4 * 5
    assert await event_ids(runtime) == seeded.kept
    [line] = [r.getMessage() for r in caplog.records if r.name == "showup.retention"]
    assert line.startswith("purged 270 events deleted or ended before ")
    assert await worker.maintain(force=True) == 0


async def test_a_failed_batch_ends_the_pass_and_the_next_one_goes_on(
    runtime: Any,
    tenant: Any,
    clock: Any,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seeded = await seed(runtime, tenant.tenant_id)
    purge = retention_module.purge_events
    calls = 0

    async def failing_once(*args: Any) -> int:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("database gone")
        return await purge(*args)

    monkeypatch.setattr(retention_module, "purge_events", failing_once)
    retention = EventRetention(batch_size=4, batches_per_call=10)
    assert await retention.run(runtime) == 4  # the second batch failed: rolled back
    assert not retention.busy
    assert "event retention: a batch failed" in caplog.text
    clock.advance(timedelta(minutes=59))
    assert await retention.run(runtime) == 0
    clock.advance(timedelta(minutes=1))
    while True:
        await retention.run(runtime, force=True)
        if not retention.busy:
            break
    assert await event_ids(runtime) == seeded.kept


async def test_every_statement_of_a_pass_reads_through_an_index(
    runtime: Any, tenant: Any, engine: AsyncEngine
) -> None:
    await seed(runtime, tenant.tenant_id)
    statements: list[tuple[str, Any]] = []

    def capture(_c: Any, _cur: Any, sql: str, params: Any, _ctx: Any, _many: bool) -> None:
        if " events" in sql:
            statements.append((sql, params))

    with listening(engine, "before_cursor_execute", capture):
        await EventRetention(batch_size=4, calendars_per_batch=2).run_now(runtime)
    assert len(statements) > 10

    sqlite = engine.dialect.name == "sqlite"
    async with engine.begin() as conn:
        if not sqlite:
            await conn.execute(text("SET LOCAL enable_seqscan = off"))

        async def plan(sql: str, params: Any) -> str:
            rows = await conn.exec_driver_sql(
                f"{'EXPLAIN QUERY PLAN' if sqlite else 'EXPLAIN'} {sql}", params
            )
            return "\n".join(str(r[-1] if sqlite else r[0]) for r in rows)

        for sql, params in statements:
            p = await plan(sql, params)
            if sql.startswith("DELETE"):
                index = "sqlite_autoindex_events_1" if sqlite else "pk_events"
            elif "calendar_id IN" in sql:
                index = "ix_events_calendar_start"
            else:
                index = "ix_events_deleted_at"
            assert index in p, (sql, p)
            if sqlite:
                assert "SCAN events" not in p, (sql, p)
            else:
                assert "Seq Scan on events" not in p, (sql, p)
        assert {s.split()[0] for s, _ in statements} == {"SELECT", "DELETE"}
        assert any("calendar_id IN" in s for s, _ in statements)

        # The statement this replaced reads the whole table: the check above can fail.
        cutoff = bindparam(
            "cutoff", runtime.clock.now() - RETENTION, type_=Event.__table__.c.end_time.type
        )
        explain = "EXPLAIN QUERY PLAN" if sqlite else "EXPLAIN"
        rows = await conn.execute(
            text(
                f"{explain} DELETE FROM events WHERE deleted_at < :cutoff OR end_time < :cutoff"
            ).bindparams(cutoff)
        )
        p = "\n".join(str(r[-1] if sqlite else r[0]) for r in rows)
        assert ("SCAN events" if sqlite else "Seq Scan on events") in p, p


async def test_purge_events_checks_its_ids_itself(runtime: Any, tenant: Any) -> None:
    seeded = await seed(runtime, tenant.tenant_id, calendars=1, deleted=1)
    cutoff = runtime.clock.now() - RETENTION
    async with runtime.sessions() as session:
        n = await retention_module.purge_events(
            session, [*seeded.kept, *seeded.deleted, "evt_unknown"], cutoff
        )
        assert n == 1
        await session.commit()
    assert await event_ids(runtime) == seeded.kept | seeded.ended
