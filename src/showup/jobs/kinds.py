"""Job kinds: which rows are due, and what runs for one of them.

Adding a kind of background work (bot dispatch, webhook delivery, channel renewal) means
adding a :class:`JobKind` here; the worker loop stays the same.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from showup.bots.dispatch import claim_bots, dispatch_bot
from showup.db.models import Calendar
from showup.jobs.leases import claim_due
from showup.runtime import Runtime
from showup.webhooks.delivery import claim_deliveries, deliver

Claim = Callable[[Runtime, str, int], Coroutine[Any, Any, list[str]]]
Run = Callable[[Runtime, str, str], Coroutine[Any, Any, object]]


@dataclass(frozen=True)
class JobKind:
    name: str
    concurrency: int
    claim: Claim
    run: Run


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
        )
        for platform in rt.providers
    ] + [_webhook_kind(rt), _bot_kind(rt)]


def _webhook_kind(rt: Runtime) -> JobKind:
    return JobKind(
        name="webhooks",
        concurrency=rt.settings.webhook_concurrency,
        claim=claim_deliveries,
        run=deliver,
    )


def _bot_kind(rt: Runtime) -> JobKind:
    # Launch each bot at its join time (bots/dispatch.py).
    return JobKind(
        name="bots",
        concurrency=rt.settings.bot_dispatch_concurrency,
        claim=claim_bots,
        run=dispatch_bot,
    )
