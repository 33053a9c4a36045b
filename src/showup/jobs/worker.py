"""The worker loop: claims due rows of every job kind and runs them with bounded concurrency.

A job kind (``jobs/kinds.py``) names a table's due rows and the function that handles
one. Each kind has its own concurrency limit (sync has one per provider), so a burst of
one kind cannot starve another.

``Worker.drain()`` runs until nothing is due *now* (by the runtime's clock) and is what
tests call after moving a FakeClock; ``run_forever`` is the production loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Sequence
from datetime import datetime, timedelta

from sqlalchemy import delete, or_

from showup.db.models import Event
from showup.jobs.kinds import JobKind, default_kinds
from showup.runtime import Runtime

log = logging.getLogger("showup.worker")

_MAINTENANCE_EVERY = timedelta(hours=1)


class Worker:
    def __init__(
        self, runtime: Runtime, owner: str | None = None, kinds: Sequence[JobKind] | None = None
    ) -> None:
        self.rt = runtime
        self.owner = owner or runtime.settings.worker_id
        self.kinds = list(kinds) if kinds is not None else default_kinds(runtime)
        self._inflight: dict[str, set[asyncio.Task[object]]] = {k.name: set() for k in self.kinds}
        self._last_maintenance: datetime | None = None

    def kind(self, name: str) -> JobKind:
        for k in self.kinds:
            if k.name == name:
                return k
        raise LookupError(name)

    async def claim_calendars(self, platform: str, limit: int) -> list[str]:
        """Claim due calendars of one provider (exposed for tests of the lease)."""
        return await self.kind(f"sync:{platform}").claim(self.rt, self.owner, limit)

    def _spawn(self, kind: JobKind, row_id: str) -> asyncio.Task[object]:
        task: asyncio.Task[object] = asyncio.create_task(
            kind.run(self.rt, row_id, self.owner), name=f"{kind.name}:{row_id}"
        )
        bucket = self._inflight[kind.name]
        bucket.add(task)
        task.add_done_callback(bucket.discard)
        return task

    async def _fill(self, spawned: list[asyncio.Task[object]] | None = None) -> int:
        """Claim as much due work as the concurrency limits allow; return how many.

        Started tasks are appended to ``spawned`` when given: one may finish (and leave
        its bucket) while a later kind's claim is awaited, before the caller looks.
        """
        started = 0
        for kind in self.kinds:
            free = kind.concurrency - len(self._inflight[kind.name])
            if free <= 0:
                continue
            for row_id in await kind.claim(self.rt, self.owner, free):
                task = self._spawn(kind, row_id)
                if spawned is not None:
                    spawned.append(task)
                started += 1
        return started

    def _all_tasks(self) -> set[asyncio.Task[object]]:
        return set().union(*self._inflight.values())

    async def drain(self) -> list[object]:
        """Run every job due now, and any that become due meanwhile, to completion."""
        outcomes: list[object] = []
        running: set[asyncio.Task[object]] = set()
        while True:
            spawned: list[asyncio.Task[object]] = []
            await self._fill(spawned)
            running.update(spawned, self._all_tasks())
            if not running:
                break
            done, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            outcomes.extend(t.result() for t in done)
        await self.maintain()
        return outcomes

    async def maintain(self, force: bool = False) -> int:
        """Purge events deleted (or ended) longer ago than the retention setting."""
        now = self.rt.clock.now()
        last = self._last_maintenance
        if not force and last is not None and now - last < _MAINTENANCE_EVERY:
            return 0
        self._last_maintenance = now
        cutoff = now - self.rt.settings.deleted_retention
        async with self.rt.sessions() as session:
            res = await session.execute(
                delete(Event)
                .where(or_(Event.deleted_at < cutoff, Event.end_time < cutoff))
                .execution_options(synchronize_session=False)
            )
            await session.commit()
        purged: int = res.rowcount  # type: ignore[attr-defined]
        if purged:
            log.info("purged %d events past retention", purged)
        return purged

    async def run_forever(self, stop: asyncio.Event) -> None:
        idle = self.rt.settings.worker_idle_poll.total_seconds()
        log.info("worker %s started", self.owner)
        while not stop.is_set():
            try:
                await self._fill()
                await self.maintain()
            except Exception:
                log.exception("worker loop error; continuing")
            waits: list[Awaitable[object]] = [self.rt.notifier.wait(idle), stop.wait()]
            tasks = self._all_tasks()
            if tasks:
                waits.append(asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED))
            pending = [asyncio.ensure_future(w) for w in waits]
            _, rest = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for t in rest:
                t.cancel()
        tasks = self._all_tasks()
        if tasks:
            await asyncio.wait(tasks)
        log.info("worker %s stopped", self.owner)
