"""The bot API's writes: PATCH and DELETE of one bot, and the tenant's bot settings.

Each changes inputs (a bot's settings, its links, the tenant's lead time) and then calls
``reconcile``, like every other trigger. Flushes only; the edge commits.

A manual ``join_at`` *pins* the bot: moving the event later does not move it. PATCH
``join_at: null`` clears the pin and the bot follows its meeting again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from showup.bots.bot_config import BotConfig
from showup.bots.changes import BotChanges
from showup.bots.errors import BotConflict, BotNotFound, InvalidBotRequest
from showup.bots.policy import BotPolicy
from showup.bots.queries import lock_bot
from showup.bots.reconcile import reconcile
from showup.bots.schedule import apply_config
from showup.db.bot_models import Bot, BotEvent, TenantBotSettings

MAX_TENANT_LEAD_SECONDS = 3600

# PATCH distinguishes "not given" from "null" (null clears the override).
UNSET: Any = object()


def _in_flight(bot: Bot, now: datetime) -> bool:
    return (
        bot.status == "dispatching"
        and bot.lease_expires_at is not None
        and bot.lease_expires_at > now
    )


async def _load(session: AsyncSession, tenant_id: str, bot_id: str) -> Bot:
    bot = await lock_bot(session, bot_id, tenant_id)
    if bot is None:
        raise BotNotFound("bot")
    return bot


async def patch_bot(
    session: AsyncSession,
    *,
    tenant_id: str,
    bot_id: str,
    join_at: datetime | None = UNSET,
    config: BotConfig | None = None,
    now: datetime,
    policy: BotPolicy,
) -> Bot:
    """Change a scheduled bot's config and/or pinned join time, then reconcile it."""
    bot = await _load(session, tenant_id, bot_id)
    if bot.status != "scheduled":
        raise BotConflict(
            "bot_not_editable", f"Only a scheduled bot can be changed; this one is {bot.status}."
        )
    if join_at is not UNSET and join_at is not None and join_at >= bot.meeting_end:
        raise InvalidBotRequest(
            "invalid_join_at", "join_at must be before the meeting ends.", "join_at"
        )
    changes = BotChanges()
    changes.seen(bot)
    if config is not None:
        if config.join_at is not None and config.join_at >= bot.meeting_end:
            raise InvalidBotRequest(
                "invalid_join_at",
                "join_at must be before the meeting ends.",
                "bot_config.join_at",
            )
        apply_config(bot, config, now)
    if join_at is not UNSET:
        bot.join_at_override = join_at
        bot.updated_at = now
    await reconcile(session, now=now, policy=policy, bot_ids=[bot.id], changes=changes)
    await changes.announce(session, now)
    return bot


async def cancel_bot(
    session: AsyncSession, *, tenant_id: str, bot_id: str, now: datetime, policy: BotPolicy
) -> Bot:
    """Cancel a bot for good: its events stop wanting it, so nothing revives it.

    Repeating it is fine. A bot whose launch is under way or done cannot be recalled here.
    """
    bot = await _load(session, tenant_id, bot_id)
    if bot.status in ("dispatched", "failed") or _in_flight(bot, now):
        raise BotConflict(
            "bot_not_cancellable", f"The bot is {bot.status}; its launch cannot be undone."
        )
    changes = BotChanges()
    changes.seen(bot)
    await session.execute(
        delete(BotEvent)
        .where(BotEvent.bot_id == bot.id, BotEvent.state == "active")
        .execution_options(synchronize_session=False)
    )
    await reconcile(session, now=now, policy=policy, bot_ids=[bot.id], changes=changes)
    await changes.announce(session, now)
    return bot


@dataclass(frozen=True, slots=True)
class TenantBotDefaults:
    bot_lead_time_seconds: int
    is_default: bool  # True when the server's setting applies (no tenant value)


async def get_tenant_settings(
    session: AsyncSession, tenant_id: str, policy: BotPolicy
) -> TenantBotDefaults:
    row = await session.get(TenantBotSettings, tenant_id)
    if row is None or row.bot_lead_time_seconds is None:
        return TenantBotDefaults(int(policy.lead_time.total_seconds()), True)
    return TenantBotDefaults(row.bot_lead_time_seconds, False)


async def set_tenant_lead(
    session: AsyncSession,
    *,
    tenant_id: str,
    seconds: int | None,
    now: datetime,
    policy: BotPolicy,
) -> TenantBotDefaults:
    """Set (or with None, reset) the tenant's lead time and move its scheduled bots."""
    if seconds is not None and not 0 <= seconds <= MAX_TENANT_LEAD_SECONDS:
        raise InvalidBotRequest(
            "invalid_lead_time",
            f"bot_lead_time_seconds must be from 0 to {MAX_TENANT_LEAD_SECONDS}.",
            "bot_lead_time_seconds",
        )
    row = await session.get(TenantBotSettings, tenant_id, with_for_update=True)
    if row is None:
        row = TenantBotSettings(tenant_id=tenant_id, updated_at=now)
        session.add(row)
    row.bot_lead_time_seconds = seconds
    row.updated_at = now
    await session.flush()
    # Only bots that follow the tenant's lead: no own lead, no pinned join time.
    ids = list(
        await session.scalars(
            select(Bot.id).where(
                Bot.tenant_id == tenant_id,
                Bot.status == "scheduled",
                Bot.lead_time_seconds.is_(None),
                Bot.join_at_override.is_(None),
            )
        )
    )
    await reconcile(session, now=now, policy=policy, bot_ids=ids)
    return await get_tenant_settings(session, tenant_id, policy)
