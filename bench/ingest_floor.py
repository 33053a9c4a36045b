"""The ingest floor: CPU per event of the work a full sync cannot skip, measured alone.

``scripts/bench ingest-floor [--calendars 200] [--events 200] [--runs 5]``

The ingest benchmark's own calendars (``bench.seed``), rendered by the emulator's lister
as ``events.list`` pages (``singleEvents=true``, the sync window, up to 250 items) and
encoded as the emulator's server sends them. Then, in this one process and thread, with
no HTTP, no event loop, no ORM and no worker, each page goes through the steps every
stored event needs, and each step's CPU time (``time.process_time``) is summed:

1. **read**: ``google_normalize.events_page`` on the page's bytes (decode, normalize, join
   link, the text kept for ``raw``). The link caches are emptied before each run.
2. **encode**: ``plan.encode_page`` (fingerprints and JSON texts).
3. **rows**: ``plan.plan_page`` and ``apply.prepare_inserts``, as a first sync makes them.
4. **store**: the stdlib's sqlite3 on a database migrated by showup (same schema, page
   size, WAL, cache and ``synchronous`` as ``db/engine.py``): per page ``BEGIN
   IMMEDIATE``, the sync's own INSERT (``apply._SQLITE_INSERT``) for every row, ``COMMIT``;
   a passive checkpoint every 10,000 rows, as ``db/sqlite_adapter.py`` does. Each run
   starts from a fresh copy of the empty database.

The garbage collector is tuned as in a worker process (``server.tune_gc``).

What this leaves out and a real sync still pays: receiving the pages over HTTP (one
request per page, plus the token refresh and ``calendars.get``), the event loop, the
transactions' statements through SQLAlchemy, the claim and finish of each sync. So the
sum is a floor: no full sync with this storage and these semantics costs less per event.
The ingest benchmark's "Why 1.5x bare paging is out of reach" compares it with what 1.5x
bare paging leaves per event.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import importlib
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from pydantic import SecretStr

from bench.common import RESULTS, machine, write_json
from bench.seed import seed_world, user_email, window_listing
from showup.clock import FakeClock
from showup.config import Settings
from showup.db import engine as db_engine
from showup.db.migrate import upgrade
from showup.emulator import World
from showup.emulator.google.listing import EventLister
from showup.providers.base import ChangePage, SyncWindow
from showup.providers.google_normalize import events_page
from showup.runtime import build_runtime
from showup.server import tune_gc
from showup.sync import apply, plan

STEPS = ("read", "encode", "rows", "store")
CHECKPOINT_EVERY = 10_000


def _pages(calendars: int, events: int, seed: int, now: datetime) -> list[bytes]:
    world = World(FakeClock(now))
    seed_world(world, users=calendars, events=events, seed=seed, now=now)
    lister, query = EventLister(world), window_listing(now)
    return [
        orjson.dumps(lister.list_events(world.calendar(user_email(i)), query))
        for i in range(calendars)
    ]


async def _migrate(data_dir: Path) -> None:
    settings = Settings(
        data_dir=data_dir,
        master_key=SecretStr(base64.b64encode(b"showup-bench-master-key-32-bytes").decode()),
    )
    rt = build_runtime(settings)
    try:
        await upgrade(rt.engine)
    finally:
        await rt.aclose()


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute(f"PRAGMA wal_autocheckpoint={db_engine.SQLITE_WAL_AUTOCHECKPOINT}")
    db.execute(f"PRAGMA cache_size=-{db_engine.SQLITE_CACHE_KIB}")
    return db


def _clear_link_caches() -> None:
    resolve = importlib.import_module("showup.meetings.resolve")
    resolve._resolve.cache_clear()
    resolve.may_be_join_host.cache_clear()


def _run(pages: list[bytes], db: sqlite3.Connection, now: datetime) -> dict[str, float]:
    window = SyncWindow(now - timedelta(days=1), now + timedelta(days=28))
    spent = dict.fromkeys(STEPS, 0.0)
    clock = time.process_time
    stamp = apply._SQLITE_STAMP(now)
    created, updated = apply._STAMP_AT
    since_checkpoint = 0
    _clear_link_caches()
    for n, body in enumerate(pages):
        t0 = clock()
        page = events_page(body)
        t1 = clock()
        change = ChangePage(upserts=page.upserts, deletions=page.deletions)
        encoded = plan.encode_page(change)
        t2 = clock()
        actions = plan.plan_page(change, {}, window, encoded)
        prepared = apply.prepare_inserts(
            actions, tenant_id="t" * 20, calendar_id=f"c{n:019d}", dialect="sqlite"
        )
        for row in prepared.rows:
            row[created] = row[updated] = stamp
        rows = [tuple(row) for row in prepared.rows]
        t3 = clock()
        db.execute("BEGIN IMMEDIATE")
        db.executemany(apply._SQLITE_INSERT, rows)
        db.execute("COMMIT")
        since_checkpoint += len(rows)
        if since_checkpoint >= CHECKPOINT_EVERY:
            db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            since_checkpoint = 0
        t4 = clock()
        for step, took in zip(STEPS, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            spent[step] += took
    return spent


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="scripts/bench ingest-floor", description=__doc__)
    p.add_argument("--calendars", type=int, default=200)
    p.add_argument("--events", type=int, default=200)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)

    now = datetime.now(UTC).replace(microsecond=0)
    print(f"[floor] rendering {args.calendars} x {args.events} events", file=sys.stderr)
    pages = _pages(args.calendars, args.events, args.seed, now)
    total = args.calendars * args.events
    runs: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="showup-floor-") as tmp:
        asyncio.run(_migrate(Path(tmp) / "migrated"))
        [empty] = (Path(tmp) / "migrated").glob("*.db")
        tune_gc()  # as a worker process does once it is set up
        for i in range(args.runs):
            path = Path(tmp) / f"run{i}.db"  # each run on a fresh copy of the empty database
            shutil.copyfile(empty, path)
            db = _connect(path)
            try:
                spent = _run(pages, db, now)
                stored = db.execute("SELECT count(*) FROM events").fetchone()[0]
            finally:
                db.close()
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            if stored != total:
                raise SystemExit(f"run {i + 1} stored {stored} rows, expected {total}")
            runs.append({k: v / total * 1e6 for k, v in spent.items()})
            took = sum(runs[-1].values())
            print(f"[floor] run {i + 1}: {took:.1f} us/event", file=sys.stderr)

    stats: dict[str, Callable[[list[float]], float]] = {
        "median": statistics.median,
        "min": min,
        "max": max,
    }
    for r in runs:
        r["sum"] = sum(r[step] for step in STEPS)
    table = {
        step: {name: fn([r[step] for r in runs]) for name, fn in stats.items()}
        for step in (*STEPS, "sum")
    }
    result: dict[str, Any] = {
        "benchmark": "ingest-floor",
        "params": vars(args) | {"out": str(args.out) if args.out else None},
        "machine": machine(),
        "events": total,
        "runs": runs,
        "us_per_event": table,
    }
    out = args.out or RESULTS / f"ingest-floor-{now:%Y%m%dT%H%M%S}.json"
    write_json(out, result)

    print(
        f"\n#### ingest-floor: {args.calendars} calendars x {args.events} events, "
        f"{args.runs} runs\n"
    )
    print("| step | CPU per event, median | min - max |\n|---|---|---|")
    for step in (*STEPS, "sum"):
        row = table[step]
        name = f"**{step}**" if step == "sum" else step
        print(f"| {name} | {row['median']:.1f} us | {row['min']:.1f} - {row['max']:.1f} us |")
    print(f"\nResult: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
