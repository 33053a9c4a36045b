"""How push notifications move a calendar's sync schedule (DESIGN invariant 1).

A notification never syncs; it only makes the calendar due (:func:`request_sync`):

- ``next_sync_at`` becomes ``due`` (normally *now*) unless it is already earlier: a burst
  of notifications is one sync, and a notification never delays a sync;
- ``sync_requested_at`` records the request. Claiming a calendar for a sync clears it
  (the claim's own UPDATE, ``sync/runner.SyncJobs``), so a notification arriving *while*
  that sync runs leaves it set, and the sync, when it finishes, runs again
  (:func:`after_sync`). Without this, the finishing sync would overwrite
  ``next_sync_at`` and the change would wait 24 hours;
- while ``sync_requested_at`` is set, more notifications change nothing (no write): the
  sync already requested starts after them and sees their changes. This is why rate
  limiting can never lose the final sync.

After a successful sync, the next one is due in ``push_safety_interval`` (24 h) when the
calendar has a live channel (bounded by that channel's expiration), else in
``poll_interval`` (5 min): "notifications are not 100% reliable, so poll as a backstop"
(PROTOCOLS §1.5).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import case, exists, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from showup.config import Settings
from showup.db.channel_models import PushChannel
from showup.db.models import Calendar
from showup.db.types import UTCDateTime
from showup.providers.base import CalendarProvider, PushProvider
from showup.runtime import Runtime

# The receiver path of each platform, under SHOWUP_PUBLIC_URL (not under /api/v2: the
# provider calls it, without an API key).
PUSH_PATHS = {"google_calendar": "/push/google", "microsoft_outlook": "/push/microsoft"}


def push_address(settings: Settings, platform: str) -> str | None:
    if not settings.public_url or platform not in PUSH_PATHS:
        return None
    return settings.public_url + PUSH_PATHS[platform]


def renew_time(now: datetime, expiration: datetime, margin: timedelta) -> datetime:
    """When to renew a channel expiring at ``expiration``: ``margin`` before, but never
    later than halfway through the life the provider actually granted (it may grant less)."""
    life = expiration - now
    if life <= timedelta(0):
        return now
    return expiration - min(margin, life / 2)


def describe_interval(interval: timedelta) -> str:
    seconds = int(interval.total_seconds())
    for unit, size in (("hour", 3600), ("minute", 60)):
        if seconds % size == 0 and seconds >= size:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{seconds} seconds"


def unavailable_reason(
    settings: Settings, providers: dict[str, CalendarProvider], platform: str
) -> str | None:
    """Why a calendar of ``platform`` cannot have push, or None when it can."""
    polling = f"polling every {describe_interval(settings.poll_interval)}"
    provider = providers.get(platform)
    if provider is None or not isinstance(provider, PushProvider):
        return f"push notifications are not supported for {platform} yet; {polling}"
    if not settings.public_url:
        return f"SHOWUP_PUBLIC_URL is not set, so the provider cannot reach us; {polling}"
    if not settings.public_url.startswith("https://") and not settings.push_allow_http:
        return (
            "SHOWUP_PUBLIC_URL is not HTTPS, which providers require for push "
            f"(SHOWUP_PUSH_ALLOW_HTTP is for development only); {polling}"
        )
    return None


def set_push_status(cal: Calendar, status: str, reason: str | None) -> None:
    if cal.push_status != status:
        cal.push_status = status
    if cal.push_reason != reason:
        cal.push_reason = reason


async def after_sync(session: AsyncSession, rt: Runtime, cal: Calendar, now: datetime) -> datetime:
    """``next_sync_at`` for ``cal``, which just synced; asks for a channel if it has none.

    Called in the sync's final transaction, with the calendar row already written (so
    locked on PostgreSQL) by the lease heartbeat: a notification's :func:`request_sync`
    is either committed before (and seen here) or waits and applies after.
    """
    from showup.push.lifecycle import want_channel  # lifecycle imports this module

    s = rt.settings
    due = now + s.poll_interval
    reason = unavailable_reason(s, rt.providers, cal.platform)
    if reason is not None:
        set_push_status(cal, "unavailable", reason)
    else:
        if cal.push_status == "unavailable":
            set_push_status(cal, "none", None)
        rows = (
            await session.scalars(
                select(PushChannel).where(
                    PushChannel.calendar_id == cal.id,
                    PushChannel.status.in_(("pending", "active")),
                )
            )
        ).all()
        live_until = max(
            (
                r.expiration
                for r in rows
                if r.status == "active" and r.expiration is not None and r.expiration > now
            ),
            default=None,
        )
        if live_until is not None:
            # Never rely on a channel past its expiration, renewed or not.
            due = min(now + s.push_safety_interval, live_until)
        elif not any(r.status == "pending" for r in rows) and not await _failed_since(
            session, cal.id, now - s.push_retry_max
        ):
            await want_channel(session, rt, cal, now)
    if cal.sync_requested_at is not None:  # notified while this sync ran: run again
        due = min(due, cal.sync_requested_at)
    return due


async def _failed_since(session: AsyncSession, calendar_id: str, since: datetime) -> bool:
    """A channel creation failed for good recently: wait before asking again."""
    found = await session.scalar(
        select(
            exists().where(
                PushChannel.calendar_id == calendar_id,
                PushChannel.status == "failed",
                PushChannel.updated_at > since,
            )
        )
    )
    return bool(found)


async def request_sync(session: AsyncSession, calendar_id: str, due: datetime) -> bool:
    """Make the calendar due at ``due`` (or keep it earlier). False when nothing changed.

    One conditional UPDATE, atomic on both databases. Nothing is written when a request
    at or before ``due`` is already pending (coalesced), when the calendar is disconnected
    (no syncs), or when it is retrying after failed syncs: that retry is already scheduled,
    starts after this notification, and a notification must not cut a backoff short. (A
    calendar waiting out a provider's ``Retry-After`` looks like any other here; the
    per-calendar limiter bounds how often notifications can cut that wait short.)
    """
    due_value = literal(due, UTCDateTime())
    res = await session.execute(
        update(Calendar)
        .where(
            Calendar.id == calendar_id,
            Calendar.status != "disconnected",
            Calendar.sync_failures == 0,
            or_(Calendar.sync_requested_at.is_(None), Calendar.sync_requested_at > due),
        )
        .values(
            sync_requested_at=due,
            next_sync_at=case(
                (
                    or_(Calendar.next_sync_at.is_(None), Calendar.next_sync_at > due_value),
                    due_value,
                ),
                else_=Calendar.next_sync_at,
            ),
        )
        .execution_options(synchronize_session=False)
    )
    return bool(res.rowcount)  # type: ignore[attr-defined]
