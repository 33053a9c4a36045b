"""Job kinds: which rows are due, and what runs for one of them.

Adding a kind of background work (bot dispatch, webhook delivery, channel renewal) means
adding a :class:`JobKind` here; the worker loop stays the same.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement

from showup.bots.dispatcher import Dispatcher
from showup.db.bot_models import LIVE_STATUSES, Bot
from showup.db.channel_models import CLAIMABLE, PushChannel
from showup.db.models import Calendar
from showup.db.webhook_models import WebhookDelivery
from showup.jobs.leases import claim_due, next_due
from showup.push.job import claim_channels, run_channel
from showup.push.schedule import reset_requests
from showup.runtime import Runtime
from showup.webhooks.delivery import Deliverer

Claim = Callable[[Runtime, str, int], Coroutine[Any, Any, list[str]]]
Run = Callable[[Runtime, str, str], Coroutine[Any, Any, object]]
NextDue = Callable[[Runtime], Coroutine[Any, Any, datetime | None]]
ClaimNext = Callable[[Runtime, str, int], Coroutine[Any, Any, tuple[list[str], datetime | None]]]


@dataclass(frozen=True)
class JobKind:
    name: str
    concurrency: int
    claim: Claim
    run: Run
    # When the next row of this kind that is not due yet becomes due (None: no such row).
    # ``Worker.run_forever`` sleeps until then rather than finding it on its next poll,
    # so a bot is launched at its join time, not up to a poll interval later.
    next_due: NextDue | None = None
    # Kinds whose rows this kind's jobs create or move (a sync schedules bots and enqueues
    # webhooks): run_forever claims them again when such a job finishes, not at the poll.
    feeds: tuple[str, ...] = ()
    # ``claim`` that, when it came back with room to spare, also tells ``next_due`` from
    # its own transaction (one transaction less per wake-up for run_forever).
    claim_next: ClaimNext | None = None


def _next_due(due_col: Any, *where: ColumnElement[bool]) -> NextDue:
    """A ``next_due`` over the same rows as the kind's claim (same due column and filter)."""

    async def earliest(rt: Runtime) -> datetime | None:
        async with rt.sessions() as session:
            return await next_due(session, due_col, now=rt.clock.now(), where=where)

    return earliest


def _sync_claim(platform: str) -> Claim:
    async def claim(rt: Runtime, owner: str, limit: int) -> list[str]:
        async with rt.sessions() as session:
            ids = await claim_due(
                session,
                Calendar,
                Calendar.next_sync_at,
                now=rt.clock.now(),
                owner=owner,
                lease=rt.settings.lease_duration,
                limit=limit,
                where=(Calendar.platform == platform, Calendar.status != "disconnected"),
            )
            # These syncs cover every push notification so far (push/schedule.py).
            await reset_requests(session, ids)
            await session.commit()
        return ids

    return claim


async def _sync_run(rt: Runtime, calendar_id: str, owner: str) -> object:
    from showup.sync.runner import sync_calendar

    return await sync_calendar(rt, calendar_id, owner)


def default_kinds(rt: Runtime) -> list[JobKind]:
    return [
        JobKind(
            name=f"sync:{platform}",
            concurrency=rt.settings.sync_concurrency_per_provider,
            claim=_sync_claim(platform),
            run=_sync_run,
            next_due=_next_due(
                Calendar.next_sync_at,
                Calendar.platform == platform,
                Calendar.status != "disconnected",
            ),
            # A first sync asks for a push channel, due at once.
            feeds=("bots", "webhooks", "push"),
        )
        for platform in rt.providers
    ] + [_webhook_kind(rt), _bot_kind(rt), _push_kind(rt)]


def _webhook_kind(rt: Runtime) -> JobKind:
    # Claims prepare the deliveries they take and tell the next due time; attempts are
    # recorded in groups (webhooks/delivery.py, Deliverer).
    deliverer = Deliverer(rt)
    return JobKind(
        name="webhooks",
        concurrency=rt.settings.webhook_concurrency,
        claim=deliverer.claim,
        run=deliverer.run,
        # Over the claim's rows (the bots kind's pattern: claim_next tells it to run_forever).
        next_due=_next_due(WebhookDelivery.next_attempt_at, WebhookDelivery.status == "pending"),
        claim_next=deliverer.claim_next,
    )


def _bot_kind(rt: Runtime) -> JobKind:
    # Launch each bot at its join time (bots/dispatch.py), claims and records shared by
    # the launches of a batch (bots/dispatcher.py).
    dispatcher = Dispatcher(rt)
    return JobKind(
        name="bots",
        concurrency=rt.settings.bot_dispatch_concurrency,
        claim=dispatcher.claim,
        run=dispatcher.run,
        next_due=_next_due(Bot.next_attempt_at, Bot.status.in_(LIVE_STATUSES)),
        claim_next=dispatcher.claim_next,
    )


def _push_kind(rt: Runtime) -> JobKind:
    # Open, renew and stop push channels at their renew_at (push/job.py).
    return JobKind(
        name="push",
        concurrency=rt.settings.push_concurrency,
        claim=claim_channels,
        run=run_channel,
        # As claim_channels.
        next_due=_next_due(PushChannel.renew_at, PushChannel.status.in_(CLAIMABLE)),
        # A renewal makes its successor due at once, and an opened channel its predecessor.
        feeds=("push",),
    )
