"""Read-side queries: an event page's bots, a bot page's events. One query per page."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from showup.bots.serialize import event_bot_json
from showup.db.bot_models import Bot, BotEvent

# Keep IN (...) lists well under SQLite's and asyncpg's parameter limits.
CHUNK = 500


def chunks(ids: Iterable[str]) -> Iterable[list[str]]:
    items = list(dict.fromkeys(ids))
    for i in range(0, len(items), CHUNK):
        yield items[i : i + CHUNK]


async def bots_for_events(
    session: AsyncSession, tenant_id: str, event_ids: Sequence[str]
) -> dict[str, list[dict[str, Any]]]:
    """``bots[]`` of each event: the bots serving it now or having served it, not the
    cancelled ones (Recall removes a deleted event's bot)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for chunk in chunks(event_ids):
        rows = await session.execute(
            select(BotEvent.event_id, Bot)
            .join(Bot, Bot.id == BotEvent.bot_id)
            .where(
                BotEvent.event_id.in_(chunk),
                BotEvent.tenant_id == tenant_id,
                BotEvent.state.in_(("active", "superseded")),
                Bot.status != "cancelled",
            )
            .order_by(Bot.join_at, Bot.id)
        )
        for event_id, bot in rows:
            out.setdefault(event_id, []).append(event_bot_json(bot))
    return out


async def event_ids_of(session: AsyncSession, bot_ids: Sequence[str]) -> dict[str, list[str]]:
    """The events each bot serves or served (links not removed by the tenant)."""
    out: dict[str, list[str]] = {bid: [] for bid in bot_ids}
    for chunk in chunks(bot_ids):
        rows = await session.execute(
            select(BotEvent.bot_id, BotEvent.event_id)
            .where(BotEvent.bot_id.in_(chunk), BotEvent.state != "removed")
            .order_by(BotEvent.created_at, BotEvent.event_id)
        )
        for bot_id, event_id in rows:
            out[bot_id].append(event_id)
    return out


async def live_bot_for_key(session: AsyncSession, tenant_id: str, key: str) -> Bot | None:
    """The tenant's live bot for ``key`` (at most one: ``uq_bots_live_dedup``), locked."""
    return await session.scalar(
        select(Bot)
        .where(
            Bot.tenant_id == tenant_id,
            Bot.deduplication_key == key,
            Bot.status.in_(("scheduled", "dispatching")),
        )
        .with_for_update()
        .execution_options(populate_existing=True)
    )


async def lock_bot(session: AsyncSession, bot_id: str, tenant_id: str | None = None) -> Bot | None:
    q = select(Bot).where(Bot.id == bot_id)
    if tenant_id is not None:
        q = q.where(Bot.tenant_id == tenant_id)
    return await session.scalar(q.with_for_update().execution_options(populate_existing=True))


async def active_link(session: AsyncSession, event_id: str) -> BotEvent | None:
    return await session.scalar(
        select(BotEvent)
        .where(BotEvent.event_id == event_id, BotEvent.state == "active")
        .execution_options(populate_existing=True)
    )
