"""Job kinds: which rows are due, and what runs for one of them.

Adding a kind of background work (bot dispatch, webhook delivery, channel renewal) means
adding a :class:`JobKind` here; the worker loop stays the same.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement

from showup.bots.dispatcher import Dispatcher
from showup.db.bot_models import LIVE_STATUSES, Bot
from showup.db.channel_models import CLAIMABLE, PushChannel
from showup.db.models import Calendar
from showup.db.webhook_models import WebhookDelivery
from showup.jobs.leases import next_due
from showup.push.job import claim_channels, run_channel
from showup.runtime import Runtime
from showup.sync.runner import SyncJobs, SyncOutcome
from showup.webhooks.delivery import Deliverer

Claim = Callable[[Runtime, str, int], Coroutine[Any, Any, list[str]]]
Run = Callable[[Runtime, str, str], Coroutine[Any, Any, object]]
NextDue = Callable[[Runtime], Coroutine[Any, Any, datetime | None]]
Fed = Callable[[object], Iterable[str]]
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
    # webhooks): the worker claims them again when such a job finishes, not at the poll.
    feeds: tuple[str, ...] = ()
    # Which of ``feeds`` one finished job actually fed, from its outcome (None: all of
    # them). A sync that changed nothing then costs no claims of other kinds.
    fed: Fed | None = None
    # ``claim`` that, when it came back with room to spare, also tells ``next_due`` from
    # its own transaction (one transaction less per wake-up for run_forever).
    claim_next: ClaimNext | None = None


def _next_due(due_col: Any, *where: ColumnElement[bool]) -> NextDue:
    """A ``next_due`` over the same rows as the kind's claim (same due column and filter)."""

    async def earliest(rt: Runtime) -> datetime | None:
        async with rt.sessions() as session:
            return await next_due(session, due_col, now=rt.clock.now(), where=where)

    return earliest


# The job kinds over the tables a sync may write besides its own: a finished sync feeds
# a kind only when it wrote that kind's rows (SyncOutcome.wrote), e.g. a moved bot, a
# queued webhook delivery, a push channel wanted by a first sync.
_SYNC_FEEDS = {
    Bot.__tablename__: "bots",
    WebhookDelivery.__tablename__: "webhooks",
    PushChannel.__tablename__: "push",
}


def _sync_fed(outcome: object) -> tuple[str, ...]:
    if not isinstance(outcome, SyncOutcome):
        return tuple(_SYNC_FEEDS.values())
    return tuple(kind for table, kind in _SYNC_FEEDS.items() if table in outcome.wrote)


def _sync_kind(rt: Runtime, platform: str) -> JobKind:
    # The claim also reads the claimed calendars' snapshots and, for run_forever, the next
    # due time (sync/runner.py, SyncJobs).
    jobs = SyncJobs(platform)
    return JobKind(
        name=f"sync:{platform}",
        concurrency=rt.settings.sync_concurrency_per_provider,
        claim=jobs.claim,
        run=jobs.run,
        next_due=_next_due(
            Calendar.next_sync_at,
            Calendar.platform == platform,
            Calendar.status != "disconnected",
        ),
        feeds=tuple(_SYNC_FEEDS.values()),
        fed=_sync_fed,
        claim_next=jobs.claim_next,
    )


def default_kinds(rt: Runtime) -> list[JobKind]:
    return [_sync_kind(rt, platform) for platform in rt.providers] + [
        _webhook_kind(rt),
        _bot_kind(rt),
        _push_kind(rt),
    ]


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
