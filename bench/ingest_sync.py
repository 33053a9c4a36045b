"""One measured full sync of every benchmark calendar (a child of ``bench.ingest``).

A fresh SQLite database (WAL) is migrated, one tenant and one calendar per emulator user
are created through the service layer (not timed), then ``Worker(runtime).drain()`` runs
every due sync with the SystemClock and the default per-provider concurrency. Only the
drain is timed. The result is checked (row count, no duplicates, every calendar
connected with a cursor) and written as JSON to ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import json
import os
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from sqlalchemy import func, select, update

from bench.common import maxrss_kib, peak_kib, reset_peak, rss_kib, write_json
from showup.calendars.service import NewCalendar, create_calendar
from showup.config import Settings
from showup.db.migrate import upgrade
from showup.db.models import Calendar, Event
from showup.jobs.worker import Worker
from showup.runtime import Runtime, build_runtime
from showup.tenants import create_tenant


async def _setup(rt: Runtime, cfg: dict[str, Any]) -> None:
    await upgrade(rt.engine)
    async with rt.sessions() as session:
        tenant = await create_tenant(session, rt.clock, "bench")
        for email, refresh_token in cfg["users"]:
            await create_calendar(
                session,
                rt.clock,
                rt.vault,
                tenant.tenant_id,
                NewCalendar(
                    platform="google_calendar",
                    oauth_client_id=cfg["client_id"],
                    oauth_client_secret=cfg["client_secret"],
                    oauth_refresh_token=refresh_token,
                    external_user_id=email,
                ),
            )
        # The API makes a new calendar due once its create call has answered; here every
        # calendar is due at once, so that the measured drain starts with all of them.
        await session.execute(update(Calendar).values(next_sync_at=rt.clock.now()))
        await session.commit()


# Drain until every calendar has completed its first sync. drain() returns when nothing is
# due now; a sync that failed transiently (e.g. a connection reset) is due again after its
# backoff, which the service would wait out too: so wait for it (bounded), then drain again.
# The wait counts in the measured time, as it would in production.
_MAX_DRAINS = 100
_MAX_RETRY_WAIT = timedelta(minutes=5)


async def _pending(rt: Runtime) -> tuple[int, datetime | None]:
    """Calendars still without a first sync, and the earliest time one of them is due."""
    async with rt.sessions() as session:
        row = (
            await session.execute(
                select(func.count(), func.min(Calendar.next_sync_at)).where(
                    Calendar.sync_cursor.is_(None), Calendar.status != "disconnected"
                )
            )
        ).one()
    return int(row[0]), row[1]


async def _drain_all(rt: Runtime) -> tuple[list[Any], int]:
    worker = Worker(rt)
    outcomes: list[Any] = []
    deadline = rt.clock.now() + _MAX_RETRY_WAIT
    for drains in range(1, _MAX_DRAINS + 1):
        outcomes.extend(await worker.drain())
        pending, due = await _pending(rt)
        now = rt.clock.now()
        if not pending or due is None or now > deadline:
            return outcomes, drains
        if due.tzinfo is None:  # SQLite hands back naive UTC
            due = due.replace(tzinfo=UTC)
        await rt.clock.sleep(min(max(due - now, timedelta(0)), deadline - now))
    return outcomes, _MAX_DRAINS


async def _verify(rt: Runtime, cfg: dict[str, Any], outcomes: list[Any]) -> dict[str, Any]:
    calendars = len(cfg["users"])
    expected = calendars * cfg["events_per_user"]
    async with rt.sessions() as session:
        rows = await session.scalar(select(func.count()).select_from(Event))
        distinct = await session.scalar(
            select(func.count()).select_from(
                select(Event.calendar_id, Event.platform_id).distinct().subquery()
            )
        )
        live = await session.scalar(
            select(func.count()).select_from(Event).where(Event.is_deleted.is_(False))
        )
        per_calendar = Counter(
            dict(
                (
                    await session.execute(
                        select(Event.calendar_id, func.count()).group_by(Event.calendar_id)
                    )
                ).all()
            )
        )
        statuses = Counter((await session.scalars(select(Calendar.status))).all())
        without_cursor = await session.scalar(
            select(func.count()).select_from(Calendar).where(Calendar.sync_cursor.is_(None))
        )
        with_link = await session.scalar(
            select(func.count()).select_from(Event).where(Event.meeting_url.is_not(None))
        )
    results = Counter(getattr(o, "result", type(o).__name__) for o in outcomes)
    problems = []
    if rows != expected:
        problems.append(f"{rows} event rows, expected {expected}")
    if distinct != rows:
        problems.append(f"{(rows or 0) - (distinct or 0)} duplicate (calendar, platform_id) rows")
    if live != expected:
        problems.append(f"{live} live events, expected {expected}")
    if len(per_calendar) != calendars or set(per_calendar.values()) != {cfg["events_per_user"]}:
        problems.append(f"per-calendar counts {sorted(set(per_calendar.values()))}")
    if statuses != Counter({"connected": calendars}):
        problems.append(f"calendar statuses {dict(statuses)}")
    if without_cursor:
        problems.append(f"{without_cursor} calendars without a sync cursor")
    if results.get("disconnected"):
        problems.append(f"sync outcomes {dict(results)}")
    return {
        "event_rows": rows,
        "distinct_rows": distinct,
        "calendars_connected": statuses.get("connected", 0),
        "events_with_meeting_url": with_link,
        # As returned by drain(): "failed" / "rate_limited" are transient failures that were
        # retried after their backoff (the database check above is what must hold).
        "outcomes": dict(results),
        "problems": problems,
    }


async def measure(cfg: dict[str, Any], data_dir: Path) -> dict[str, Any]:
    settings = Settings(
        data_dir=data_dir,
        master_key=SecretStr(base64.b64encode(b"showup-bench-master-key-32-bytes").decode()),
        google_api_url=f"{cfg['base_url']}/calendar/v3",
        google_token_url=f"{cfg['base_url']}/token",
        sync_concurrency_per_provider=cfg["concurrency"],
        sync_page_size=cfg["page_size"],
        # Only first syncs are measured: a drain slower than the poll interval (5 min) must
        # not start polling the calendars it already synced.
        poll_interval=timedelta(days=1),
    )
    rt = build_runtime(settings)
    try:
        t0 = time.perf_counter()
        await _setup(rt, cfg)
        setup_s = time.perf_counter() - t0
        gc.collect()
        baseline = rss_kib()
        peak_reset = reset_peak()
        t0 = time.perf_counter()
        cpu0, main0 = time.process_time(), time.thread_time()
        outcomes, drains = await _drain_all(rt)
        elapsed = time.perf_counter() - t0
        cpu, main_cpu = time.process_time() - cpu0, time.thread_time() - main0
        peak = peak_kib()
        verified = await _verify(rt, cfg, outcomes)
    finally:
        await rt.aclose()
    events = len(cfg["users"]) * cfg["events_per_user"]
    return {
        "elapsed_s": elapsed,
        "drain_calls": drains,
        "cpu_s": cpu,
        # The event loop's thread: everything but SQLite (aiosqlite runs it in its own threads).
        "main_thread_cpu_s": main_cpu,
        "events": events,
        "events_per_s": events / elapsed,
        "setup_s": setup_s,
        "rss_baseline_mib": baseline / 1024,
        "rss_peak_mib": peak / 1024,
        "rss_increase_mib": (peak - baseline) / 1024 if peak_reset else None,
        "ru_maxrss_mib": maxrss_kib() / 1024,
        **verified,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.ingest_sync")
    p.add_argument("--config", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    cfg = json.loads(args.config.read_text())
    parent = cfg.get("workdir")
    with tempfile.TemporaryDirectory(prefix="showup-bench-db-", dir=parent) as tmp:
        result = asyncio.run(measure(cfg, Path(tmp)))
        result["db_mib"] = sum(f.stat().st_size for f in Path(tmp).glob("showup.db*")) / 2**20
    result["pid"] = os.getpid()
    write_json(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
