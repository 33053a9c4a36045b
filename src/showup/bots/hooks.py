"""Entry points for other stages: call these inside the transaction that made the change.

- sync (``sync/runner.py``): :func:`events_changed` with a page's changed event ids, before
  the page commits, so a moved event and its moved bot commit together;
  :func:`calendar_changed` when a calendar's status changes (disconnected: its bots are
  cancelled unless another live event shares them; reconnected: they come back).
- calendar deletion (``calendars/service.py``): :func:`bots_of_calendar` before deleting,
  :func:`calendar_deleted` after.

Each is one ``reconcile`` call; see ``bots/reconcile.py`` for the contract.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from showup.bots.policy import BotPolicy
from showup.bots.reconcile import affected_bots, reconcile
from showup.config import Settings


async def events_changed(
    session: AsyncSession, event_ids: Sequence[str], *, now: datetime, settings: Settings
) -> None:
    if event_ids:
        await reconcile(
            session, now=now, policy=BotPolicy.from_settings(settings), event_ids=event_ids
        )


async def calendar_changed(
    session: AsyncSession, calendar_id: str, *, now: datetime, settings: Settings
) -> None:
    await reconcile(
        session, now=now, policy=BotPolicy.from_settings(settings), calendar_ids=[calendar_id]
    )


async def bots_of_calendar(session: AsyncSession, calendar_id: str) -> set[str]:
    return await affected_bots(session, calendar_ids=[calendar_id])


async def calendar_deleted(
    session: AsyncSession, bot_ids: set[str], *, now: datetime, settings: Settings
) -> None:
    """After a calendar and its events (and so their links) are gone."""
    if bot_ids:
        await reconcile(
            session,
            now=now,
            policy=BotPolicy.from_settings(settings),
            bot_ids=bot_ids,
            cause="calendar_deleted",
        )
