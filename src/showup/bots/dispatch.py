"""The dispatch job: launch each bot at its join time, exactly once (DESIGN invariants 1, 4).

State machine (``bots.status``)::

    scheduled ──claim──► dispatching ──Launched──► dispatched
        ▲   │               │  │  └──Rejected / deadline passed──► failed  (bot.failed)
        │   │               │  └──Retryable──► dispatching, next_attempt_at = retry time
        │   └─reconcile──► cancelled ◄──reconcile (between attempts only)──┘
        └──reconcile (its events came back)──┘

1. **Claim** (:func:`claim_bots`): live bots whose ``next_attempt_at`` (the join time,
   or the retry time) has passed and whose lease is free are leased to this worker
   (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), moved to ``dispatching`` and their attempt
   counted, in one transaction. Two workers never hold one bot.
2. **Launch** (:func:`dispatch_bot`): past the deadline, the bot fails (a bot whose join
   time passed while no worker ran is launched late if still within its deadline, never
   silently dropped). Otherwise the launcher is called with the bot id as idempotency key,
   outside any transaction.
3. **Record**, fenced on our lease: the outcome moves the bot on (see
   ``launchers/base.py``), the lease is released, and the bot is reconciled in the same
   transaction (its events may have been cancelled meanwhile, or a later occurrence may
   want a fresh bot now that this one launched).

A worker killed anywhere in between leaves a lease that expires; the next claim retries
with the same idempotency key (and the same ``webhook-id``), so the receiver can tell.

:func:`dispatch_bot` takes each step in its own transaction. The worker's ``bots`` kind
runs the same steps through ``dispatcher.Dispatcher``, which prepares a claimed batch in
the claim's transaction and records outcomes in groups (:func:`prepare`,
:func:`record_outcomes` take many bots).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from showup.backoff import backoff
from showup.bots.changes import BotChanges
from showup.bots.policy import BotPolicy
from showup.bots.queries import chunks
from showup.bots.reconcile import reconcile
from showup.db.bot_models import LIVE_STATUSES, Bot, BotEvent
from showup.db.models import Calendar, Event
from showup.jobs.leases import claim_due
from showup.launchers import launcher_for
from showup.launchers.base import (
    Launched,
    Launcher,
    LaunchOutcome,
    LaunchRequest,
    Rejected,
    Retryable,
    ServedEvent,
)
from showup.runtime import Runtime

log = logging.getLogger("showup.bots")
activity = logging.getLogger("showup.activity")

Result = Literal["dispatched", "retry", "failed", "skipped", "lost"]

# A retry is never due at once: drain() would spin on it.
_MIN_RETRY = timedelta(seconds=1)


@dataclass(frozen=True, slots=True)
class DispatchOutcome:
    bot_id: str
    result: Result
    attempt: int = 0
    error: str | None = None
    next_attempt_at: datetime | None = None


async def claim_bots(rt: Runtime, owner: str, limit: int) -> list[str]:
    """Lease up to ``limit`` due live bots to ``owner`` and mark them ``dispatching``."""
    async with rt.sessions() as session:
        ids = await claim(session, rt, rt.clock.now(), owner, limit)
        await session.commit()
    return ids


async def claim(
    session: AsyncSession,
    rt: Runtime,
    now: datetime,
    owner: str,
    limit: int,
    *,
    due_by: datetime | None = None,
) -> list[str]:
    """:func:`claim_bots` in the caller's transaction (one UPDATE: lease, status, attempt);
    with ``due_by``, bots due by then (the claimer launches each at its due time)."""
    return await claim_due(
        session,
        Bot,
        Bot.next_attempt_at,
        now=now,
        owner=owner,
        lease=rt.settings.lease_duration,
        limit=limit,
        where=(Bot.status.in_(LIVE_STATUSES),),
        values={
            "status": "dispatching",
            "attempts": Bot.attempts + 1,
            "last_attempt_at": now,
            "updated_at": now,
        },
        due_by=due_by,
    )


async def dispatch_bot(
    rt: Runtime, bot_id: str, owner: str, *, launcher: Launcher | None = None
) -> DispatchOutcome:
    """Run one claimed launch attempt (its own transactions for each step)."""
    policy = BotPolicy.from_settings(rt.settings)
    async with rt.sessions() as session:
        prepared = await _prepare(session, rt.clock.now(), bot_id, owner, policy)
        await session.commit()
    if isinstance(prepared, DispatchOutcome):
        return prepared
    outcome = await launch(launcher or launcher_for(rt, prepared.tenant_id), prepared)
    async with rt.sessions() as session:
        [result] = await record_outcomes(
            session, rt.clock.now(), owner, [(bot_id, prepared.attempt, outcome)], policy
        )
        await session.commit()
    log_result(result)
    return result


async def launch(launcher: Launcher, request: LaunchRequest) -> LaunchOutcome:
    """Call the launcher, outside any transaction; its bug is a retryable outcome."""
    try:
        return await launcher.launch(request)
    except Exception as exc:  # a launcher bug must not strand the bot in dispatching
        log.exception("launcher failed on bot %s", request.bot_id)
        return Retryable(f"internal error: {type(exc).__name__}")


def log_result(result: DispatchOutcome) -> None:
    activity.info(
        "bot %s attempt %d: %s%s",
        result.bot_id,
        result.attempt,
        result.result,
        f" ({result.error})" if result.error else "",
    )


async def _lock_owned_many(
    session: AsyncSession, bot_ids: Sequence[str], owner: str
) -> dict[str, Bot]:
    """The bots of ``bot_ids`` that ``owner`` is launching (its lease, ``dispatching``)."""
    owned: dict[str, Bot] = {}
    for chunk in chunks(bot_ids):
        rows = await session.scalars(
            select(Bot)
            .where(Bot.id.in_(chunk))
            .order_by(Bot.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        for bot in rows:
            if bot.lease_owner == owner and bot.status == "dispatching":
                owned[bot.id] = bot
    return owned


async def _prepare(
    session: AsyncSession, now: datetime, bot_id: str, owner: str, policy: BotPolicy
) -> LaunchRequest | DispatchOutcome:
    return (await prepare(session, now, [bot_id], owner, policy))[bot_id]


async def prepare(
    session: AsyncSession, now: datetime, bot_ids: Sequence[str], owner: str, policy: BotPolicy
) -> dict[str, LaunchRequest | DispatchOutcome]:
    """What each claimed bot's launch needs, or its outcome when it must not launch: not
    ``owner``'s any more (skipped), or past its deadline (failed, announced)."""
    owned = await _lock_owned_many(session, bot_ids, owner)
    served = await _served(session, [b for b in bot_ids if b in owned])
    out: dict[str, LaunchRequest | DispatchOutcome] = {}
    for bot_id in bot_ids:
        bot = owned.get(bot_id)
        if bot is None:
            out[bot_id] = DispatchOutcome(bot_id, "skipped")
        elif now > bot.deadline:
            if bot.attempts <= 1:
                error = "missed: the join time passed and the deadline too before any launch"
            else:
                error = f"gave up at the deadline; last error: {bot.error}"
            await _finish(
                session, bot, now, policy, status="failed", reason="deadline_passed", error=error
            )
            out[bot_id] = DispatchOutcome(bot_id, "failed", bot.attempts, error)
        else:
            out[bot_id] = LaunchRequest(
                bot_id=bot.id,
                tenant_id=bot.tenant_id,
                deduplication_key=bot.deduplication_key,
                meeting_url=bot.meeting_url,
                meeting_platform=bot.meeting_platform,
                join_at=bot.join_at,
                deadline=bot.deadline,
                bot_config=dict(bot.bot_config),
                events=served.get(bot.id, ()),
                attempt=bot.attempts,
            )
    return out


async def record_outcome(
    session: AsyncSession,
    now: datetime,
    bot_id: str,
    owner: str,
    attempt: int,
    outcome: LaunchOutcome,
    policy: BotPolicy,
) -> DispatchOutcome:
    """Apply one attempt's outcome, fenced on ``owner``'s lease."""
    [result] = await record_outcomes(session, now, owner, [(bot_id, attempt, outcome)], policy)
    return result


async def record_outcomes(
    session: AsyncSession,
    now: datetime,
    owner: str,
    attempts: Sequence[tuple[str, int, LaunchOutcome]],
    policy: BotPolicy,
) -> list[DispatchOutcome]:
    """Apply attempts' outcomes ``(bot_id, attempt, outcome)``, each fenced on ``owner``'s
    lease, then reconcile and announce the bots together (one pass for a batch)."""
    owned = await _lock_owned_many(session, [bot_id for bot_id, _, _ in attempts], owner)
    changes = BotChanges()
    results: list[DispatchOutcome] = []
    for bot_id, attempt, outcome in attempts:
        bot = owned.get(bot_id)
        if bot is None:
            # Our lease expired and another worker took over; its attempt decides.
            log.warning("bot %s: lease lost before recording attempt %d", bot_id, attempt)
            results.append(DispatchOutcome(bot_id, "lost", attempt))
            continue
        changes.seen(bot)
        results.append(_apply(bot, now, attempt, outcome, policy))
    settled = [r.bot_id for r in results if r.result != "lost"]
    if settled:
        # Later occurrences sharing a launched bot's key want a fresh bot now (plan: Fresh);
        # a bot waiting for a retry may have lost its events meanwhile.
        await reconcile(session, now=now, policy=policy, bot_ids=settled, changes=changes)
        await changes.announce(session, now)
    return results


def _apply(
    bot: Bot, now: datetime, attempt: int, outcome: LaunchOutcome, policy: BotPolicy
) -> DispatchOutcome:
    if isinstance(outcome, Launched):
        bot.dispatched_at = now
        bot.vendor_bot_id = outcome.vendor_bot_id
        _settle(bot, now, status="dispatched", reason=None, error=None)
        return DispatchOutcome(bot.id, "dispatched", attempt)
    if isinstance(outcome, Rejected):
        _settle(bot, now, status="failed", reason="rejected", error=outcome.reason)
        return DispatchOutcome(bot.id, "failed", attempt, outcome.reason)
    delay = outcome.retry_after or backoff(attempt, base=policy.retry_base, cap=policy.retry_max)
    next_at = now + max(delay, _MIN_RETRY)
    if next_at > bot.deadline:
        if outcome.retry_after is None and now + _MIN_RETRY <= bot.deadline:
            next_at = bot.deadline  # one last try at the deadline rather than none
        else:
            error = f"gave up at the deadline; last error: {outcome.reason}"
            _settle(bot, now, status="failed", reason="deadline_passed", error=error)
            return DispatchOutcome(bot.id, "failed", attempt, error)
    elif bot.deadline - next_at < _MIN_RETRY:
        # Too close to the deadline for another try after this one (none comes sooner than
        # _MIN_RETRY): make this one the last try, at the deadline (later, so a Retry-After
        # still holds), rather than leave the deadline's last second untried.
        next_at = bot.deadline
    bot.error = outcome.reason
    bot.next_attempt_at = next_at
    bot.lease_owner = bot.lease_expires_at = None
    bot.updated_at = now
    return DispatchOutcome(bot.id, "retry", attempt, outcome.reason, next_at)


def _settle(bot: Bot, now: datetime, *, status: str, reason: str | None, error: str | None) -> None:
    bot.status = status
    bot.status_reason = reason
    bot.error = error
    bot.next_attempt_at = None
    bot.lease_owner = bot.lease_expires_at = None
    bot.updated_at = now


async def _finish(
    session: AsyncSession,
    bot: Bot,
    now: datetime,
    policy: BotPolicy,
    *,
    status: str,
    reason: str | None,
    error: str | None,
) -> None:
    changes = BotChanges()
    changes.seen(bot)
    _settle(bot, now, status=status, reason=reason, error=error)
    # Later occurrences sharing this bot's key want a fresh bot now (plan: Fresh).
    await reconcile(session, now=now, policy=policy, bot_ids=[bot.id], changes=changes)
    await changes.announce(session, now)


async def _served(
    session: AsyncSession, bot_ids: Sequence[str]
) -> dict[str, tuple[ServedEvent, ...]]:
    """The events each bot is for now (active links), by start time."""
    out: dict[str, list[ServedEvent]] = {}
    for chunk in chunks(bot_ids):
        rows = await session.execute(
            select(
                BotEvent.bot_id,
                Event.id,
                Event.calendar_id,
                Calendar.external_user_id,
                Calendar.platform_email,
                Event.title,
                Event.ical_uid,
                Event.start_time,
                Event.end_time,
            )
            .join(BotEvent, BotEvent.event_id == Event.id)
            .join(Calendar, Calendar.id == Event.calendar_id)
            .where(BotEvent.bot_id.in_(chunk), BotEvent.state == "active")
            .order_by(Event.start_time, Event.id)
        )
        for bot_id, event_id, calendar_id, user, email, title, uid, start, end in rows:
            out.setdefault(bot_id, []).append(
                ServedEvent(event_id, calendar_id, user, email, title, uid, start, end)
            )
    return {bot_id: tuple(events) for bot_id, events in out.items()}
