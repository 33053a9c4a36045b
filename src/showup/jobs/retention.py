"""Retention: rows past their retention are purged in passes of short batches.

:class:`Retention` is the bookkeeping that event retention (here) and webhook retention
(``webhooks/retention.py``) share; the worker's maintenance calls :meth:`Retention.run`
of each on every loop turn:

- a *pass* starts at most once per ``every`` (or when forced) with a fixed cutoff;
- each *batch* is one short transaction over at most ``batch_size`` rows. On SQLite every
  transaction takes the write lock and a file database has one connection per process
  (``db/engine.py``): the transactions waiting for it get it between batches;
- a call runs at most ``batches_per_call`` batches (a *slice*), then returns; a call at
  least ``pause`` later (the worker calls on every loop turn) goes on with the pass. A
  large backlog is thus purged a slice at a time, in the background of the worker's real
  work, by default one batch of 200 a second;
- a database error ends the pass (logged; the next one starts ``every`` after it
  started): retention never stops the worker loop.

Events (:class:`EventRetention`) go when deleted, or ended, longer ago than
``SHOWUP_DELETED_RETENTION`` (60 days by default). Every batch reads through an index,
never the whole table:

- deleted events through ``ix_events_deleted_at``, a partial index over deleted events
  only, which ``deleted_at < :cutoff`` implies: the oldest first, until none is left;
- ended events through ``ix_events_calendar_start (calendar_id, start_time)``. There is
  no index on ``end_time`` (every insert would pay for one), but an event that ended
  before the cutoff also started before it, so ``calendar_id IN (<some calendars>) AND
  start_time < :cutoff AND end_time < :cutoff`` is a range of that index per calendar.
  The pass walks the calendars (their ids as they were when it started, in order)
  ``calendars_per_batch`` at a time; a batch goes on with the same calendars while they
  fill it. Besides the rows it purges, such a range holds only the events that started
  before the cutoff and end after it (60 days and longer: series are expanded).

The events' bot links (``bot_events``) go with them, by the foreign key's ``ON DELETE
CASCADE``. On PostgreSQL a batch locks the events it picks ``FOR UPDATE SKIP LOCKED``: a
row a sync is writing is left for the next pass, and two workers purging at once skip
each other's rows; the ``DELETE`` checks the cutoff again.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import ClassVar, Generic, TypeVar

from sqlalchemy import Select, delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from showup.db.models import Calendar, Event
from showup.runtime import Runtime

log = logging.getLogger("showup.retention")

# How often a pass starts; how many rows a batch (one transaction) takes at most; how
# many batches one call runs before it gives the worker loop its turn back, and how long
# until the next call goes on with the pass.
EVERY = timedelta(hours=1)
BATCH_SIZE = 200
BATCHES_PER_CALL = 1
PAUSE = timedelta(seconds=1)
# How many calendars a batch looks at, in one query, for their ended events.
CALENDARS_PER_BATCH = 200


@dataclass(slots=True, kw_only=True)
class Pass(ABC):
    """A pass under way: when it started, its cutoff, how many rows it purged so far;
    a subclass adds where it is."""

    started: datetime
    cutoff: datetime
    purged: int = 0

    @property
    @abstractmethod
    def done(self) -> bool:
        """Nothing is left to look at."""


P = TypeVar("P", bound=Pass)


@dataclass(slots=True)
class Retention(ABC, Generic[P]):
    """Runs passes of ``P``, a few batches per call (see the module docstring); a
    subclass says how a pass starts, what a batch does, and what a finished pass logs."""

    every: timedelta = EVERY
    batch_size: int = BATCH_SIZE
    batches_per_call: int = BATCHES_PER_CALL
    pause: timedelta = PAUSE
    _pass: P | None = field(default=None, init=False)
    _due_at: datetime | None = field(default=None, init=False)  # the next pass, or slice

    what: ClassVar[str]  # for the log: "event retention"
    logger: ClassVar[logging.Logger]

    @property
    def busy(self) -> bool:
        """A pass is under way (the next call goes on with it)."""
        return self._pass is not None

    async def run(self, rt: Runtime, *, force: bool = False) -> int:
        """Go on with the pass under way, or start one, when it is time (or at once with
        ``force``); return how many rows this call purged."""
        now = rt.clock.now()
        if not force and self._due_at is not None and now < self._due_at:
            return 0
        if self._pass is None:
            try:
                self._pass = await self._start(rt, now)
            except Exception:
                self.logger.exception("%s: could not start a pass", self.what)
                self._due_at = now + self.every
                return 0
        p = self._pass
        purged = 0
        try:
            for _ in range(self.batches_per_call):
                if p.done:
                    break
                n = await self._batch(rt, p)  # after its commit
                p.purged += n
                purged += n
        except Exception:
            self.logger.exception("%s: a batch failed; the pass ends here", self.what)
        else:
            if not p.done:
                self._due_at = now + self.pause
                return purged
        if p.purged:
            self._report(p)
        self._pass = None
        self._due_at = p.started + self.every
        return purged

    async def run_now(self, rt: Runtime) -> int:
        """Purge now all that is past the retention: finish the pass under way (its
        cutoff is older), then run a new one to its end, without pauses. Return how
        many rows were purged."""
        purged = 0
        while self.busy:
            purged += await self.run(rt, force=True)
        purged += await self.run(rt, force=True)
        while self.busy:
            purged += await self.run(rt, force=True)
        return purged

    @abstractmethod
    async def _start(self, rt: Runtime, now: datetime) -> P:
        """A new pass, started ``now``."""

    @abstractmethod
    async def _batch(self, rt: Runtime, p: P) -> int:
        """One transaction of the pass; return how many rows it purged."""

    @abstractmethod
    def _report(self, p: P) -> None:
        """Log a finished pass that purged something."""


async def all_ids(rt: Runtime, column: InstrumentedAttribute[str]) -> list[str]:
    """Every value of ``column`` (a table's ids, for a pass to walk), in order."""
    async with rt.sessions() as session:
        ids = list(await session.scalars(select(column).order_by(column)))
        await session.commit()
    return ids


@dataclass(slots=True, kw_only=True)
class _EventPass(Pass):
    calendars: list[str]  # every calendar's id when the pass started, in order
    at: int = 0  # calendars[at:] are still to be looked at for ended events
    deleted_left: bool = True  # deleted events may be left

    @property
    def done(self) -> bool:
        return not self.deleted_left and self.at >= len(self.calendars)


@dataclass(slots=True)
class EventRetention(Retention[_EventPass]):
    """Purges events deleted or ended before the retention, a few batches per call."""

    calendars_per_batch: int = CALENDARS_PER_BATCH

    what: ClassVar[str] = "event retention"
    logger: ClassVar[logging.Logger] = log

    async def _start(self, rt: Runtime, now: datetime) -> _EventPass:
        calendars = await all_ids(rt, Calendar.id)
        return _EventPass(
            started=now, cutoff=now - rt.settings.deleted_retention, calendars=calendars
        )

    async def _batch(self, rt: Runtime, p: _EventPass) -> int:
        """Deleted events first, then the ended events of the next calendars, in one
        transaction of at most ``batch_size`` events."""
        purged = 0
        async with rt.sessions() as session:
            room = self.batch_size
            if p.deleted_left:
                ids = list(await session.scalars(deleted_page(p.cutoff, room)))
                purged += await purge_events(session, ids, p.cutoff)
                p.deleted_left = len(ids) >= room
                room -= len(ids)
            if room > 0 and p.at < len(p.calendars):
                group = p.calendars[p.at : p.at + self.calendars_per_batch]
                ids = list(await session.scalars(ended_page(group, p.cutoff, room)))
                purged += await purge_events(session, ids, p.cutoff)
                if len(ids) < room:  # these calendars have no more
                    p.at += len(group)
            await session.commit()
        return purged

    def _report(self, p: _EventPass) -> None:
        self.logger.info(
            "purged %d events deleted or ended before %s", p.purged, p.cutoff.isoformat()
        )


def deleted_page(cutoff: datetime, limit: int) -> Select[str]:
    """The ids of the oldest ``limit`` events deleted before ``cutoff``
    (through ``ix_events_deleted_at``)."""
    return (
        select(Event.id)
        .where(Event.deleted_at < cutoff)
        .order_by(Event.deleted_at)
        .limit(limit)
        .with_for_update(skip_locked=True)  # PostgreSQL only: SQLite has one writer
    )


def ended_page(calendar_ids: Sequence[str], cutoff: datetime, limit: int) -> Select[str]:
    """The ids of at most ``limit`` events of ``calendar_ids`` that ended before ``cutoff``
    (through ``ix_events_calendar_start``: they started before it too)."""
    return (
        select(Event.id)
        .where(
            Event.calendar_id.in_(calendar_ids),
            Event.start_time < cutoff,
            Event.end_time < cutoff,
        )
        .limit(limit)
        .with_for_update(skip_locked=True)
    )


async def purge_events(session: AsyncSession, event_ids: list[str], cutoff: datetime) -> int:
    """Delete those of ``event_ids`` deleted or ended before ``cutoff``, with their bot
    links; return how many. The caller commits."""
    if not event_ids:
        return 0
    res = await session.execute(
        delete(Event)
        .where(Event.id.in_(event_ids), or_(Event.deleted_at < cutoff, Event.end_time < cutoff))
        .execution_options(synchronize_session=False)
    )
    purged: int = res.rowcount  # type: ignore[attr-defined]
    return purged
