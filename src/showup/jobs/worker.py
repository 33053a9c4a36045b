"""The worker loop: claims due rows of every job kind and runs them with bounded concurrency.

A job kind (``jobs/kinds.py``) names a table's due rows and the function that handles
one. Each kind has its own concurrency limit (sync has one per provider), so a burst of
one kind cannot starve another.

``Worker.drain()`` runs until nothing is due *now* (by the runtime's clock) and is what
tests call after moving a FakeClock; ``run_forever`` is the production loop.

When ``run_forever`` claims a kind (see :meth:`Worker.run_forever` for the full rule):

- every ``worker_idle_poll``: every kind, as other processes (API, other workers) add
  work only through the database;
- when the in-process notifier fires: the kinds it names (a push notification names its
  sync kind), or every kind if it names none;
- at the kind's next due time (``JobKind.next_due``, asked whenever a claim came back
  with fewer rows than it had room for): so a bot launches at its join time, not up to a
  poll interval later;
- when one of its jobs finishes while its last claim was full: more rows may be due;
- when a job finishes that fed it (``JobKind.feeds``, narrowed by the job's outcome
  through ``JobKind.fed``: a sync that moved a bot feeds the bots kind, one that changed
  nothing feeds none). Other follow-ups of a job (a retry, a ``bot.failed`` webhook) are
  found by the next claim of their kind, at the latest on the next poll.

It does not re-claim every kind after every finished job: on SQLite each claim is a write
transaction, and under a burst of launches those empty claims cost more than the work.
Jobs finishing together are followed by one claim of each kind they fed. ``drain`` uses
the same rules, and a pass over every kind whenever nothing runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from showup.jobs.kinds import JobKind, default_kinds
from showup.jobs.retention import EventRetention
from showup.runtime import Runtime
from showup.webhooks.retention import WebhookRetention

log = logging.getLogger("showup.worker")


class Worker:
    def __init__(
        self, runtime: Runtime, owner: str | None = None, kinds: Sequence[JobKind] | None = None
    ) -> None:
        self.rt = runtime
        self.owner = owner or runtime.settings.worker_id
        self.kinds = list(kinds) if kinds is not None else default_kinds(runtime)
        self._inflight: dict[str, set[asyncio.Task[object]]] = {k.name: set() for k in self.kinds}
        self._webhook_retention = WebhookRetention()
        self._event_retention = EventRetention()
        # run_forever's bookkeeping: kinds whose last claim was full, the next due time of
        # the others, kinds with a job finished since the last pass, and a wake-up for that.
        self._full: set[str] = set()
        self._next_due: dict[str, datetime] = {}
        self._finished: set[str] = set()
        self._fed: set[str] = set()  # kinds fed by the jobs finished since the last pass
        self._job_done = asyncio.Event()

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
            self._run(kind, row_id), name=f"{kind.name}:{row_id}"
        )
        bucket = self._inflight[kind.name]
        bucket.add(task)
        task.add_done_callback(bucket.discard)
        task.add_done_callback(lambda _: self._on_done(kind.name))
        return task

    async def _run(self, kind: JobKind, row_id: str) -> object:
        """One job; notes the kinds it fed (``JobKind.fed``, or all its ``feeds``)."""
        try:
            result = await kind.run(self.rt, row_id, self.owner)
        except BaseException:
            self._fed.update(kind.feeds)
            raise
        self._fed.update(kind.feeds if kind.fed is None else kind.fed(result))
        return result

    def _on_done(self, name: str) -> None:
        self._finished.add(name)
        self._job_done.set()

    async def _fill(
        self, names: set[str], full: set[str], spawned: list[asyncio.Task[object]]
    ) -> None:
        """Claim the kinds in ``names`` as far as their concurrency allows; note in
        ``full`` those whose claim took all it could (more may be due).

        Started tasks are appended to ``spawned``: one may finish (and leave its bucket)
        while a later kind's claim is awaited, before the caller looks.
        """
        for kind in self.kinds:
            if kind.name not in names:
                continue
            free = kind.concurrency - len(self._inflight[kind.name])
            if free <= 0:
                full.add(kind.name)
                continue
            ids = await kind.claim(self.rt, self.owner, free)
            spawned.extend(self._spawn(kind, row_id) for row_id in ids)
            if len(ids) >= free:
                full.add(kind.name)
            else:
                full.discard(kind.name)

    def _all_tasks(self) -> set[asyncio.Task[object]]:
        return set().union(*self._inflight.values())

    async def drain(self) -> list[object]:
        """Run every job due now, and any that become due meanwhile, to completion.

        The first pass claims every kind. Then, as jobs finish, it claims the kinds they
        fed and their own kind if its last claim was full (as run_forever does), and every
        kind again whenever nothing is running. It returns once such a pass over every
        kind finds nothing to run.
        """
        names = {k.name for k in self.kinds}
        outcomes: list[object] = []
        running: set[asyncio.Task[object]] = set()
        wanted = set(names)
        full: set[str] = set()
        self._finished.clear()
        self._fed.clear()
        while True:
            everything = wanted >= names
            spawned: list[asyncio.Task[object]] = []
            await self._fill(wanted, full, spawned)
            wanted = set()
            # Tasks done but not yet out of their bucket (its callback runs after this
            # wake-up) were collected already: only the running ones are added.
            running.update(spawned, (t for t in self._all_tasks() if not t.done()))
            if not running:
                if everything:
                    break
                wanted = set(names)
                continue
            done, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            outcomes.extend(t.result() for t in done)
            wanted = (self._finished & full) | (self._fed & names)
            self._finished.clear()
            self._fed.clear()
        await self.maintain()
        return outcomes

    async def maintain(self, force: bool = False) -> int:
        """Purge, a short batch now and then, webhook messages finished and events deleted
        (or ended) longer ago than their retention (``webhooks/retention.py``,
        ``jobs/retention.py``); return how many events this call purged.

        ``force``: all that is past the retention now, in one call (batch after batch).
        """
        if force:
            await self._webhook_retention.run_now(self.rt)
            return await self._event_retention.run_now(self.rt)
        await self._webhook_retention.run(self.rt)
        return await self._event_retention.run(self.rt)

    async def _claim_kind(self, kind: JobKind) -> None:
        """One claim of ``kind`` for run_forever; note whether it was full, else when next."""
        free = kind.concurrency - len(self._inflight[kind.name])
        if free <= 0:
            self._full.add(kind.name)  # re-claimed when one of its jobs finishes
            return
        due: datetime | None = None
        if kind.claim_next is not None:
            ids, due = await kind.claim_next(self.rt, self.owner, free)
        else:
            ids = await kind.claim(self.rt, self.owner, free)
        for row_id in ids:
            self._spawn(kind, row_id)
        if len(ids) >= free:
            self._full.add(kind.name)
            self._next_due.pop(kind.name, None)
            return
        self._full.discard(kind.name)
        if kind.claim_next is None and kind.next_due is not None:
            due = await kind.next_due(self.rt)
        if due is None:
            self._next_due.pop(kind.name, None)
        else:
            self._next_due[kind.name] = due

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Run jobs as they come due until ``stop`` is set, then wait for running jobs.

        Each pass claims only the kinds that may have due work: all of them every
        ``worker_idle_poll``; on a notification (work added by this process), those it
        names, or all of them if it names none; a kind whose next due time has come
        (known from its last claim); a kind whose last claim was full and one of whose
        jobs has finished; the kinds fed by the jobs that finished (``JobKind.fed``).
        Nothing is claimed later than the next poll.
        """
        idle = self.rt.settings.worker_idle_poll.total_seconds()
        loop = asyncio.get_running_loop()
        # The next pass over every kind; notifications that name kinds do not move it.
        full_at = loop.time() + idle
        names = [k.name for k in self.kinds]
        log.info("worker %s started", self.owner)
        wanted = set(names)
        poll: asyncio.Future[Any] | None = None
        stopping: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
        timer: asyncio.Future[Any] | None = None
        timer_at: datetime | None = None
        try:
            while not stop.is_set():
                try:
                    for kind in self.kinds:
                        if kind.name in wanted:
                            await self._claim_kind(kind)
                            wanted.discard(kind.name)
                    await self.maintain()
                except Exception:
                    log.exception("worker loop error; continuing")
                    # Tried again at the next poll, not in a tight loop.
                    wanted.clear()
                    self._next_due.clear()
                if poll is None:
                    poll = asyncio.ensure_future(
                        self.rt.notifier.wait(max(0.0, full_at - loop.time()))
                    )
                polling: asyncio.Future[Any] = poll
                wake_at = min(self._next_due.values(), default=None)
                if wake_at != timer_at:
                    if timer is not None:
                        timer.cancel()
                    timer, timer_at = None, wake_at
                    if wake_at is not None:
                        timer = asyncio.ensure_future(
                            self.rt.clock.sleep(wake_at - self.rt.clock.now())
                        )
                job_done: asyncio.Future[Any] = asyncio.ensure_future(self._job_done.wait())
                waits = [polling, stopping, job_done]
                if timer is not None:
                    waits.append(timer)
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                job_done.cancel()
                if polling.done():
                    poll = None
                    named = polling.result()
                    if named is None or loop.time() >= full_at:
                        wanted.update(names)
                        full_at = loop.time() + idle
                    else:
                        wanted.update(n for n in names if n in named or n.split(":")[0] in named)
                if timer is not None and timer.done():
                    timer, timer_at = None, None
                    now = self.rt.clock.now()
                    wanted.update(n for n, at in self._next_due.items() if at <= now)
                if self._job_done.is_set():
                    self._job_done.clear()
                    wanted.update(self._finished & self._full)
                    wanted.update(n for n in names if n in self._fed)
                    self._finished.clear()
                    self._fed.clear()
        finally:
            for fut in (poll, stopping, timer):
                if fut is not None:
                    fut.cancel()
        tasks = self._all_tasks()
        if tasks:
            await asyncio.wait(tasks)
        log.info("worker %s stopped", self.owner)
