"""The worker loop: sync due calendars with bounded per-provider concurrency.

``Worker.drain()`` runs until nothing is due *now* (by the runtime's clock) and is what
tests call after moving a FakeClock; ``run_forever`` is the production loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from datetime import datetime, timedelta

from sqlalchemy import delete, or_

from showup.db.models import Calendar, Event
from showup.jobs.leases import claim_due
from showup.runtime import Runtime
from showup.sync.runner import SyncOutcome, sync_calendar

log = logging.getLogger("showup.worker")

_MAINTENANCE_EVERY = timedelta(hours=1)


class Worker:
    def __init__(self, runtime: Runtime, owner: str | None = None) -> None:
        self.rt = runtime
        self.owner = owner or runtime.settings.worker_id
        self._inflight: dict[str, set[asyncio.Task[SyncOutcome]]] = {
            p: set() for p in runtime.providers
        }
        self._last_maintenance: datetime | None = None

    async def claim_calendars(self, platform: str, limit: int) -> list[str]:
        async with self.rt.sessions() as session:
            ids = await claim_due(
                session,
                Calendar,
                Calendar.next_sync_at,
                now=self.rt.clock.now(),
                owner=self.owner,
                lease=self.rt.settings.lease_duration,
                limit=limit,
                where=(Calendar.platform == platform, Calendar.status != "disconnected"),
            )
            await session.commit()
        return ids

    def _spawn(self, platform: str, calendar_id: str) -> None:
        task = asyncio.create_task(
            sync_calendar(self.rt, calendar_id, self.owner), name=f"sync:{calendar_id}"
        )
        bucket = self._inflight[platform]
        bucket.add(task)
        task.add_done_callback(bucket.discard)

    async def _fill(self) -> int:
        """Claim as much due work as the concurrency limits allow; return how many."""
        started = 0
        limit = self.rt.settings.sync_concurrency_per_provider
        for platform, bucket in self._inflight.items():
            free = limit - len(bucket)
            if free <= 0:
                continue
            for cid in await self.claim_calendars(platform, free):
                self._spawn(platform, cid)
                started += 1
        return started

    def _all_tasks(self) -> set[asyncio.Task[SyncOutcome]]:
        return set().union(*self._inflight.values())

    async def drain(self) -> list[SyncOutcome]:
        """Run every job that is due now, and any that become due meanwhile, to completion."""
        outcomes: list[SyncOutcome] = []
        while True:
            await self._fill()
            tasks = self._all_tasks()
            if not tasks:
                break
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            outcomes.extend(t.result() for t in done)
        await self.maintain()
        return outcomes

    async def maintain(self, force: bool = False) -> int:
        """Purge events deleted (or ended) longer ago than the retention setting."""
        now = self.rt.clock.now()
        if (
            not force
            and self._last_maintenance
            and now - self._last_maintenance < _MAINTENANCE_EVERY
        ):
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
            waits: list[Awaitable[object]] = [self.rt.notifier.wait(idle)]
            tasks = self._all_tasks()
            if tasks:
                waits.append(asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED))
            stop_task = asyncio.ensure_future(stop.wait())
            pending = [asyncio.ensure_future(w) for w in waits] + [stop_task]
            _, rest = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for t in rest:
                t.cancel()
        tasks = self._all_tasks()
        if tasks:
            await asyncio.wait(tasks)
        log.info("worker %s stopped", self.owner)
