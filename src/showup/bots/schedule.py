"""Schedule and unschedule an event's bot: Recall's ``POST/DELETE …/calendar-events/{id}/bot/``.

Semantics (PEERS §1c), all within the caller's transaction:

- **Schedule** ``(event, deduplication_key, bot_config)``: the event is served by the
  tenant's live bot of that key, created if there is none; events sharing a key share
  one bot. A repeat call replaces the bot's whole config (idempotent: clients repeat it on
  every sync). A new key on an event whose bot serves only it renames that bot (Recall:
  re-scheduling "updates the existing bot, including its deduplication key"); otherwise
  the event moves to the key's bot and its old bot is reconciled (cancelled if nothing
  else wants it). An event already covered by a launched bot of the same key (the meeting
  it is in, e.g. a second attendee's copy) is attached to that bot; no second bot joins.
- **Unschedule**: the event's link goes; its bot is cancelled only when no other event
  still wants it. Idempotent; an event without a bot is fine.

Refusals (``EventNotSchedulable``) happen before any write. The edge commits; a
concurrent duplicate surfaces as ``IntegrityError`` and the edge retries the call.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from showup.bots.bot_config import BotConfig
from showup.bots.changes import BotChanges
from showup.bots.errors import BotNotFound, EventNotSchedulable, InvalidBotRequest
from showup.bots.policy import BotPolicy
from showup.bots.queries import active_link, live_bot_for_key, lock_bot
from showup.bots.reconcile import placeholder, reconcile, relink
from showup.db.bot_models import Bot, BotEvent
from showup.db.models import Calendar, Event

MAX_KEY_CHARS = 1024


async def lock_event(session: AsyncSession, tenant_id: str, event_id: str) -> Event:
    """The tenant's event, locked: two requests about one event run one after the other."""
    ev = await session.scalar(
        select(Event)
        .where(Event.id == event_id, Event.tenant_id == tenant_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if ev is None:
        raise BotNotFound("calendar event")
    return ev


def check_key(key: str) -> str:
    if not key.strip() or len(key) > MAX_KEY_CHARS:
        raise InvalidBotRequest(
            "invalid_deduplication_key",
            f"deduplication_key must be 1 to {MAX_KEY_CHARS} characters.",
            "deduplication_key",
        )
    return key


async def _check_schedulable(
    session: AsyncSession, ev: Event, config: BotConfig, now: datetime
) -> None:
    if ev.is_deleted or ev.status == "cancelled":
        raise EventNotSchedulable("event_deleted", "The event is cancelled or deleted.")
    if ev.end_time <= now:
        raise EventNotSchedulable("event_ended", "The event has already ended.")
    if config.meeting_url is None and ev.meeting_url is None:
        raise EventNotSchedulable(
            "no_meeting_url",
            "The event has no meeting link; give bot_config.meeting_url.",
            "bot_config.meeting_url",
        )
    if config.join_at is not None and config.join_at >= ev.end_time:
        raise InvalidBotRequest(
            "invalid_join_at", "join_at must be before the event ends.", "bot_config.join_at"
        )
    cal_status = await session.scalar(select(Calendar.status).where(Calendar.id == ev.calendar_id))
    if cal_status == "disconnected":
        raise EventNotSchedulable(
            "calendar_disconnected", "The event's calendar is disconnected; reconnect it first."
        )


def apply_config(bot: Bot, config: BotConfig, now: datetime) -> None:
    """Replace the bot's whole config (Recall: partial updates are not supported)."""
    bot.bot_config = config.raw
    bot.meeting_url_override = config.meeting_url
    bot.lead_time_seconds = config.lead_time_seconds
    bot.join_at_override = config.join_at
    bot.updated_at = now


def _serves(bot: Bot, ev: Event) -> bool:
    """Whether ``bot`` is (or can still become) the bot of ``ev``'s meeting. A launched
    bot serves only the meeting it launched for, not a later occurrence."""
    if bot.status in ("scheduled", "dispatching", "cancelled"):
        return True
    return ev.start_time < bot.meeting_end and ev.end_time > bot.meeting_start


async def _launched_for(session: AsyncSession, tenant_id: str, key: str, ev: Event) -> Bot | None:
    """The newest launched bot of ``key`` whose meeting overlaps ``ev``."""
    return await session.scalar(
        select(Bot)
        .where(
            Bot.tenant_id == tenant_id,
            Bot.deduplication_key == key,
            Bot.status.in_(("dispatched", "failed")),
            Bot.meeting_end > ev.start_time,
            Bot.meeting_start < ev.end_time,
        )
        .order_by(Bot.created_at.desc(), Bot.id.desc())
        .limit(1)
    )


async def _only_link(session: AsyncSession, bot_id: str, event_id: str) -> bool:
    others = await session.scalar(
        select(BotEvent.id).where(BotEvent.bot_id == bot_id, BotEvent.event_id != event_id).limit(1)
    )
    return others is None


async def _rename(session: AsyncSession, bot: Bot, key: str, now: datetime) -> bool:
    """Give ``bot`` the new key; False if a live bot of that key appeared meanwhile."""
    try:
        async with session.begin_nested():
            bot.deduplication_key = key
            bot.updated_at = now
            await session.flush()
        return True
    except IntegrityError:
        await session.refresh(bot)
        return False


async def schedule_event_bot(
    session: AsyncSession,
    *,
    tenant_id: str,
    event_id: str,
    deduplication_key: str,
    config: BotConfig,
    now: datetime,
    policy: BotPolicy,
) -> None:
    key = check_key(deduplication_key)
    ev = await lock_event(session, tenant_id, event_id)
    await _check_schedulable(session, ev, config, now)
    changes = BotChanges()
    link = await active_link(session, ev.id)
    current = await lock_bot(session, link.bot_id) if link is not None else None
    if current is not None:
        changes.seen(current)

    target: Bot | None = None
    if current is not None and current.deduplication_key == key and _serves(current, ev):
        target = current
    else:
        target = await live_bot_for_key(session, tenant_id, key)
        if target is None:
            target = await _launched_for(session, tenant_id, key, ev)
        if (
            target is None
            and current is not None
            and current.status in ("scheduled", "cancelled")
            and await _only_link(session, current.id, ev.id)
        ):
            if await _rename(session, current, key, now):
                target = current
            else:
                target = await live_bot_for_key(session, tenant_id, key)
        if target is None:
            target = placeholder(
                tenant_id=tenant_id,
                key=key,
                template=None,
                start=ev.start_time,
                end=ev.end_time,
                meeting_url=config.meeting_url or ev.meeting_url or "",
                now=now,
            )
            session.add(target)
            await session.flush()
            changes.created(target)
        else:
            changes.seen(target)
        if target is not current:
            await relink(session, [ev.id], current, target, now)
    # A launch under way or done keeps the config it launched with.
    if target.status in ("scheduled", "cancelled"):
        apply_config(target, config, now)
    touched = [target.id] + ([current.id] if current is not None else [])
    await reconcile(session, now=now, policy=policy, bot_ids=touched, changes=changes)
    await changes.announce(session, now)


async def unschedule_event_bot(
    session: AsyncSession, *, tenant_id: str, event_id: str, now: datetime, policy: BotPolicy
) -> None:
    ev = await lock_event(session, tenant_id, event_id)
    link = await active_link(session, ev.id)
    if link is None:
        return
    bot = await lock_bot(session, link.bot_id)
    if bot is None:  # pragma: no cover - the FK cascades links with their bot
        return
    changes = BotChanges()
    changes.seen(bot)
    if bot.status in ("scheduled", "cancelled"):
        await session.execute(
            delete(BotEvent)
            .where(BotEvent.id == link.id)
            .execution_options(synchronize_session=False)
        )
    else:
        # Launched: keep which events it was for, but the event no longer wants it.
        await session.execute(
            update(BotEvent)
            .where(BotEvent.id == link.id)
            .values(state="removed", updated_at=now)
            .execution_options(synchronize_session=False)
        )
    await reconcile(session, now=now, policy=policy, bot_ids=[bot.id], changes=changes)
    await changes.announce(session, now)
