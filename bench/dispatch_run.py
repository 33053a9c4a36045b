"""One measured dispatch run (a child of ``bench.dispatch``).

``python -m bench.dispatch_run --config C --out O``

Setup (not timed), on a fresh SQLite database (WAL) migrated to head:

1. one tenant, and one webhook endpoint subscribed to ``bot.dispatch`` only, pointing at
   the receiver (URL checked by the SSRF guard, created by ``webhooks.endpoints``); its
   secret goes to the receiver so that it verifies every signature;
2. one connected calendar per bot (``calendars.service.create_calendar``, then marked
   synced with the next sync a day away, as if a push channel kept it fresh), and on each
   one meeting with its own Meet link: a Google ``events.list`` item turned into the row
   the sync writes (``normalize_items``, ``sync.plan.event_values``);
3. one bot per event through ``bots.schedule.schedule_event_bot``, the function behind
   ``POST /api/v2/calendar-events/{id}/bot/``, committed in batches;
4. the meetings start evenly spread across ``spread_s`` seconds (or, with
   ``whole_seconds``, on whole seconds, ~n/spread at each), about 40 minutes ahead;
   once setup is done, the tenant's lead time is set
   (``bots.manage.set_tenant_lead``, behind ``PATCH /api/v2/tenant/settings/``) so that
   the first join time is ``lead_in_s`` from now, whatever setup took.

Measured: ``Worker(runtime).run_forever(stop)`` with the SystemClock and default job kinds,
until no bot is live any more (polled once per second after the last join time) or
``timeout_s`` after it. Lateness per bot = the receiver's receive time - the bot's
``join_at``. The result (lateness percentiles, duplicates, missed, bot states, the
claim-side lateness from ``last_attempt_at``) is written as JSON to ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import cProfile
import gc
import json
import math
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr
from sqlalchemy import event, func, insert, select, update
from sqlalchemy.orm import Session

from bench.common import write_json
from showup.bots.bot_config import parse_bot_config
from showup.bots.manage import set_tenant_lead
from showup.bots.policy import BotPolicy
from showup.bots.schedule import schedule_event_bot
from showup.calendars.service import NewCalendar, create_calendar
from showup.config import Settings
from showup.db.bot_models import LIVE_STATUSES, Bot
from showup.db.migrate import upgrade
from showup.db.models import Calendar, Event, new_id
from showup.jobs.worker import Worker
from showup.providers.google_normalize import normalize_items
from showup.runtime import Runtime, build_runtime
from showup.server import tune_gc
from showup.sync.plan import event_values, fingerprint
from showup.tenants import create_tenant
from showup.webhooks.endpoints import create_endpoint
from showup.webhooks.outbox import BOT_DISPATCH

DOMAIN = "bench.example"
# Meetings this far ahead while bots are scheduled: nothing is due during setup.
_AHEAD = timedelta(minutes=40)
_BATCH = 100
_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def _log(msg: str) -> None:
    print(f"[dispatch] {msg}", file=sys.stderr, flush=True)


def meet_code(i: int) -> str:
    """A distinct Meet code per meeting, ``abc-defg-hij``."""
    chars = []
    for _ in range(10):
        i, r = divmod(i, 26)
        chars.append(_LETTERS[r])
    s = "".join(chars)
    return f"{s[:3]}-{s[3:7]}-{s[7:]}"


def google_item(i: int, email: str, start: datetime) -> dict[str, Any]:
    """One ``events.list`` item as Google returns it for a 30-minute Meet meeting."""
    code = meet_code(i)
    end = start + timedelta(minutes=30)
    return {
        "kind": "calendar#event",
        "etag": f'"{3_400_000_000_000_000 + i}"',
        "id": f"bench{i:08d}",
        "status": "confirmed",
        "htmlLink": f"https://www.google.com/calendar/event?eid=bench{i:08d}",
        "created": "2026-10-01T09:00:00.000Z",
        "updated": "2026-10-02T09:00:00.000Z",
        "summary": f"Customer call {i}",
        "description": "Agenda:\n1. Status\n2. Open questions\n3. Next steps",
        "creator": {"email": email, "self": True},
        "organizer": {"email": email, "self": True},
        "start": {"dateTime": start.isoformat(), "timeZone": "UTC"},
        "end": {"dateTime": end.isoformat(), "timeZone": "UTC"},
        "iCalUID": f"bench{i:08d}@google.com",
        "sequence": 0,
        "attendees": [
            {"email": email, "organizer": True, "self": True, "responseStatus": "accepted"},
            {"email": f"guest{i}@customer.example", "responseStatus": "accepted"},
            {"email": f"sales{i % 50}@{DOMAIN}", "responseStatus": "needsAction"},
        ],
        "hangoutLink": f"https://meet.google.com/{code}",
        "conferenceData": {
            "conferenceId": code,
            "conferenceSolution": {"key": {"type": "hangoutsMeet"}, "name": "Google Meet"},
            "entryPoints": [
                {
                    "entryPointType": "video",
                    "uri": f"https://meet.google.com/{code}",
                    "label": f"meet.google.com/{code}",
                }
            ],
        },
        "reminders": {"useDefault": True},
        "eventType": "default",
    }


def _settings(cfg: dict[str, Any], data_dir: Path) -> Settings:
    extra: dict[str, Any] = {}
    if cfg.get("concurrency"):
        extra["bot_dispatch_concurrency"] = cfg["concurrency"]
    return Settings(
        data_dir=data_dir,
        master_key=SecretStr(base64.b64encode(b"showup-bench-master-key-32-bytes").decode()),
        allow_http_loopback_webhooks=True,
        # No calendar is due during the run; should one be, it talks to nothing outside.
        google_api_url="http://127.0.0.1:9/calendar/v3",
        google_token_url="http://127.0.0.1:9/token",
        **extra,
    )


async def _endpoint(rt: Runtime, tenant_id: str, receiver_url: str) -> None:
    url = f"{receiver_url}/hook"
    await rt.outbound.check(url, rt.settings)  # what the endpoints API does first
    async with rt.sessions() as session:
        created = await create_endpoint(
            session,
            rt.vault,
            tenant_id=tenant_id,
            url=url,
            event_types=[BOT_DISPATCH],
            description="dispatch benchmark receiver",
            now=rt.clock.now(),
        )
        await session.commit()
    async with httpx.AsyncClient(trust_env=False) as client:
        r = await client.post(f"{receiver_url}/control/secret", content=created.secret)
        r.raise_for_status()


async def _calendars(rt: Runtime, tenant_id: str, n: int) -> list[tuple[str, str]]:
    """``n`` connected calendars; their (id, email)."""
    out: list[tuple[str, str]] = []
    async with rt.sessions() as session:
        for i in range(n):
            email = f"user{i:05d}@{DOMAIN}"
            cal = await create_calendar(
                session,
                rt.clock,
                rt.vault,
                tenant_id,
                NewCalendar(
                    platform="google_calendar",
                    oauth_client_id="bench-client.apps.googleusercontent.com",
                    oauth_client_secret="bench-client-secret",
                    oauth_refresh_token=f"1//bench-refresh-{i}",
                    external_user_id=f"ext-{i:05d}",
                ),
            )
            out.append((cal.id, email))
        now = rt.clock.now()
        await session.execute(
            update(Calendar)
            .where(Calendar.tenant_id == tenant_id)
            .values(
                status="connected",
                platform_email=Calendar.external_user_id,
                sync_cursor="bench-sync-token",
                window_start=now - rt.settings.sync_window_past,
                window_end=now + rt.settings.sync_window_future,
                last_synced_at=now,
                last_full_sync_at=now,
                next_sync_at=now + timedelta(days=1),
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        await session.commit()
    return out


async def _events(
    rt: Runtime, tenant_id: str, calendars: Sequence[tuple[str, str]], starts: Sequence[datetime]
) -> list[str]:
    now = rt.clock.now()
    rows: list[dict[str, Any]] = []
    for i, ((cal_id, email), start) in enumerate(zip(calendars, starts, strict=True)):
        [ev], _ = normalize_items([google_item(i, email, start)], "UTC")
        values = event_values(ev, fingerprint(ev))
        rows.append(
            {
                **values,
                "id": new_id(),
                "tenant_id": tenant_id,
                "calendar_id": cal_id,
                "created_at": now,
                "updated_at": now,
            }
        )
    async with rt.sessions() as session:
        for k in range(0, len(rows), 500):
            await session.execute(insert(Event), rows[k : k + 500])
        await session.commit()
    return [r["id"] for r in rows]


async def _schedule(rt: Runtime, tenant_id: str, event_ids: Sequence[str]) -> None:
    policy = BotPolicy.from_settings(rt.settings)
    config = parse_bot_config(
        {"bot_name": "Notetaker", "recording_config": {"transcript": {"provider": "default"}}}
    )
    for k in range(0, len(event_ids), _BATCH):
        async with rt.sessions() as session:
            for event_id in event_ids[k : k + _BATCH]:
                await schedule_event_bot(
                    session,
                    tenant_id=tenant_id,
                    event_id=event_id,
                    deduplication_key=f"bench-{event_id}",
                    config=config,
                    now=rt.clock.now(),
                    policy=policy,
                )
            await session.commit()


async def _set_lead(rt: Runtime, tenant_id: str, first_start: datetime, lead_in: float) -> int:
    now = rt.clock.now()
    lead = math.floor((first_start - now).total_seconds() - lead_in)
    async with rt.sessions() as session:
        await set_tenant_lead(
            session,
            tenant_id=tenant_id,
            seconds=lead,
            now=now,
            policy=BotPolicy.from_settings(rt.settings),
        )
        await session.commit()
    return lead


async def setup(rt: Runtime, cfg: dict[str, Any]) -> dict[str, Any]:
    n, spread = cfg["bots"], cfg["spread_s"]
    await upgrade(rt.engine)
    async with rt.sessions() as session:
        tenant = await create_tenant(session, rt.clock, "dispatch-bench")
        await session.commit()
    await _endpoint(rt, tenant.tenant_id, cfg["receiver_url"])
    base = (rt.clock.now() + _AHEAD).replace(microsecond=0)
    if cfg.get("whole_seconds"):
        # Round robin over whole seconds: ~n/spread meetings start in each second.
        offsets = [float(i % spread) if spread else 0.0 for i in range(n)]
    else:
        # Evenly across the spread (5,000 in 60 s: one every 12 ms).
        offsets = [spread * i / n for i in range(n)]
    starts = [base + timedelta(seconds=s) for s in offsets]
    calendars = await _calendars(rt, tenant.tenant_id, n)
    event_ids = await _events(rt, tenant.tenant_id, calendars, starts)
    await _schedule(rt, tenant.tenant_id, event_ids)
    lead = await _set_lead(rt, tenant.tenant_id, base, cfg["lead_in_s"])
    return {"tenant_id": tenant.tenant_id, "lead_s": lead}


async def _bots(rt: Runtime) -> list[Bot]:
    async with rt.sessions() as session:
        return list(await session.scalars(select(Bot)))


async def _live(rt: Runtime) -> int:
    async with rt.sessions() as session:
        q = select(func.count()).select_from(Bot).where(Bot.status.in_(LIVE_STATUSES))
        return int(await session.scalar(q) or 0)


class LockWaits:
    """Per transaction, from its begin to the end of its first statement, which on SQLite
    carries ``BEGIN IMMEDIATE`` (``db/sqlite_adapter.py``): the wait for the write lock
    (from another process: SQLite's busy handler), plus that first statement's own time.
    Also counts transactions."""

    def __init__(self, rt: Runtime) -> None:
        self.waits: list[float] = []
        self.on = False
        engine = rt.engine.sync_engine
        event.listen(engine, "begin", self._begin)
        event.listen(engine, "after_cursor_execute", self._after)

    def _begin(self, conn: Any) -> None:
        if self.on:
            conn.info["bench_begin"] = time.perf_counter()

    def _after(self, conn: Any, *_: Any) -> None:
        started = conn.info.pop("bench_begin", None)
        if started is not None:
            self.waits.append(time.perf_counter() - started)

    def summary(self) -> dict[str, Any]:
        ms = stats_ms(self.waits) or {}
        return {
            "transactions": len(self.waits),
            "total_s": sum(self.waits),
            "over_1ms": sum(1 for w in self.waits if w > 0.001),
            "p99_ms": ms.get("p99"),
            "max_ms": ms.get("max"),
        }


class Stalls:
    """What else can hold launches back: event-loop lag (a 10 ms tick arriving late: the
    loop was busy or the process was not scheduled), garbage-collection pauses, and slow
    commits (on SQLite a commit may run a WAL checkpoint, with an fsync)."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self.gc_pauses: list[float] = []
        self.commits: list[float] = []
        self._gc_start = 0.0
        self.on = False
        gc.callbacks.append(self._gc)
        # Every session of this process (the child runs nothing else): flush + commit.
        event.listen(Session, "before_commit", self._commit_start)
        event.listen(Session, "after_commit", self._commit_done)

    def _gc(self, phase: str, info: dict[str, Any]) -> None:
        if not self.on:
            return
        if phase == "start":
            self._gc_start = time.perf_counter()
        else:
            self.gc_pauses.append(time.perf_counter() - self._gc_start)

    def _commit_start(self, session: Session) -> None:
        if self.on:
            session.info["bench_commit"] = time.perf_counter()

    def _commit_done(self, session: Session) -> None:
        started = session.info.pop("bench_commit", None)
        if started is not None:
            self.commits.append(time.perf_counter() - started)

    async def tick(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            t = time.perf_counter()
            await asyncio.sleep(0.01)
            self.lags.append(time.perf_counter() - t - 0.01)

    def summary(self) -> dict[str, Any]:
        def top(values: list[float]) -> dict[str, Any]:
            ms = stats_ms(values) or {}
            return {"count": len(values), "p99_ms": ms.get("p99"), "max_ms": ms.get("max")}

        return {
            "loop_lag": top(self.lags),
            "loop_lag_over_100ms": sum(1 for v in self.lags if v > 0.1),
            "gc_pauses": top(self.gc_pauses),
            "commits": top(self.commits),
            "commits_over_100ms": sum(1 for v in self.commits if v > 0.1),
        }


async def run_worker(
    rt: Runtime, last_join: datetime, tail_s: float, profile: cProfile.Profile | None
) -> dict[str, Any]:
    """Run the worker until no bot is live, or ``tail_s`` seconds after the last join."""
    stop = asyncio.Event()
    worker = Worker(rt, owner="bench-worker")
    tune_gc()  # as `showup worker` does once set up
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    loop_cpu0 = time.thread_time()
    if profile is not None:
        profile.enable()
    task = asyncio.create_task(worker.run_forever(stop))
    try:
        await rt.clock.sleep(last_join - rt.clock.now())
        give_up = last_join + timedelta(seconds=tail_s)
        live = await _live(rt)
        while live and rt.clock.now() < give_up and not task.done():
            await asyncio.sleep(1.0)
            live = await _live(rt)
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)
        if profile is not None:
            profile.disable()
    return {
        "worker_s": time.perf_counter() - t0,
        "worker_cpu_s": time.process_time() - cpu0,
        # Our Python runs on the event-loop thread; SQLite in aiosqlite's threads.
        "loop_cpu_s": time.thread_time() - loop_cpu0,
        "live_at_stop": live,
        "timed_out": bool(live),
    }


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (``p`` in 0-100) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def stats_ms(values: Sequence[float]) -> dict[str, float] | None:
    if not values:
        return None
    ms = [v * 1000 for v in values]
    return {
        "p50": percentile(ms, 50),
        "p90": percentile(ms, 90),
        "p99": percentile(ms, 99),
        "max": max(ms),
        "min": min(ms),
        "mean": sum(ms) / len(ms),
    }


def analyse(bots: list[Bot], received: dict[str, Any]) -> dict[str, Any]:
    join = {b.id: b.join_at.timestamp() for b in bots}
    hits: dict[str, list[float]] = {}
    unknown = bad_signature = key_mismatch = 0
    for bot_id, key, webhook_id, at, ok in received["hits"]:
        if bot_id not in join:
            unknown += 1
            continue
        if not ok:
            bad_signature += 1
        if key != bot_id or webhook_id != f"dispatch_{bot_id}":
            key_mismatch += 1
        hits.setdefault(bot_id, []).append(at)
    duplicates = sum(1 for ats in hits.values() if len(ats) > 1)
    missed = sum(1 for bot_id in join if bot_id not in hits)
    lateness = [min(ats) - join[bot_id] for bot_id, ats in hits.items()]
    # Over the minute: per 5 s of join times, how many and how late (where a tail began).
    first_join = min(join.values())
    windows: dict[int, list[float]] = {}
    for bot_id, ats in hits.items():
        windows.setdefault(int((join[bot_id] - first_join) // 5) * 5, []).append(
            (min(ats) - join[bot_id]) * 1000
        )
    timeline = [
        {"from_s": w, "bots": len(v), "p50_ms": percentile(v, 50), "max_ms": max(v)}
        for w, v in sorted(windows.items())
    ]
    # Where the time goes: claim (last_attempt_at of single-attempt bots) vs the rest.
    claim = [
        b.last_attempt_at.timestamp() - join[b.id]
        for b in bots
        if b.last_attempt_at is not None and b.attempts == 1
    ]
    recorded = [
        b.dispatched_at.timestamp() - join[b.id] for b in bots if b.dispatched_at is not None
    ]
    return {
        "bots": len(bots),
        "received_requests": len(received["hits"]),
        "received_bots": len(hits),
        "duplicates": duplicates,
        "missed": missed,
        "unknown_bot_ids": unknown,
        "bad_signatures": bad_signature,
        "id_mismatches": key_mismatch,
        "receiver_bad_requests": received["bad_requests"],
        "receiver_cpu_s": received.get("cpu_s"),
        "early": sum(1 for v in lateness if v < 0),
        "lateness_ms": stats_ms(lateness),
        "timeline": timeline,
        "claim_lateness_ms": stats_ms(claim),
        "recorded_lateness_ms": stats_ms(recorded),
        "statuses": dict(Counter(b.status for b in bots)),
        "attempts": dict(Counter(str(b.attempts) for b in bots)),
        "errors": dict(Counter(b.error for b in bots if b.error).most_common(5)),
    }


async def measure(cfg: dict[str, Any], data_dir: Path) -> dict[str, Any]:
    rt = build_runtime(_settings(cfg, data_dir))
    try:
        t0 = time.perf_counter()
        info = await setup(rt, cfg)
        setup_s = time.perf_counter() - t0
        bots = await _bots(rt)
        joins = sorted(b.join_at for b in bots)
        first, last = joins[0], joins[-1]
        ahead = (first - rt.clock.now()).total_seconds()
        _log(
            f"setup {setup_s:.1f} s; {len(bots)} bots join from {first:%H:%M:%S} to "
            f"{last:%H:%M:%S} UTC, first in {ahead:.1f} s"
        )
        if ahead <= 0:
            raise RuntimeError("setup overran the lead-in; raise --lead-in")
        del bots  # the harness keeps no ORM objects around: the worker's heap is its own
        gc.collect()
        heap = len(gc.get_objects())
        loadavg = os.getloadavg()
        profile = cProfile.Profile() if cfg.get("profile") else None
        locks, stalls = LockWaits(rt), Stalls()
        locks.on = stalls.on = True
        ticking = asyncio.Event()
        ticker = asyncio.create_task(stalls.tick(ticking))
        run = await run_worker(rt, last, cfg["timeout_s"], profile)
        locks.on = stalls.on = False
        ticking.set()
        await ticker
        if profile is not None:
            profile.dump_stats(cfg["profile"])
        bots = await _bots(rt)
        async with httpx.AsyncClient(trust_env=False, timeout=60) as client:
            r = await client.get(f"{cfg['receiver_url']}/control/results")
            r.raise_for_status()
            received = r.json()
    finally:
        await rt.aclose()
    return {
        **info,
        "setup_s": setup_s,
        "first_join_in_s": ahead,
        "join_window_s": (last - first).total_seconds(),
        "concurrency": rt.settings.bot_dispatch_concurrency,
        "loadavg_before": loadavg,
        "gc_objects_at_start": heap,
        **run,
        "write_lock_waits": locks.summary(),
        "stalls": stalls.summary(),
        "loadavg_after": os.getloadavg(),
        **analyse(bots, received),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.dispatch_run")
    p.add_argument("--config", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    cfg = json.loads(args.config.read_text())
    with tempfile.TemporaryDirectory(prefix="showup-bench-db-", dir=cfg.get("workdir")) as tmp:
        result = asyncio.run(measure(cfg, Path(tmp)))
    result["pid"] = os.getpid()
    write_json(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
