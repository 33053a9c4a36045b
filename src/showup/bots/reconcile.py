"""Reconcile, don't patch (DESIGN invariant 5): converge stored bots to what their events want.

The contract, for every trigger (a synced change, POST/DELETE of an event's bot, PATCH or
DELETE of a bot, a tenant's lead time, a calendar deleted or disconnected, a launch
attempt finishing):

1. the caller changes *inputs* only: event rows, links (``bot_events``), a bot's
   settings (config, overrides);
2. it calls :func:`reconcile` with whatever it touched (bot ids, event ids, calendar
   ids), in its own transaction, before committing;
3. :func:`reconcile` locks the affected bots, reads their active links and the linked
   events as they are now, plans each bot with ``plan.plan_bot`` (pure) and applies the
   actions; follow-ups (a revived bot merging into the live bot of its key, a fresh bot
   for a new occurrence) are planned in further rounds of the same call;
4. the announcements (``changes.BotChanges``) are computed from the net before/after
   state of each bot and enqueued in the same transaction.

Nothing here commits; the edge does. Running it twice changes nothing the second time.

Concurrency: bots are locked ``FOR UPDATE`` (PostgreSQL; SQLite has one writer), in id
order, so a reconcile and a dispatch claim (``FOR UPDATE SKIP LOCKED``) never both decide
about one bot. A bot going live with a key that another transaction just took (the
``uq_bots_live_dedup`` index) is caught in a savepoint and merged into that bot.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from showup.bots.changes import BotChanges
from showup.bots.plan import (
    Action,
    BotView,
    Cancel,
    Fresh,
    LinkedEvent,
    Note,
    Retarget,
    Revive,
    Target,
    plan_bot,
)
from showup.bots.policy import BotPolicy
from showup.bots.queries import chunks, live_bot_for_key
from showup.db.bot_models import Bot, BotEvent, TenantBotSettings
from showup.db.models import Calendar, Event, new_id
from showup.meetings import detect_platform

# Follow-ups converge in two or three rounds; more means a bug, not a busy tenant.
_MAX_ROUNDS = 6
_LAUNCHED = ("dispatching", "dispatched", "failed")


@dataclass(slots=True)
class Reconciled:
    bot_ids: list[str] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)


async def affected_bots(
    session: AsyncSession,
    *,
    event_ids: Iterable[str] = (),
    calendar_ids: Iterable[str] = (),
) -> set[str]:
    """Bots with an active link to any of the events or calendars."""
    found: set[str] = set()
    for col, ids in ((BotEvent.event_id, event_ids), (BotEvent.calendar_id, calendar_ids)):
        for chunk in chunks(ids):
            rows = await session.scalars(
                select(BotEvent.bot_id).where(col.in_(chunk), BotEvent.state == "active")
            )
            found.update(rows)
    return found


async def reconcile(
    session: AsyncSession,
    *,
    now: datetime,
    policy: BotPolicy,
    bot_ids: Iterable[str] = (),
    event_ids: Iterable[str] = (),
    calendar_ids: Iterable[str] = (),
    cause: str | None = None,
    changes: BotChanges | None = None,
) -> Reconciled:
    """Converge the affected bots (see the module contract). Flushes, never commits.

    ``cause`` names why a bot that lost all its links is cancelled (default
    ``unscheduled``; ``calendar_deleted`` when the caller deleted a calendar). With
    ``changes`` given, the caller announces; otherwise this call does.
    """
    await session.flush()
    pending = set(bot_ids) | await affected_bots(
        session, event_ids=event_ids, calendar_ids=calendar_ids
    )
    out = Reconciled()
    if not pending:
        return out
    tracker = changes if changes is not None else BotChanges()
    run = _Run(session, now, policy, tracker, cause)
    for _ in range(_MAX_ROUNDS):
        if not pending:
            break
        pending = await run.round(sorted(pending), out)
    else:
        raise RuntimeError(f"bot reconciliation did not converge: {sorted(pending)}")
    if changes is None:
        await tracker.announce(session, now)
    return out


class _Run:
    def __init__(
        self,
        session: AsyncSession,
        now: datetime,
        policy: BotPolicy,
        changes: BotChanges,
        cause: str | None,
    ) -> None:
        self.session = session
        self.now = now
        self.policy = policy
        self.changes = changes
        self.cause = cause

    async def round(self, bot_ids: list[str], out: Reconciled) -> set[str]:
        await self.session.flush()  # the reload below must not overwrite unflushed work
        bots = await _lock(self.session, bot_ids)
        links = await _links(self.session, [b.id for b in bots])
        leads = await _tenant_leads(self.session, {b.tenant_id for b in bots})
        follow: set[str] = set()
        for bot in bots:
            self.changes.seen(bot)
            bot_links = links.get(bot.id, [])
            view = _view(bot, leads.get(bot.tenant_id), self.policy, self.now)
            for action in plan_bot(view, bot_links, self.now, self.policy.dispatch_deadline):
                if isinstance(action, Cancel) and not bot_links and self.cause:
                    action = Cancel(action.bot_id, self.cause)
                out.actions.append(action)
                follow |= await self.apply(bot, action)
            out.bot_ids.append(bot.id)
        return follow

    async def apply(self, bot: Bot, action: Action) -> set[str]:
        now = self.now
        if isinstance(action, Retarget):
            _set_target(bot, action.target)
            bot.next_attempt_at = action.target.join_at
            bot.updated_at = now
        elif isinstance(action, Cancel):
            bot.status = "cancelled"
            bot.status_reason = action.reason
            bot.next_attempt_at = None
            bot.lease_owner = bot.lease_expires_at = None
            bot.updated_at = now
        elif isinstance(action, Note):
            bot.note = action.note
            bot.updated_at = now
        elif isinstance(action, Revive):
            return await self.go_live(bot, action.target)
        elif isinstance(action, Fresh):
            return await self.fresh(bot, list(action.event_ids))
        return set()

    async def go_live(self, bot: Bot, target: Target) -> set[str]:
        """Make ``bot`` the scheduled bot of its key, or merge it into the one that is."""
        other = await live_bot_for_key(self.session, bot.tenant_id, bot.deduplication_key)
        if other is None:
            try:
                async with self.session.begin_nested():
                    _revive(bot, target, self.now)
                    await self.session.flush()
                return set()
            except IntegrityError:
                # Another transaction took the key meanwhile (uq_bots_live_dedup).
                await self.session.refresh(bot)
                other = await live_bot_for_key(self.session, bot.tenant_id, bot.deduplication_key)
                if other is None:
                    raise
        self.changes.seen(other)
        event_ids = await _active_event_ids(self.session, bot.id)
        await relink(self.session, event_ids, bot, other, self.now)
        if self.changes.is_new(bot.id):
            # A bot made in this operation that never went live is not history.
            await self.session.delete(bot)
            await self.session.flush()
            self.changes.forget(bot.id)
        return {other.id}

    async def fresh(self, bot: Bot, event_ids: list[str]) -> set[str]:
        """A launched bot's later occurrences move to the live bot of the key, or a new one."""
        dst = await live_bot_for_key(self.session, bot.tenant_id, bot.deduplication_key)
        if dst is None:
            dst = placeholder(
                tenant_id=bot.tenant_id,
                key=bot.deduplication_key,
                template=bot,
                start=bot.meeting_start,
                end=bot.meeting_end,
                meeting_url=bot.meeting_url,
                now=self.now,
            )
            self.session.add(dst)
            await self.session.flush()
            self.changes.created(dst)
        else:
            self.changes.seen(dst)
        await relink(self.session, event_ids, bot, dst, self.now)
        return {dst.id}


def placeholder(
    *,
    tenant_id: str,
    key: str,
    template: Bot | None,
    start: datetime,
    end: datetime,
    meeting_url: str,
    now: datetime,
) -> Bot:
    """A new bot, not live yet: the next reconcile round revives it (or merges it into
    the live bot of its key), so one code path decides every bot going live.

    ``template``'s settings are copied, except a pinned join time: that belonged to the
    template's own meeting.
    """
    return Bot(
        id=new_id(),
        tenant_id=tenant_id,
        deduplication_key=key,
        status="cancelled",
        status_reason="new",
        join_at=start,
        join_at_override=None,
        lead_time_seconds=template.lead_time_seconds if template else None,
        meeting_url=meeting_url,
        meeting_platform=None,
        meeting_url_override=template.meeting_url_override if template else None,
        bot_config=dict(template.bot_config) if template else {},
        meeting_start=start,
        meeting_end=end,
        deadline=start,
        attempts=0,
        created_at=now,
        updated_at=now,
    )


async def relink(
    session: AsyncSession, event_ids: list[str], src: Bot | None, dst: Bot, now: datetime
) -> None:
    """Point the events' active links at ``dst``. A launched ``src`` keeps its links as
    history (``superseded``); a link to a never-launched one is dropped."""
    if not event_ids:
        return
    if src is not None:
        if src.status in _LAUNCHED:
            await session.execute(
                update(BotEvent)
                .where(
                    BotEvent.bot_id == src.id,
                    BotEvent.event_id.in_(event_ids),
                    BotEvent.state == "active",
                )
                .values(state="superseded", updated_at=now)
                .execution_options(synchronize_session=False)
            )
        else:
            await session.execute(
                delete(BotEvent)
                .where(BotEvent.bot_id == src.id, BotEvent.event_id.in_(event_ids))
                .execution_options(synchronize_session=False)
            )
    existing = set(
        await session.scalars(
            select(BotEvent.event_id).where(
                BotEvent.bot_id == dst.id, BotEvent.event_id.in_(event_ids)
            )
        )
    )
    if existing:
        await session.execute(
            update(BotEvent)
            .where(BotEvent.bot_id == dst.id, BotEvent.event_id.in_(existing))
            .values(state="active", updated_at=now)
            .execution_options(synchronize_session=False)
        )
    missing = [eid for eid in event_ids if eid not in existing]
    if missing:
        rows = await session.execute(
            select(Event.id, Event.calendar_id).where(Event.id.in_(missing))
        )
        values: list[dict[str, Any]] = [
            {
                "id": new_id(),
                "tenant_id": dst.tenant_id,
                "bot_id": dst.id,
                "event_id": eid,
                "calendar_id": cid,
                "state": "active",
                "created_at": now,
                "updated_at": now,
            }
            for eid, cid in rows
        ]
        if values:
            await session.execute(insert(BotEvent), values)


def _set_target(bot: Bot, t: Target) -> None:
    bot.join_at = t.join_at
    bot.meeting_url = t.meeting_url
    bot.meeting_platform = t.meeting_platform
    bot.meeting_start = t.meeting_start
    bot.meeting_end = t.meeting_end
    bot.deadline = t.deadline


def _revive(bot: Bot, t: Target, now: datetime) -> None:
    _set_target(bot, t)
    bot.status = "scheduled"
    bot.status_reason = None
    bot.next_attempt_at = t.join_at
    bot.attempts = 0
    bot.last_attempt_at = None
    bot.lease_owner = bot.lease_expires_at = None
    bot.error = None
    bot.note = None
    bot.updated_at = now


def _view(bot: Bot, tenant_lead: int | None, policy: BotPolicy, now: datetime) -> BotView:
    seconds = bot.lead_time_seconds if bot.lead_time_seconds is not None else tenant_lead
    lead = timedelta(seconds=seconds) if seconds is not None else policy.lead_time
    override = bot.meeting_url_override
    in_flight = (
        bot.status == "dispatching"
        and bot.lease_owner is not None
        and bot.lease_expires_at is not None
        and bot.lease_expires_at > now
    )
    return BotView(
        id=bot.id,
        status=bot.status,
        join_at=bot.join_at,
        join_at_override=bot.join_at_override,
        lead=lead,
        meeting_url=bot.meeting_url,
        meeting_platform=bot.meeting_platform,
        meeting_url_override=override,
        override_platform=detect_platform(override) if override else None,
        meeting_start=bot.meeting_start,
        meeting_end=bot.meeting_end,
        deadline=bot.deadline,
        in_flight=in_flight,
        note=bot.note,
    )


async def _lock(session: AsyncSession, bot_ids: list[str]) -> list[Bot]:
    bots: list[Bot] = []
    for chunk in chunks(bot_ids):
        rows = await session.scalars(
            select(Bot)
            .where(Bot.id.in_(chunk))
            .order_by(Bot.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        bots.extend(rows)
    return bots


async def _links(session: AsyncSession, bot_ids: list[str]) -> dict[str, list[LinkedEvent]]:
    out: dict[str, list[LinkedEvent]] = {}
    for chunk in chunks(bot_ids):
        rows = await session.execute(
            select(
                BotEvent.bot_id,
                Event.id,
                Event.start_time,
                Event.end_time,
                Event.meeting_url,
                Event.meeting_platform,
                Event.is_deleted,
                Event.status,
                Calendar.status,
            )
            .join(Event, Event.id == BotEvent.event_id)
            .join(Calendar, Calendar.id == Event.calendar_id)
            .where(BotEvent.bot_id.in_(chunk), BotEvent.state == "active")
        )
        for bot_id, eid, start, end, url, platform, deleted, status, cal_status in rows:
            blocked = None
            if cal_status == "disconnected":
                blocked = "calendar_disconnected"
            elif deleted or status == "cancelled":
                blocked = "event_cancelled"
            out.setdefault(bot_id, []).append(LinkedEvent(eid, start, end, url, platform, blocked))
    return out


async def _active_event_ids(session: AsyncSession, bot_id: str) -> list[str]:
    rows = await session.scalars(
        select(BotEvent.event_id).where(BotEvent.bot_id == bot_id, BotEvent.state == "active")
    )
    return list(rows)


async def _tenant_leads(session: AsyncSession, tenant_ids: set[str]) -> dict[str, int | None]:
    rows = await session.execute(
        select(TenantBotSettings.tenant_id, TenantBotSettings.bot_lead_time_seconds).where(
            TenantBotSettings.tenant_id.in_(tenant_ids)
        )
    )
    return {tid: lead for tid, lead in rows}
