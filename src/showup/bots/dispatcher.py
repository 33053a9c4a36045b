"""The ``bots`` job kind of one worker: dispatch (``dispatch.py``) with shared transactions.

Per bot it takes the same steps as :func:`dispatch.dispatch_bot`, with the same fencing;
what changes is how many transactions they take. On SQLite every transaction takes the
single write lock, and thousands of bots can come due within a minute, so:

- **claim and prepare together**: the claim's transaction also reads what each claimed
  bot's launch needs (the bot, the events it serves, its tenant's launcher with the
  endpoints) and, when the claim had room to spare, the next join time (the worker
  sleeps until then). A job then launches without a transaction of its own;
- **claim a little ahead** (``run_forever`` only, through :meth:`Dispatcher.claim_next`):
  bots due within :data:`LOOKAHEAD` are claimed and prepared together, and each job
  waits for its bot's due time before launching. So the database work is done before
  the join time rather than after it, and bots due close together share one claim.
  The price: from its claim on, the bot is being launched (``dispatching``), so a
  cancellation or a move arriving in its last :data:`LOOKAHEAD` before the join time is
  noted on the bot, not applied, as for any launch under way. ``claim`` (``drain``) does
  not look ahead;
- **record in groups**: outcomes are written by whichever job gets the turn first, with
  every outcome waiting at that moment, in one transaction and one reconcile. A lone
  outcome is written at once; under a burst, the groups grow by themselves;
- **take turns on SQLite**: claims and group writes wait for each other on an asyncio
  lock rather than in SQLite's busy handler, which sleeps 1, 2, 5, 10, ... ms between
  tries and so can leave a claim waiting long after the write lock was free; a waiting
  claim goes before waiting group writes.

If the prepared launch is missing (another caller claimed) or its deadline passed while
it waited, the job falls back to :func:`dispatch.dispatch_bot`, which decides afresh.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from showup.bots import dispatch
from showup.bots.dispatch import DispatchOutcome
from showup.bots.policy import BotPolicy
from showup.db.bot_models import LIVE_STATUSES, Bot
from showup.jobs.groups import GroupWriter
from showup.jobs.leases import next_due
from showup.launchers import loaded_launcher
from showup.launchers.base import Launcher, LaunchOutcome, LaunchRequest
from showup.runtime import Runtime

# How long before its due time a bot may be claimed by run_forever (see the docstring).
# Its jobs hold their slots while they wait: at a peak of R bots/s, about R x LOOKAHEAD
# slots (bot_dispatch_concurrency) are taken by waiting. 500 ms filled 64 slots at
# 100 bots/s in bench/dispatch and made launches late; 100 ms takes about 10.
LOOKAHEAD = timedelta(milliseconds=100)

_Attempt = tuple[str, int, LaunchOutcome]  # bot id, attempt number, outcome


@dataclass(frozen=True, slots=True)
class _Ready:
    request: LaunchRequest
    launcher: Launcher
    due_at: datetime  # the bot's next_attempt_at when claimed: launch then, not before


class Dispatcher:
    """Claim, run and next-due functions of the ``bots`` job kind (``jobs/kinds.py``)."""

    def __init__(self, runtime: Runtime, lookahead: timedelta = LOOKAHEAD) -> None:
        self.rt = runtime
        self.lookahead = lookahead
        self._ready: dict[str, _Ready | DispatchOutcome] = {}
        # One writer at a time on SQLite (it has one anyway); PostgreSQL needs no turns.
        self._turns = _Turns(runtime.settings.is_sqlite)
        self._recorder = _GroupRecorder(runtime, self._turns)

    async def claim(self, rt: Runtime, owner: str, limit: int) -> list[str]:
        """Claim and prepare up to ``limit`` bots due now (``drain``: no look-ahead)."""
        ids, _ = await self._claim(rt, owner, limit, timedelta(0))
        return ids

    async def claim_next(
        self, rt: Runtime, owner: str, limit: int
    ) -> tuple[list[str], datetime | None]:
        """Claim and prepare up to ``limit`` bots due within the look-ahead; with room to
        spare, also when to claim next (about the next due time less the look-ahead; None
        when nothing is scheduled, or when full: the worker comes back when a slot frees)."""
        return await self._claim(rt, owner, limit, self.lookahead)

    async def _claim(
        self, rt: Runtime, owner: str, limit: int, ahead: timedelta
    ) -> tuple[list[str], datetime | None]:
        now = rt.clock.now()
        by = now + ahead
        policy = BotPolicy.from_settings(rt.settings)
        async with self._turns.turn(claim=True), rt.sessions() as session:
            ids = await dispatch.claim(session, rt, now, owner, limit, due_by=by)
            prepared = await dispatch.prepare(session, now, ids, owner, policy) if ids else {}
            launchers: dict[str, Launcher] = {}
            due_at: dict[str, datetime] = {}
            for bot_id, item in prepared.items():
                if not isinstance(item, LaunchRequest):
                    continue
                if item.tenant_id not in launchers:
                    launchers[item.tenant_id] = await loaded_launcher(session, rt, item.tenant_id)
                # The claim left next_attempt_at alone: the time this launch waits for.
                # (prepare loaded the bot: no query, the session's identity map has it.)
                bot = await session.get(Bot, bot_id)
                due_at[bot_id] = bot.next_attempt_at if bot and bot.next_attempt_at else now
            due = None
            if len(ids) < limit:
                due = await next_due(
                    session, Bot.next_attempt_at, now=by, where=(Bot.status.in_(LIVE_STATUSES),)
                )
            await session.commit()
        for bot_id, item in prepared.items():
            if isinstance(item, LaunchRequest):
                self._ready[bot_id] = _Ready(item, launchers[item.tenant_id], due_at[bot_id])
            else:
                self._ready[bot_id] = item
        if due is None:
            return ids, None
        # Claim again when the next bot is within the look-ahead, but not sooner than half
        # of it from now: each claim then takes half a look-ahead's worth of bots (rather
        # than one at a time as the window slides), each at least that long before it is due.
        return ids, max(due - ahead, now + ahead / 2)

    async def run(self, rt: Runtime, bot_id: str, owner: str) -> DispatchOutcome:
        ready = self._ready.pop(bot_id, None)
        if isinstance(ready, DispatchOutcome):
            return ready
        if ready is not None and ready.due_at > rt.clock.now():
            await rt.clock.sleep(ready.due_at - rt.clock.now())
        if ready is None or rt.clock.now() > ready.request.deadline:
            return await dispatch.dispatch_bot(rt, bot_id, owner)
        request = ready.request
        outcome = await dispatch.launch(ready.launcher, request)
        result = await self._recorder.record(owner, (bot_id, request.attempt, outcome))
        dispatch.log_result(result)
        return result


class _GroupRecorder(GroupWriter[_Attempt, DispatchOutcome]):
    """Writes launch outcomes, those waiting together in one transaction and one reconcile
    (``jobs/groups.py``), taking its turn after waiting claims (:class:`_Turns`)."""

    lost = "launch outcome not recorded"

    def __init__(self, runtime: Runtime, turns: _Turns) -> None:
        super().__init__()
        self.rt = runtime
        self._turns = turns

    async def _write(self, owner: str, attempts: Sequence[_Attempt]) -> list[DispatchOutcome]:
        policy = BotPolicy.from_settings(self.rt.settings)
        async with self._turns.turn(claim=False), self.rt.sessions() as session:
            results = await dispatch.record_outcomes(
                session, self.rt.clock.now(), owner, attempts, policy
            )
            await session.commit()
        return results


class _Turns:
    """Turns at writing for claims and group writes, claims first (their lateness is the
    launch's); a no-op unless ``enabled``."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._busy = False
        self._claims_waiting = 0
        self._changed = asyncio.Condition()

    @asynccontextmanager
    async def turn(self, *, claim: bool) -> AsyncIterator[None]:
        if not self.enabled:
            yield
            return
        async with self._changed:
            self._claims_waiting += claim
            try:
                await self._changed.wait_for(
                    lambda: not self._busy and (claim or not self._claims_waiting)
                )
            finally:
                self._claims_waiting -= claim
            self._busy = True
        try:
            yield
        finally:
            async with self._changed:
                self._busy = False
                self._changed.notify_all()
