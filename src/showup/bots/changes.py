"""Announce bot changes: compare each touched bot before and after, enqueue webhooks.

Every operation (a request, a sync page, a launch attempt) records the bots it touches
with :meth:`BotChanges.seen` *before* changing them, then calls :meth:`announce` before its
transaction commits. The outbox rows therefore commit with the change they describe
(DESIGN invariant 2), and the announcement depends only on the net change, not on which
code path made it:

| before                 | after                         | webhook        |
|------------------------|-------------------------------|----------------|
| new, or not live       | scheduled                     | bot.scheduled  |
| live                   | live, join/url/config/key changed | bot.updated |
| live                   | cancelled                     | bot.cancelled  |
| anything but failed    | failed                        | bot.failed     |

Launching itself (``bot.dispatch``) goes through the launcher, not the outbox; a bot
moving to ``dispatching`` or ``dispatched`` is not announced here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from showup.bots.queries import event_ids_of
from showup.bots.serialize import bot_json
from showup.db.bot_models import LIVE_STATUSES, Bot
from showup.webhooks.outbox import BOT_CANCELLED, BOT_FAILED, BOT_SCHEDULED, BOT_UPDATED, enqueue


@dataclass(frozen=True, slots=True)
class _Snap:
    status: str
    join_at: datetime
    meeting_url: str
    settings: str  # key, config and overrides, canonical JSON


def _snap(bot: Bot) -> _Snap:
    settings = json.dumps(
        [
            bot.deduplication_key,
            bot.bot_config,
            bot.join_at_override,
            bot.lead_time_seconds,
            bot.meeting_url_override,
        ],
        sort_keys=True,
        default=str,
    )
    return _Snap(bot.status, bot.join_at, bot.meeting_url, settings)


def classify(before: _Snap | None, after: _Snap) -> str | None:
    """The webhook type announcing ``before`` → ``after``, or None (see the table)."""
    was_live = before is not None and before.status in LIVE_STATUSES
    if after.status == "failed":
        return BOT_FAILED if before is None or before.status != "failed" else None
    if after.status == "cancelled":
        return BOT_CANCELLED if was_live else None
    if after.status == "scheduled" and not was_live:
        return BOT_SCHEDULED
    if after.status in LIVE_STATUSES and was_live and before is not None:
        moved = (before.join_at, before.meeting_url) != (after.join_at, after.meeting_url)
        if moved or before.settings != after.settings:
            return BOT_UPDATED
    return None


class BotChanges:
    def __init__(self) -> None:
        self._before: dict[str, _Snap | None] = {}
        self._bots: dict[str, Bot] = {}

    def seen(self, bot: Bot) -> None:
        """Remember ``bot`` as it is now, unless already remembered in this operation."""
        if bot.id not in self._before:
            self._before[bot.id] = _snap(bot)
        self._bots[bot.id] = bot

    def created(self, bot: Bot) -> None:
        self._before[bot.id] = None
        self._bots[bot.id] = bot

    def is_new(self, bot_id: str) -> bool:
        return bot_id in self._before and self._before[bot_id] is None

    def forget(self, bot_id: str) -> None:
        self._before.pop(bot_id, None)
        self._bots.pop(bot_id, None)

    def pending(self) -> list[tuple[Bot, str]]:
        out = []
        for bot_id, bot in self._bots.items():
            kind = classify(self._before[bot_id], _snap(bot))
            if kind is not None:
                out.append((bot, kind))
        return out

    async def announce(self, session: AsyncSession, now: datetime) -> list[tuple[str, str]]:
        """Enqueue one webhook per net change; return ``(bot_id, type)`` pairs. Flushes."""
        await session.flush()
        items = self.pending()
        if not items:
            return []
        events = await event_ids_of(session, [bot.id for bot, _ in items])
        for bot, kind in items:
            await enqueue(
                session,
                tenant_id=bot.tenant_id,
                event_type=kind,
                data=bot_json(bot, events.get(bot.id, [])),
                now=now,
            )
            # Announced: the next announce() of this operation starts from here.
            self._before[bot.id] = _snap(bot)
        return [(bot.id, kind) for bot, kind in items]
