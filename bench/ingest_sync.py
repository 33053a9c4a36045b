"""One measured full sync of every benchmark calendar (a child of ``bench.ingest``).

A fresh SQLite database (WAL) is migrated, one tenant and one calendar per emulator user
are created through the service layer (not timed), then ``Worker(runtime).drain()`` runs
every due sync with the SystemClock and the default per-provider concurrency. Only the
drain is timed. The result is checked (row count, no duplicates, every calendar
connected with a cursor) and written as JSON to ``--out``.

With ``processes`` > 1 (``scripts/bench ingest --processes N``) the drain runs in N
spawned processes against the same database, as ``showup worker --processes N`` does:
each sets up its runtime and opens its connection first, then all start together; the
measurement ends when the last one is done, i.e. when every calendar has had its first
sync (a process whose drain finds nothing due while another still syncs some calendars
looks again shortly, as those may fail and be due again). CPU is summed over the
processes; peak memory is reported per process (the largest) and summed.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing
import os
import queue
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from sqlalchemy import func, or_, select, update

from bench.common import maxrss_kib, peak_kib, reset_peak, rss_kib, write_json
from showup.calendars.service import NewCalendar, create_calendar
from showup.config import Settings, sync_concurrency_share
from showup.db.migrate import upgrade
from showup.db.models import Calendar, Event
from showup.jobs.worker import Worker
from showup.runtime import Runtime, build_runtime
from showup.server import tune_gc
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


_WITHOUT_FIRST_SYNC = (Calendar.sync_cursor.is_(None), Calendar.status != "disconnected")


async def _pending(rt: Runtime) -> tuple[int, datetime | None]:
    """Calendars still without a first sync, and the earliest time one of them is due."""
    async with rt.sessions() as session:
        row = (
            await session.execute(
                select(func.count(), func.min(Calendar.next_sync_at)).where(*_WITHOUT_FIRST_SYNC)
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


# With several processes: how often a process whose drain found nothing due looks again
# while another process still syncs calendars without a first sync (the end of the run).
_SHARED_POLL = timedelta(milliseconds=20)


async def _pending_shared(rt: Runtime) -> tuple[int, int, datetime | None]:
    """Calendars still without a first sync, how many of them another process syncs now
    (leased), and the earliest time one of the others is due."""
    now = rt.clock.now()
    free = or_(Calendar.lease_expires_at.is_(None), Calendar.lease_expires_at <= now)
    async with rt.sessions() as session:
        row = (
            await session.execute(
                select(
                    func.count(),
                    func.count().filter(~free),
                    func.min(Calendar.next_sync_at).filter(free),
                ).where(*_WITHOUT_FIRST_SYNC)
            )
        ).one()
    return int(row[0]), int(row[1]), row[2]


async def _drain_shared(rt: Runtime) -> tuple[list[Any], int]:
    """``_drain_all`` for one of several processes: until no calendar lacks its first
    sync, whichever process synced it."""
    worker = Worker(rt)
    outcomes: list[Any] = []
    deadline = rt.clock.now() + _MAX_RETRY_WAIT
    drains = 0
    while True:
        outcomes.extend(await worker.drain())
        drains += 1
        pending, leased, due = await _pending_shared(rt)
        now = rt.clock.now()
        if not pending or now > deadline:
            return outcomes, drains
        if leased:
            wait = _SHARED_POLL
        elif due is None:
            return outcomes, drains
        else:
            if due.tzinfo is None:  # SQLite hands back naive UTC
                due = due.replace(tzinfo=UTC)
            wait = max(due - now, timedelta(0))
        await rt.clock.sleep(min(wait, deadline - now))


def _results(outcomes: list[Any]) -> Counter[str]:
    return Counter(getattr(o, "result", type(o).__name__) for o in outcomes)


async def _verify(rt: Runtime, cfg: dict[str, Any], results: Counter[str]) -> dict[str, Any]:
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


def _settings(cfg: dict[str, Any], data_dir: Path) -> Settings:
    return Settings(
        data_dir=data_dir,
        master_key=SecretStr(base64.b64encode(b"showup-bench-master-key-32-bytes").decode()),
        google_api_url=f"{cfg['base_url']}/calendar/v3",
        google_token_url=f"{cfg['base_url']}/token",
        # Split among the drain processes, as `showup worker --processes N` splits it.
        sync_concurrency_per_provider=sync_concurrency_share(
            cfg["concurrency"], int(cfg.get("processes", 1))
        ),
        sync_page_size=cfg["page_size"],
        # Only first syncs are measured: a drain slower than the poll interval (5 min) must
        # not start polling the calendars it already synced.
        poll_interval=timedelta(days=1),
    )


async def measure(cfg: dict[str, Any], data_dir: Path) -> dict[str, Any]:
    processes = int(cfg.get("processes", 1))
    rt = build_runtime(_settings(cfg, data_dir))
    try:
        t0 = time.perf_counter()
        await _setup(rt, cfg)
        setup_s = time.perf_counter() - t0
        if processes > 1:
            await rt.engine.dispose()  # idle while the processes drain; reconnects after
            drained = await asyncio.to_thread(_drain_in_processes, cfg, data_dir, processes)
        else:
            drained = await _drain_here(rt)
        verified = await _verify(rt, cfg, drained.pop("results"))
    finally:
        await rt.aclose()
    events = len(cfg["users"]) * cfg["events_per_user"]
    return {
        "processes": processes,
        **drained,
        "events": events,
        "events_per_s": events / drained["elapsed_s"],
        "setup_s": setup_s,
        **verified,
    }


async def _drain_here(rt: Runtime) -> dict[str, Any]:
    """The timed drain in this process (one process: the default)."""
    tune_gc()  # as `showup worker` does once set up (it collects first)
    baseline = rss_kib()
    peak_reset = reset_peak()
    t0 = time.perf_counter()
    cpu0, main0 = time.process_time(), time.thread_time()
    outcomes, drains = await _drain_all(rt)
    elapsed = time.perf_counter() - t0
    cpu, main_cpu = time.process_time() - cpu0, time.thread_time() - main0
    return {
        "elapsed_s": elapsed,
        "drain_calls": drains,
        "cpu_s": cpu,
        # The event loop's thread: everything but SQLite (aiosqlite runs it in its own threads).
        "main_thread_cpu_s": main_cpu,
        **_memory(baseline, peak_reset),
        "results": _results(outcomes),
    }


def _memory(baseline: int, peak_reset: bool) -> dict[str, float | None]:
    """This process's memory figures now, against its RSS ``baseline`` (KiB) taken when
    the peak was reset (``peak_reset``: whether that worked)."""
    peak = peak_kib()
    return {
        "rss_baseline_mib": baseline / 1024,
        "rss_peak_mib": peak / 1024,
        "rss_increase_mib": (peak - baseline) / 1024 if peak_reset else None,
        "ru_maxrss_mib": maxrss_kib() / 1024,
    }


def _drain_in_processes(cfg: dict[str, Any], data_dir: Path, processes: int) -> dict[str, Any]:
    """The timed drain in ``processes`` spawned processes; from a thread of this one."""
    context = multiprocessing.get_context("spawn")
    ready, go, out = context.Barrier(processes + 1), context.Event(), context.Queue()
    children = [
        context.Process(target=_drain_process, args=(cfg, str(data_dir), ready, go, out))
        for _ in range(processes)
    ]
    for child in children:
        child.start()
    try:
        ready.wait(timeout=600)  # every process set up
        # CLOCK_MONOTONIC: one clock for every process of the machine.
        started, cpu0 = time.monotonic(), time.process_time()
        go.set()
        deadline = started + cfg.get("timeout", 1800)
        parts: list[dict[str, Any]] = []
        while len(parts) < processes:
            try:
                parts.append(out.get(timeout=1))
            except queue.Empty:
                failed = [c.exitcode for c in children if c.exitcode not in (None, 0)]
                if failed or time.monotonic() > deadline:
                    raise RuntimeError(f"drain processes failed ({failed}) or timed out") from None
        cpu = time.process_time() - cpu0  # this process, waiting (its own share)
    finally:
        for child in children:
            child.join(60)
            if child.exitcode is None:
                child.kill()
    if any(child.exitcode != 0 for child in children):
        raise RuntimeError(f"drain processes exited with {[c.exitcode for c in children]}")

    def total(key: str) -> float:
        return float(sum(part[key] for part in parts))

    def largest(key: str) -> float | None:
        values = [part[key] for part in parts]
        return None if None in values else float(max(values))

    increases = [part["rss_increase_mib"] for part in parts]
    return {
        "elapsed_s": max(part["ended"] for part in parts) - started,
        "drain_calls": int(total("drain_calls")),
        "cpu_s": total("cpu_s") + cpu,
        "main_thread_cpu_s": total("main_thread_cpu_s"),
        "rss_baseline_mib": largest("rss_baseline_mib"),
        "rss_peak_mib": largest("rss_peak_mib"),
        "rss_increase_mib": largest("rss_increase_mib"),
        "ru_maxrss_mib": largest("ru_maxrss_mib"),
        "rss_peak_sum_mib": total("rss_peak_mib"),
        "rss_increase_sum_mib": None if None in increases else total("rss_increase_mib"),
        "ru_maxrss_sum_mib": total("ru_maxrss_mib"),
        "per_process": [{k: v for k, v in part.items() if k != "results"} for part in parts],
        "results": sum((Counter(part["results"]) for part in parts), Counter()),
    }


def _drain_process(cfg: dict[str, Any], data_dir: str, ready: Any, go: Any, out: Any) -> None:
    """One drain process: set up, wait for ``go``, drain, put its figures on ``out``."""
    out.put(asyncio.run(_drain_part(cfg, Path(data_dir), ready, go)))


async def _drain_part(cfg: dict[str, Any], data_dir: Path, ready: Any, go: Any) -> dict[str, Any]:
    rt = build_runtime(_settings(cfg, data_dir))
    try:
        async with rt.sessions() as session:  # the connection and the lock file, opened
            await session.execute(select(func.count()).select_from(Calendar))
            await session.commit()
        tune_gc()  # as `showup worker` does once set up (it collects first)
        baseline = rss_kib()
        peak_reset = reset_peak()
        await asyncio.to_thread(ready.wait, 600)
        await asyncio.to_thread(go.wait)
        cpu0, main0 = time.process_time(), time.thread_time()
        outcomes, drains = await _drain_shared(rt)
        ended = time.monotonic()
        cpu, main_cpu = time.process_time() - cpu0, time.thread_time() - main0
        memory = _memory(baseline, peak_reset)
    finally:
        await rt.aclose()
    return {
        "pid": os.getpid(),
        "ended": ended,
        "drain_calls": drains,
        "cpu_s": cpu,
        "main_thread_cpu_s": main_cpu,
        **memory,
        "results": dict(_results(outcomes)),
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
