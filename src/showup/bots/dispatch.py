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
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from showup.backoff import backoff
from showup.bots.changes import BotChanges
from showup.bots.policy import BotPolicy
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
    now = rt.clock.now()
    async with rt.sessions() as session:
        ids = await claim_due(
            session,
            Bot,
            Bot.next_attempt_at,
            now=now,
            owner=owner,
            lease=rt.settings.lease_duration,
            limit=limit,
            where=(Bot.status.in_(LIVE_STATUSES),),
        )
        if ids:
            await session.execute(
                update(Bot)
                .where(Bot.id.in_(ids))
                .values(
                    status="dispatching",
                    attempts=Bot.attempts + 1,
                    last_attempt_at=now,
                    updated_at=now,
                )
                .execution_options(synchronize_session=False)
            )
        await session.commit()
    return ids


async def dispatch_bot(
    rt: Runtime, bot_id: str, owner: str, *, launcher: Launcher | None = None
) -> DispatchOutcome:
    """Run one claimed launch attempt; the worker's job body for kind ``bots``."""
    policy = BotPolicy.from_settings(rt.settings)
    async with rt.sessions() as session:
        prepared = await _prepare(session, rt.clock.now(), bot_id, owner, policy)
        await session.commit()
    if isinstance(prepared, DispatchOutcome):
        return prepared
    chosen = launcher or launcher_for(rt, prepared.tenant_id)
    try:
        outcome = await chosen.launch(prepared)
    except Exception as exc:  # a launcher bug must not strand the bot in dispatching
        log.exception("launcher failed on bot %s", bot_id)
        outcome = Retryable(f"internal error: {type(exc).__name__}")
    async with rt.sessions() as session:
        result = await record_outcome(
            session, rt.clock.now(), bot_id, owner, prepared.attempt, outcome, policy
        )
        await session.commit()
    activity.info(
        "bot %s attempt %d: %s%s",
        bot_id,
        prepared.attempt,
        result.result,
        f" ({result.error})" if result.error else "",
    )
    return result


async def _lock_owned(session: AsyncSession, bot_id: str, owner: str) -> Bot | None:
    bot = await session.scalar(
        select(Bot)
        .where(Bot.id == bot_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if bot is None or bot.lease_owner != owner or bot.status != "dispatching":
        return None
    return bot


async def _prepare(
    session: AsyncSession, now: datetime, bot_id: str, owner: str, policy: BotPolicy
) -> LaunchRequest | DispatchOutcome:
    bot = await _lock_owned(session, bot_id, owner)
    if bot is None:
        return DispatchOutcome(bot_id, "skipped")
    if now > bot.deadline:
        if bot.attempts <= 1:
            error = "missed: the join time passed and the deadline too before any launch"
        else:
            error = f"gave up at the deadline; last error: {bot.error}"
        await _finish(
            session, bot, now, policy, status="failed", reason="deadline_passed", error=error
        )
        return DispatchOutcome(bot_id, "failed", bot.attempts, error)
    return LaunchRequest(
        bot_id=bot.id,
        tenant_id=bot.tenant_id,
        deduplication_key=bot.deduplication_key,
        meeting_url=bot.meeting_url,
        meeting_platform=bot.meeting_platform,
        join_at=bot.join_at,
        deadline=bot.deadline,
        bot_config=dict(bot.bot_config),
        events=await _served(session, bot.id),
        attempt=bot.attempts,
    )


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
    bot = await _lock_owned(session, bot_id, owner)
    if bot is None:
        # Our lease expired and another worker took over; its attempt decides.
        log.warning("bot %s: lease lost before recording attempt %d", bot_id, attempt)
        return DispatchOutcome(bot_id, "lost", attempt)
    if isinstance(outcome, Launched):
        bot.dispatched_at = now
        bot.vendor_bot_id = outcome.vendor_bot_id
        await _finish(session, bot, now, policy, status="dispatched", reason=None, error=None)
        return DispatchOutcome(bot_id, "dispatched", attempt)
    if isinstance(outcome, Rejected):
        await _finish(
            session, bot, now, policy, status="failed", reason="rejected", error=outcome.reason
        )
        return DispatchOutcome(bot_id, "failed", attempt, outcome.reason)
    delay = outcome.retry_after or backoff(attempt, base=policy.retry_base, cap=policy.retry_max)
    next_at = now + max(delay, _MIN_RETRY)
    if next_at > bot.deadline:
        if outcome.retry_after is None and now + _MIN_RETRY <= bot.deadline:
            next_at = bot.deadline  # one last try at the deadline rather than none
        else:
            error = f"gave up at the deadline; last error: {outcome.reason}"
            await _finish(
                session, bot, now, policy, status="failed", reason="deadline_passed", error=error
            )
            return DispatchOutcome(bot_id, "failed", attempt, error)
    changes = BotChanges()
    changes.seen(bot)
    bot.error = outcome.reason
    bot.next_attempt_at = next_at
    bot.lease_owner = bot.lease_expires_at = None
    bot.updated_at = now
    await reconcile(session, now=now, policy=policy, bot_ids=[bot.id], changes=changes)
    await changes.announce(session, now)
    return DispatchOutcome(bot_id, "retry", attempt, outcome.reason, next_at)


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
    bot.status = status
    bot.status_reason = reason
    bot.error = error
    bot.next_attempt_at = None
    bot.lease_owner = bot.lease_expires_at = None
    bot.updated_at = now
    # Later occurrences sharing this bot's key want a fresh bot now (plan: Fresh).
    await reconcile(session, now=now, policy=policy, bot_ids=[bot.id], changes=changes)
    await changes.announce(session, now)


async def _served(session: AsyncSession, bot_id: str) -> tuple[ServedEvent, ...]:
    rows = await session.execute(
        select(
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
        .where(BotEvent.bot_id == bot_id, BotEvent.state == "active")
        .order_by(Event.start_time, Event.id)
    )
    return tuple(ServedEvent(*row) for row in rows)
