"""Sync one calendar end to end: the worker's edge for sync jobs.

Each page of changes is planned and applied in its own transaction, together with a lease
heartbeat; the cursor is stored only with the last page, so a crash part-way re-runs the
same round (applying a page twice changes nothing). Errors are mapped onto the calendar's
schedule by type (DESIGN invariant 9):

| error          | effect                                                                 |
|----------------|------------------------------------------------------------------------|
| CursorExpired  | drop the cursor, full sync now; stored events not seen again → deleted |
| AuthRevoked    | status ``disconnected`` with the reason; no more syncs until new creds |
| NotFound       | status ``disconnected`` (calendar gone at the provider)                |
| RateLimited    | retry after Retry-After (or backoff); not counted as a failure         |
| Transient, …   | failures += 1, retry with backoff; the error is shown on the calendar  |
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from showup.backoff import backoff
from showup.bots import hooks as bot_hooks
from showup.calendars.service import credentials, record_status, status_changed
from showup.db.models import Calendar, Event
from showup.providers.base import CalendarProvider, SyncWindow
from showup.providers.errors import (
    AuthRevoked,
    CursorExpired,
    NotFound,
    ProviderError,
    RateLimited,
)
from showup.push import lifecycle as push_lifecycle
from showup.push import schedule as push_schedule
from showup.runtime import Runtime
from showup.sync import announce
from showup.sync.apply import Applied, apply_actions, load_stored, mark_deleted
from showup.sync.plan import overlaps, plan_page
from showup.sync.tokens import CalendarTokens

log = logging.getLogger("showup.sync")
activity = logging.getLogger("showup.activity")

Result = Literal["synced", "rate_limited", "failed", "disconnected", "skipped"]

# Re-fetch the window's new tail once it has moved by this much.
_EXTEND_AFTER = timedelta(hours=1)


class LeaseLost(Exception):
    """Another worker owns this calendar now (our lease expired); stop writing."""


@dataclass(slots=True)
class SyncOutcome:
    calendar_id: str
    result: Result
    full: bool = False
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    pages: int = 0
    changed_event_ids: list[str] = field(default_factory=list)
    error: str | None = None
    next_sync_at: datetime | None = None

    def add(self, applied: Applied) -> None:
        self.inserted += len(applied.inserted)
        self.updated += len(applied.updated)
        self.deleted += len(applied.deleted)
        self.changed_event_ids.extend(applied.changed_ids)


@dataclass(frozen=True, slots=True)
class _Snapshot:
    id: str
    tenant_id: str
    platform: str
    platform_calendar_id: str
    platform_email: str | None
    cursor: str | None
    window_end: datetime | None
    webhook_url: str | None


class CalendarSync:
    def __init__(self, runtime: Runtime, calendar_id: str, owner: str) -> None:
        self.rt = runtime
        self.calendar_id = calendar_id
        self.owner = owner
        self.outcome = SyncOutcome(calendar_id, "skipped")
        self.announced = False  # a calendar.sync_events went out with this sync

    async def run(self) -> SyncOutcome:
        async with self.rt.sessions() as session:
            cal = await session.get(Calendar, self.calendar_id)
            if cal is None or cal.lease_owner != self.owner or cal.status == "disconnected":
                return self.outcome
            snap = _Snapshot(
                cal.id,
                cal.tenant_id,
                cal.platform,
                cal.platform_calendar_id,
                cal.platform_email,
                cal.sync_cursor,
                cal.window_end,
                cal.webhook_url,
            )
            creds = credentials(cal, self.rt.vault)
        provider = self.rt.provider(snap.platform)
        tokens = CalendarTokens(
            calendar_id=snap.id,
            tenant_id=snap.tenant_id,
            creds=creds,
            provider=provider,
            cache=self.rt.tokens,
            clock=self.rt.clock,
            vault=self.rt.vault,
            sessions=self.rt.sessions,
        )
        try:
            await self._sync(snap, provider, tokens)
        except LeaseLost:
            log.warning("lost the lease on calendar %s mid-sync; stopping", snap.id)
            self.outcome.result = "skipped"
            return self.outcome
        except AuthRevoked as exc:
            await self._finish_disconnected(snap, "auth_revoked", str(exc))
        except NotFound as exc:
            await self._finish_disconnected(snap, "calendar_not_found", str(exc))
        except RateLimited as exc:
            await self._finish_rate_limited(exc)
        except ProviderError as exc:
            await self._finish_failed(f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # a bug of ours must not stop the worker or the calendar
            log.exception("sync of calendar %s failed unexpectedly", snap.id)
            await self._finish_failed(f"internal error: {type(exc).__name__}")
        return self.outcome

    async def _sync(
        self, snap: _Snapshot, provider: CalendarProvider, tokens: CalendarTokens
    ) -> None:
        now = self.rt.clock.now()
        s = self.rt.settings
        window = SyncWindow(now - s.sync_window_past, now + s.sync_window_future)
        email = snap.platform_email
        if email is None:
            info = await provider.get_calendar(tokens, snap.platform_calendar_id)
            email = info.email.lower() if info.email else None
        cursor = snap.cursor
        if cursor is not None:
            try:
                cursor = await self._round(snap, provider, tokens, cursor, window, full=False)
            except CursorExpired:
                activity.info("calendar %s: sync cursor expired, running a full sync", snap.id)
                cursor = None
            else:
                if snap.window_end is not None and window.end - snap.window_end >= _EXTEND_AFTER:
                    tail = SyncWindow(snap.window_end, window.end)
                    await self._round(snap, provider, tokens, None, tail, full=False)
        if cursor is None:
            self.outcome.full = True
            cursor = await self._round(snap, provider, tokens, None, window, full=True)
        await self._finish_synced(email, cursor, window)

    async def _round(
        self,
        snap: _Snapshot,
        provider: CalendarProvider,
        tokens: CalendarTokens,
        cursor: str | None,
        window: SyncWindow,
        *,
        full: bool,
    ) -> str | None:
        """Fetch and apply one round of pages; return the round's new cursor."""
        seen: set[str] = set()
        new_cursor: str | None = None
        async for page in provider.list_changes(
            tokens, snap.platform_calendar_id, cursor=cursor, window=window
        ):
            self.outcome.pages += 1
            if full:
                seen.update(e.platform_id for e in page.upserts)
            async with self.rt.sessions() as session:
                await self._heartbeat(session)
                stored = await load_stored(
                    session,
                    snap.id,
                    [e.platform_id for e in page.upserts] + [d.platform_id for d in page.deletions],
                )
                actions = plan_page(page, stored, window)
                if actions:
                    now = self.rt.clock.now()
                    applied = await apply_actions(
                        session, actions, tenant_id=snap.tenant_id, calendar_id=snap.id, now=now
                    )
                    self.outcome.add(applied)
                    # The bots of changed events move, and the change is announced, in this
                    # same transaction (DESIGN 2).
                    await bot_hooks.events_changed(
                        session, applied.changed_ids, now=now, settings=self.rt.settings
                    )
                    if len(applied):
                        await self._announce_events(session, snap, now)
                await session.commit()
            if page.is_last:
                new_cursor = page.next_cursor
        if full:
            await self._delete_unseen(snap, window, seen)
        return new_cursor

    async def _delete_unseen(self, snap: _Snapshot, window: SyncWindow, seen: set[str]) -> None:
        """After a full sync, stored live events the provider no longer lists are gone."""
        async with self.rt.sessions() as session:
            await self._heartbeat(session)
            rows = await session.execute(
                select(Event.id, Event.platform_id, Event.start_time, Event.end_time).where(
                    Event.calendar_id == snap.id,
                    Event.is_deleted.is_(False),
                    Event.end_time > window.start,
                    Event.start_time < window.end,
                )
            )
            gone = [
                eid
                for eid, pid, start, end in rows
                if pid not in seen and overlaps(start, end, window)
            ]
            if gone:
                now = self.rt.clock.now()
                await mark_deleted(session, gone, now)
                await bot_hooks.events_changed(session, gone, now=now, settings=self.rt.settings)
                await self._announce_events(session, snap, now)
                self.outcome.deleted += len(gone)
                self.outcome.changed_event_ids.extend(gone)
            await session.commit()

    async def _announce_events(self, session: AsyncSession, snap: _Snapshot, at: datetime) -> None:
        await announce.events_synced(
            session,
            tenant_id=snap.tenant_id,
            calendar_id=snap.id,
            webhook_url=snap.webhook_url,
            last_updated_ts=at,
            now=at,
        )
        self.announced = True

    async def _heartbeat(self, session: AsyncSession) -> None:
        """Extend our lease, or find out we lost it (fencing for every write)."""
        now = self.rt.clock.now()
        res = await session.execute(
            update(Calendar)
            .where(Calendar.id == self.calendar_id, Calendar.lease_owner == self.owner)
            .values(lease_expires_at=now + self.rt.settings.lease_duration)
            .execution_options(synchronize_session=False)
        )
        if res.rowcount == 0:  # type: ignore[attr-defined]
            raise LeaseLost(self.calendar_id)

    async def _load_owned(self, session: AsyncSession) -> Calendar:
        await self._heartbeat(session)
        cal = await session.get(Calendar, self.calendar_id, populate_existing=True)
        if cal is None:
            raise LeaseLost(self.calendar_id)
        return cal

    async def _finish_synced(
        self, email: str | None, cursor: str | None, window: SyncWindow
    ) -> None:
        now = self.rt.clock.now()
        async with self.rt.sessions() as session:
            cal = await self._load_owned(session)
            changed = record_status(cal, "connected", self.rt.clock)
            if changed:  # (re)connected: bots its disconnection cancelled come back
                await status_changed(session, cal, now=now, settings=self.rt.settings)
            if cal.last_synced_at is None and not self.announced:
                # Recall announces a calendar's first sync even when it found no events.
                await announce.events_synced(
                    session,
                    tenant_id=cal.tenant_id,
                    calendar_id=cal.id,
                    webhook_url=cal.webhook_url,
                    last_updated_ts=now,
                    now=now,
                )
            if email and cal.platform_email != email:
                cal.platform_email = email
                changed = True
            cal.sync_cursor = cursor
            if self.outcome.full or cal.window_start is None:
                cal.window_start = window.start
            cal.window_end = window.end
            cal.last_synced_at = now
            if self.outcome.full:
                cal.last_full_sync_at = now
            cal.sync_failures = 0
            if cal.last_error is not None:
                cal.last_error = None
                changed = True
            cal.next_sync_at = await push_schedule.after_sync(session, self.rt, cal, now)
            self._release(cal)
            if changed:
                cal.updated_at = now
            await session.commit()
        self.outcome.result = "synced"
        self.outcome.next_sync_at = cal.next_sync_at
        if (
            self.outcome.inserted
            or self.outcome.updated
            or self.outcome.deleted
            or self.outcome.full
        ):
            activity.info(
                "calendar %s synced (%s): %d new, %d changed, %d removed",
                self.calendar_id,
                "full" if self.outcome.full else "incremental",
                self.outcome.inserted,
                self.outcome.updated,
                self.outcome.deleted,
            )

    async def _finish_disconnected(self, snap: _Snapshot, reason: str, message: str) -> None:
        async with self.rt.sessions() as session:
            cal = await self._load_owned(session)
            now = self.rt.clock.now()
            if record_status(cal, "disconnected", self.rt.clock, reason, {"error": message}):
                cal.updated_at = now
                await status_changed(session, cal, now=now, settings=self.rt.settings)
            cal.last_error = message
            cal.last_error_at = now
            cal.next_sync_at = None
            await push_lifecycle.calendar_disconnected(session, cal, now)
            self._release(cal)
            await session.commit()
        self.rt.tokens.drop_calendar(snap.id)
        self.outcome.result = "disconnected"
        self.outcome.error = message
        activity.warning("calendar %s disconnected: %s", snap.id, reason)

    async def _finish_rate_limited(self, exc: RateLimited) -> None:
        s = self.rt.settings
        async with self.rt.sessions() as session:
            cal = await self._load_owned(session)
            now = self.rt.clock.now()
            delay = exc.retry_after or backoff(
                cal.sync_failures + 1, base=s.retry_backoff_base, cap=s.retry_backoff_max
            )
            cal.next_sync_at = now + delay
            self._release(cal)
            await session.commit()
        self.outcome.result = "rate_limited"
        self.outcome.next_sync_at = cal.next_sync_at
        log.info("calendar %s rate limited; retrying in %s", self.calendar_id, delay)

    async def _finish_failed(self, message: str) -> None:
        s = self.rt.settings
        async with self.rt.sessions() as session:
            cal = await self._load_owned(session)
            now = self.rt.clock.now()
            cal.sync_failures += 1
            cal.last_error = message
            cal.last_error_at = now
            cal.next_sync_at = now + backoff(
                cal.sync_failures, base=s.retry_backoff_base, cap=s.retry_backoff_max
            )
            self._release(cal)
            await session.commit()
        self.outcome.result = "failed"
        self.outcome.error = message
        self.outcome.next_sync_at = cal.next_sync_at
        log.warning("sync of calendar %s failed (%s); retrying", self.calendar_id, message)

    @staticmethod
    def _release(cal: Calendar) -> None:
        cal.lease_owner = None
        cal.lease_expires_at = None


async def sync_calendar(runtime: Runtime, calendar_id: str, owner: str) -> SyncOutcome:
    """Sync one calendar whose lease ``owner`` holds."""
    return await CalendarSync(runtime, calendar_id, owner).run()
