"""Timestamps inside the service for the push-latency benchmark (``bench.push_service``).

Nothing in ``src/`` knows about these: the benchmark wraps two module functions and the
ASGI app, in its own process, and records wall-clock times (``time.time()``, the same
clock as the emulator's and the receiver's):

- every ``/push/*`` request: arrival, answer, status, Google channel id (ASGI wrapper);
- every ``push.schedule.request_sync`` (a notification accepted for a calendar, just
  before its transaction commits), under every name it is imported as;
- every ``sync.runner.sync_calendar`` (the worker's sync job): start, end, result, rows;
- the event loop's lag (a 10 ms timer's overshoot): is the single thread saturated?

:class:`BenchControl` also answers ``/_bench/mark`` (the measured phase starts) and
``/_bench/stop`` (it ends) for the benchmark's driver.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import event

from showup.push import schedule as push_schedule
from showup.sync import runner as sync_runner

Scope = dict[str, Any]


class Stages:
    def __init__(self) -> None:
        self.pushes: list[list[Any]] = []  # [path, arrived, answered, status, channel id]
        self.requests: list[list[Any]] = []  # [calendar id, at, requested]
        self.syncs: list[list[Any]] = []  # [calendar id, start, end, result, ins, upd, del]
        self.lags: list[float] = []  # event-loop lag samples, seconds
        self.mark: float | None = None
        self.marked = asyncio.Event()
        self.stop = asyncio.Event()


def instrument(stages: Stages) -> None:
    """Wrap ``request_sync`` (wherever it was imported) and ``sync_calendar``."""
    original = push_schedule.request_sync

    async def request_sync(session: Any, calendar_id: str, due: Any) -> bool:
        at = time.time()
        requested = await original(session, calendar_id, due)
        stages.requests.append([calendar_id, at, requested])
        return requested

    for name, module in list(sys.modules.items()):
        if name.startswith("showup.") and getattr(module, "request_sync", None) is original:
            module.request_sync = request_sync  # type: ignore[attr-defined]

    # The worker's sync jobs look it up in its module at call time (SyncJobs.run), so this
    # is what runs.
    sync = sync_runner.sync_calendar

    async def sync_calendar(runtime: Any, calendar_id: str, owner: str, **kw: Any) -> Any:
        start = time.time()
        out = await sync(runtime, calendar_id, owner, **kw)
        stages.syncs.append(
            [calendar_id, start, time.time(), out.result, out.inserted, out.updated, out.deleted]
        )
        return out

    sync_runner.sync_calendar = sync_calendar


_SHAPES = 5  # statement shapes that name a transaction in LockStats.transactions


def _shape(stmt: str) -> str:
    """A statement's kind and table, e.g. ``UPDATE calendars`` (for counting)."""
    words = stmt.split()
    head = words[0].upper() if words else ""
    for marker in ("FROM", "INTO", "UPDATE"):
        if marker in words[:40]:
            i = words.index(marker)
            if i + 1 < len(words):
                return f"{head} {words[i + 1]}"
    return " ".join(words[:2])


class LockStats:
    """SQLite's single writer, per transaction of the measured phase: how long its first
    statement took (with ``BEGIN IMMEDIATE``, which waits for the write lock: SQLite's
    busy handler sleeps 1, 2, 5, 10, ... ms between tries), then how long it held the
    lock (until COMMIT or ROLLBACK; awaits inside a transaction hold it too).

    Transactions are counted from SQLAlchemy's ``begin`` event, whichever way the engine
    sends ``BEGIN IMMEDIATE`` (its own statement, or along with the transaction's first
    statement, as ``db/sqlite_adapter.py`` does); one that runs no statement takes no lock
    and is not counted."""

    def __init__(self, engine: Any) -> None:
        self.waits: list[float] = []
        self.holds: list[float] = []
        self.statements: dict[str, int] = {}  # by statement shape, in the measured phase
        # Transactions of the measured phase by what they did: the distinct shapes of
        # their statements in order (first few), e.g. a webhook claim, a sync's page.
        self.transactions: dict[str, int] = {}
        self.on = False
        sync_engine = engine.sync_engine
        event.listen(sync_engine, "begin", self._begin)
        event.listen(sync_engine, "before_cursor_execute", self._before)
        event.listen(sync_engine, "after_cursor_execute", self._after)
        event.listen(sync_engine, "commit", self._end)
        event.listen(sync_engine, "rollback", self._end)

    def _begin(self, conn: Any) -> None:
        for key in ("bench_first", "bench_locked"):
            conn.info.pop(key, None)
        if self.on:
            conn.info["bench_shapes"] = []
        else:
            conn.info.pop("bench_shapes", None)

    def _before(self, conn: Any, _cur: Any, stmt: str, *_: Any) -> None:
        if self.on:
            self.statements[_shape(stmt)] = self.statements.get(_shape(stmt), 0) + 1
        shapes = conn.info.get("bench_shapes")
        if shapes is None:
            return
        if not shapes and "bench_first" not in conn.info:
            conn.info["bench_first"] = time.perf_counter()
        if stmt != "BEGIN IMMEDIATE" and _shape(stmt) not in shapes:
            shapes.append(_shape(stmt))

    def _after(self, conn: Any, _cur: Any, stmt: str, *_: Any) -> None:
        if stmt == "BEGIN IMMEDIATE":  # an engine that sends it on its own: wait on
            return
        started = conn.info.pop("bench_first", None)
        if started is not None:
            now = time.perf_counter()
            self.waits.append(now - started)
            conn.info["bench_locked"] = now

    def _end(self, conn: Any) -> None:
        conn.info.pop("bench_first", None)
        locked = conn.info.pop("bench_locked", None)
        shapes = conn.info.pop("bench_shapes", None)
        if locked is None or shapes is None:
            return
        self.holds.append(time.perf_counter() - locked)
        key = " > ".join(shapes[:_SHAPES]) + (" > …" if len(shapes) > _SHAPES else "")
        self.transactions[key] = self.transactions.get(key, 0) + 1


async def watch_loop_lag(stages: Stages, period: float = 0.01) -> None:
    """Sample how late a ``period`` timer fires until ``stages.stop`` is set."""
    loop = asyncio.get_running_loop()
    while not stages.stop.is_set():
        t0 = loop.time()
        await asyncio.sleep(period)
        stages.lags.append(max(0.0, loop.time() - t0 - period))


Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class BenchControl:
    """The service app, plus ``/_bench/mark`` and ``/_bench/stop``, timing ``/push/*``."""

    def __init__(self, app: Any, stages: Stages) -> None:
        self.app = app
        self.stages = stages

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and path.startswith("/_bench/"):
            if path == "/_bench/mark":
                self.stages.mark = time.time()
                self.stages.marked.set()
            elif path == "/_bench/stop":
                self.stages.stop.set()
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        if scope["type"] != "http" or not path.startswith("/push/"):
            await self.app(scope, receive, send)
            return
        arrived = time.time()
        status: list[int] = []

        async def send_status(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))
            await send(message)

        await self.app(scope, receive, send_status)
        channel = None
        for key, value in scope.get("headers", []):
            if key == b"x-goog-channel-id":
                channel = value.decode("latin-1")
        self.stages.pushes.append(
            [path, arrived, time.time(), status[0] if status else None, channel]
        )
