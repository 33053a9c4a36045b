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

Transactions per sync are few, since on SQLite each one takes the single write lock and
costs about a millisecond of event-loop CPU (BENCHMARKS.md, "ingest"):

- the **claim** (:class:`SyncJobs`) leases the calendars and, in the same transaction,
  reads what their syncs start from (:class:`Snapshot`: cursor, window, credentials, and
  whether the calendar has any event yet: a first sync has none to look up);
- the **last page** of the sync's last round is applied in one transaction with
  everything that ends the sync: the events a full sync no longer saw are deleted, and the
  cursor, status, schedule and lease release are written (:meth:`CalendarSync._finish`).
  The cursor still commits only with the last page, so a crash before that commit re-runs
  the round, as before. Earlier pages keep their own transactions.

So a one-page sync takes two transactions, claim included, and one that finds nothing
writes only its schedule. Each committed transaction notes the tables it wrote in
:attr:`SyncOutcome.wrote`, which tells the worker which job kinds the sync fed (a moved
bot, a queued webhook, a wanted push channel).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import ColumnElement, event, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import ORMExecuteState, Session

from showup.backoff import backoff
from showup.bots import hooks as bot_hooks
from showup.calendars.service import record_status, status_changed
from showup.db.models import Calendar, Event
from showup.jobs.leases import claim_due, next_due
from showup.providers.base import (
    CalendarProvider,
    ChangePage,
    OAuthCredentials,
    SyncWindow,
)
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
from showup.security.vault import Vault
from showup.sync import announce
from showup.sync.apply import (
    Applied,
    PreparedInserts,
    apply_actions,
    load_stored,
    mark_deleted,
    prepare_inserts,
)
from showup.sync.plan import Action, Encoded, Stored, encode_page, overlaps, plan_page
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
    # Tables this sync's committed transactions wrote: the worker claims again the job
    # kinds over those tables (a moved bot, a queued webhook delivery, a wanted channel).
    wrote: set[str] = field(default_factory=set)

    def add(self, applied: Applied) -> None:
        self.inserted += len(applied.inserted)
        self.updated += len(applied.updated)
        self.deleted += len(applied.deleted)
        self.changed_event_ids.extend(applied.changed_ids)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What a sync starts from, read when its calendar is claimed."""

    id: str
    tenant_id: str
    platform: str
    platform_calendar_id: str
    platform_email: str | None
    cursor: str | None
    window_end: datetime | None
    webhook_url: str | None
    oauth_client_id: str
    oauth_tenant_id: str | None
    client_secret_enc: bytes
    refresh_token_enc: bytes
    # Whether the calendar had any event row (deleted ones too) when claimed. Only the
    # lease holder writes a calendar's events, so without any, a sync needs neither to look
    # up its first page's events nor to look for events a full round no longer lists.
    has_events: bool = True

    def credentials(self, vault: Vault) -> OAuthCredentials:
        return OAuthCredentials(
            client_id=self.oauth_client_id,
            client_secret=vault.open(self.tenant_id, self.client_secret_enc),
            refresh_token=vault.open(self.tenant_id, self.refresh_token_enc),
            oauth_tenant=self.oauth_tenant_id,
        )


# Snapshot's fields (a Core select: no ORM objects for a read).
_SNAPSHOT = (
    Calendar.id,
    Calendar.tenant_id,
    Calendar.platform,
    Calendar.platform_calendar_id,
    Calendar.platform_email,
    Calendar.sync_cursor.label("cursor"),
    Calendar.window_end,
    Calendar.webhook_url,
    Calendar.oauth_client_id,
    Calendar.oauth_tenant_id,
    Calendar.oauth_client_secret_enc.label("client_secret_enc"),
    Calendar.oauth_refresh_token_enc.label("refresh_token_enc"),
    select(Event.id).where(Event.calendar_id == Calendar.id).exists().label("has_events"),
)


def _snapshot(values: dict[str, Any]) -> Snapshot:
    values["has_events"] = bool(values["has_events"])  # SQLite answers 0 or 1
    return Snapshot(**values)


async def load_snapshots(session: AsyncSession, calendar_ids: Sequence[str]) -> dict[str, Snapshot]:
    rows = await session.execute(select(*_SNAPSHOT).where(Calendar.id.in_(calendar_ids)))
    return {row.id: _snapshot(row._asdict()) for row in rows}


class SyncJobs:
    """Claim and run of one provider's sync job kind (``jobs/kinds.py``).

    The claim's transaction also reads the claimed calendars' snapshots (and, for
    ``claim_next``, when the next calendar is due), so a sync needs no transaction of its
    own to start.
    """

    def __init__(self, platform: str) -> None:
        self.platform = platform
        self._ready: dict[str, Snapshot] = {}

    def _where(self) -> tuple[ColumnElement[bool], ...]:
        return (Calendar.platform == self.platform, Calendar.status != "disconnected")

    async def claim(self, rt: Runtime, owner: str, limit: int) -> list[str]:
        ids, _ = await self._claim(rt, owner, limit, want_due=False)
        return ids

    async def claim_next(
        self, rt: Runtime, owner: str, limit: int
    ) -> tuple[list[str], datetime | None]:
        """As :meth:`claim`; with room to spare, also the next due time after now."""
        return await self._claim(rt, owner, limit, want_due=True)

    async def _claim(
        self, rt: Runtime, owner: str, limit: int, *, want_due: bool
    ) -> tuple[list[str], datetime | None]:
        now = rt.clock.now()
        due: datetime | None = None
        async with rt.sessions() as session:
            ids = await claim_due(
                session,
                Calendar,
                Calendar.next_sync_at,
                now=now,
                owner=owner,
                lease=rt.settings.lease_duration,
                limit=limit,
                where=self._where(),
                # These syncs cover every push notification so far (push/schedule.py):
                # the claim's own UPDATE clears the request.
                values={"sync_requested_at": None},
            )
            snapshots = await load_snapshots(session, ids) if ids else {}
            if want_due and len(ids) < limit:
                due = await next_due(session, Calendar.next_sync_at, now=now, where=self._where())
            await session.commit()
        self._ready.update(snapshots)
        return ids, due

    async def run(self, rt: Runtime, calendar_id: str, owner: str) -> SyncOutcome:
        # Through the module's sync_calendar, looked up now: a wrapper of it (the
        # push-latency benchmark's probe) sees every sync job.
        snapshot = self._ready.pop(calendar_id, None)
        return await sync_calendar(rt, calendar_id, owner, snapshot=snapshot)


def _watch_writes(session: AsyncSession, tables: set[str]) -> None:
    """Note in ``tables`` every table ``session`` writes, by flush or by statement."""

    def flushed(s: Session, _context: Any) -> None:
        for obj in (*s.new, *s.dirty, *s.deleted):
            tables.add(type(obj).__tablename__)

    def executed(state: ORMExecuteState) -> None:
        if state.is_insert or state.is_update or state.is_delete:
            name = getattr(getattr(state.statement, "table", None), "name", None)
            if isinstance(name, str):
                tables.add(name)

    event.listen(session.sync_session, "after_flush", flushed)
    event.listen(session.sync_session, "do_orm_execute", executed)


@dataclass(frozen=True, slots=True)
class _PageWork:
    """A page and what was made of it before its transaction (CalendarSync._prepare)."""

    page: ChangePage
    encoded: dict[str, Encoded]
    # Planned ahead only when the calendar had no stored events (nothing to look up).
    actions: list[Action] | None = None
    prepared: PreparedInserts | None = None


@dataclass(frozen=True, slots=True)
class _Finish:
    """How the sync ends, applied with the last page of its last round."""

    email: str | None
    window: SyncWindow
    # The cursor to store; None: the round's own (the tail round keeps the incremental one).
    cursor: str | None = None


class CalendarSync:
    def __init__(
        self, runtime: Runtime, calendar_id: str, owner: str, snapshot: Snapshot | None = None
    ) -> None:
        self.rt = runtime
        self.calendar_id = calendar_id
        self.owner = owner
        self.snapshot = snapshot
        self.outcome = SyncOutcome(calendar_id, "skipped")
        self.announced = False  # a calendar.sync_events went out with this sync
        # The calendar may have event rows (False: none when claimed, none inserted since).
        self.stored = True

    async def run(self) -> SyncOutcome:
        snap = self.snapshot or await self._load_snapshot()
        if snap is None:
            return self.outcome
        self.stored = snap.has_events
        provider = self.rt.provider(snap.platform)
        tokens = CalendarTokens(
            calendar_id=snap.id,
            tenant_id=snap.tenant_id,
            creds=snap.credentials(self.rt.vault),
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

    async def _load_snapshot(self) -> Snapshot | None:
        """The snapshot when the claim did not take one (a sync run on its own)."""
        async with self.rt.sessions() as session:
            row = (
                await session.execute(
                    select(Calendar.lease_owner, Calendar.status, *_SNAPSHOT).where(
                        Calendar.id == self.calendar_id
                    )
                )
            ).first()
        if row is None or row.lease_owner != self.owner or row.status == "disconnected":
            return None
        values = row._asdict()
        del values["lease_owner"], values["status"]
        return _snapshot(values)

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[AsyncSession]:
        """A session committed when the block ends; the tables it wrote go to the outcome."""
        tables: set[str] = set()
        async with self.rt.sessions() as session:
            _watch_writes(session, tables)
            yield session
            await session.commit()
        self.outcome.wrote |= tables

    async def _sync(
        self, snap: Snapshot, provider: CalendarProvider, tokens: CalendarTokens
    ) -> None:
        now = self.rt.clock.now()
        s = self.rt.settings
        window = SyncWindow(now - s.sync_window_past, now + s.sync_window_future)
        email = snap.platform_email
        if email is None:
            info = await provider.get_calendar(tokens, snap.platform_calendar_id)
            email = info.email.lower() if info.email else None
        if snap.cursor is not None:
            tail = None
            if snap.window_end is not None and window.end - snap.window_end >= _EXTEND_AFTER:
                tail = SyncWindow(snap.window_end, window.end)
            try:
                cursor = await self._round(
                    snap,
                    provider,
                    tokens,
                    snap.cursor,
                    window,
                    full=False,
                    finish=None if tail else _Finish(email, window),
                )
            except CursorExpired:
                activity.info("calendar %s: sync cursor expired, running a full sync", snap.id)
            else:
                if tail is None:
                    return  # ended with its last page
                if cursor is not None:
                    finish = _Finish(email, window, cursor)
                    await self._round(snap, provider, tokens, None, tail, full=False, finish=finish)
                    return
                # A round without a last page left no cursor to keep: a full sync instead.
        self.outcome.full = True
        await self._round(
            snap, provider, tokens, None, window, full=True, finish=_Finish(email, window)
        )

    async def _round(
        self,
        snap: Snapshot,
        provider: CalendarProvider,
        tokens: CalendarTokens,
        cursor: str | None,
        window: SyncWindow,
        *,
        full: bool,
        finish: _Finish | None,
    ) -> str | None:
        """Fetch and apply one round of pages; return the round's new cursor.

        With ``finish`` (the sync's last round; a full round always is), the last page's
        transaction also ends the sync: unseen events deleted (full), cursor and schedule
        stored, lease released.
        """
        seen: set[str] = set()
        new_cursor: str | None = None
        # Events stored before a full round and not listed by it are deleted at its end;
        # with none stored, there is nothing to look for.
        unseen = full and self.stored
        async for page in provider.list_changes(
            tokens, snap.platform_calendar_id, cursor=cursor, window=window
        ):
            self.outcome.pages += 1
            if full:
                seen.update(e.platform_id for e in page.upserts)
            if page.is_last:
                new_cursor = page.next_cursor
            # Encoded (and, with nothing stored, planned) before the transaction: that CPU
            # stays outside SQLite's write lock.
            work = self._prepare(snap, page, window)
            if page.is_last and finish is not None:
                await self._last_page(
                    snap, work, window, seen if unseen else None, finish, new_cursor
                )
                return new_cursor
            async with self._transaction() as session:
                await self._heartbeat(session)
                now = self.rt.clock.now()
                applied = await self._apply(session, snap, work, window, now)
                await self._changed(session, snap, applied, [], now)
        if finish is not None:  # the round ended without a last page: end the sync anyway
            await self._last_page(snap, None, window, seen if unseen else None, finish, new_cursor)
        return new_cursor

    async def _last_page(
        self,
        snap: Snapshot,
        page: _PageWork | None,
        window: SyncWindow,
        seen: set[str] | None,
        finish: _Finish,
        cursor: str | None,
    ) -> None:
        async with self._transaction() as session:
            cal = await self._fence(session)
            now = self.rt.clock.now()
            applied = await self._apply(session, snap, page, window, now) if page else None
            gone = (
                await self._delete_unseen(session, snap, window, seen, now)
                if seen is not None
                else []
            )
            await self._changed(session, snap, applied, gone, now)
            await self._finish(session, cal, finish, finish.cursor or cursor, now)
        self._synced(cal)

    def _prepare(self, snap: Snapshot, page: ChangePage, window: SyncWindow) -> _PageWork:
        """What can be made of ``page`` before its transaction: the events' JSON and
        fingerprints, and, when the calendar has no stored events to plan against, the
        plan and its insert rows."""
        encoded = encode_page(page)
        if self.stored:
            return _PageWork(page, encoded)
        actions = plan_page(page, {}, window, encoded)
        prepared = prepare_inserts(
            actions,
            tenant_id=snap.tenant_id,
            calendar_id=snap.id,
            dialect=self.rt.engine.dialect.name,
        )
        return _PageWork(page, encoded, actions, prepared)

    async def _apply(
        self,
        session: AsyncSession,
        snap: Snapshot,
        work: _PageWork,
        window: SyncWindow,
        now: datetime,
    ) -> Applied | None:
        page = work.page
        actions = work.actions
        if actions is None:
            stored: dict[str, Stored] = {}
            if self.stored:
                stored = await load_stored(
                    session,
                    snap.id,
                    [e.platform_id for e in page.upserts] + [d.platform_id for d in page.deletions],
                )
            actions = plan_page(page, stored, window, work.encoded)
        if not actions:
            return None
        applied = await apply_actions(
            session,
            actions,
            tenant_id=snap.tenant_id,
            calendar_id=snap.id,
            now=now,
            prepared=work.prepared,
        )
        self.outcome.add(applied)
        if applied.inserted:
            self.stored = True
        return applied

    async def _changed(
        self,
        session: AsyncSession,
        snap: Snapshot,
        applied: Applied | None,
        gone: list[str],
        now: datetime,
    ) -> None:
        """The bots of changed events move, and the change is announced, in the same
        transaction as the change (DESIGN 2): one ``calendar.sync_events`` per transaction."""
        # Events inserted just now have no bot yet (a bot links to stored events only), so
        # only updated and deleted ones can move one.
        moved = [*applied.updated, *applied.deleted] if applied else []
        await bot_hooks.events_changed(session, [*moved, *gone], now=now, settings=self.rt.settings)
        if (applied is not None and len(applied)) or gone:
            await announce.events_synced(
                session,
                tenant_id=snap.tenant_id,
                calendar_id=snap.id,
                webhook_url=snap.webhook_url,
                last_updated_ts=now,
                now=now,
            )
            self.announced = True

    async def _delete_unseen(
        self,
        session: AsyncSession,
        snap: Snapshot,
        window: SyncWindow,
        seen: set[str],
        now: datetime,
    ) -> list[str]:
        """After a full sync, stored live events the provider no longer lists are gone."""
        rows = await session.execute(
            select(Event.id, Event.platform_id, Event.start_time, Event.end_time).where(
                Event.calendar_id == snap.id,
                Event.is_deleted.is_(False),
                Event.end_time > window.start,
                Event.start_time < window.end,
            )
        )
        gone = [
            eid for eid, pid, start, end in rows if pid not in seen and overlaps(start, end, window)
        ]
        if gone:
            await mark_deleted(session, gone, now)
            self.outcome.deleted += len(gone)
            self.outcome.changed_event_ids.extend(gone)
        return gone

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

    async def _fence(self, session: AsyncSession) -> Calendar:
        """Our calendar row, locked (PostgreSQL; SQLite has one writer), for a transaction
        that ends the sync and so releases the lease; LeaseLost if another worker has it.

        The fencing is the heartbeat's (the lease owner is still us), without extending a
        lease that this transaction releases.
        """
        cal = await session.get(Calendar, self.calendar_id, with_for_update=True)
        if cal is None or cal.lease_owner != self.owner:
            raise LeaseLost(self.calendar_id)
        return cal

    async def _finish(
        self,
        session: AsyncSession,
        cal: Calendar,
        finish: _Finish,
        cursor: str | None,
        now: datetime,
    ) -> None:
        """Record the successful sync on ``cal``, in the last page's transaction."""
        first = cal.last_synced_at is None
        previous = cal.status
        reconnected = record_status(cal, "connected", self.rt.clock)
        changed = reconnected
        email = finish.email
        if email and cal.platform_email != email:
            cal.platform_email = email
            changed = True
        cal.sync_cursor = cursor
        if self.outcome.full or cal.window_start is None:
            cal.window_start = finish.window.start
        cal.window_end = finish.window.end
        cal.last_synced_at = now
        if self.outcome.full:
            cal.last_full_sync_at = now
        cal.sync_failures = 0
        if cal.last_error is not None:
            cal.last_error = None
            changed = True
        self._release(cal)
        if changed:
            cal.updated_at = now
        # Every field is set before anything below flushes: one UPDATE of the row (two
        # when after_sync adds a push channel, which flushes before next_sync_at is known).
        cal.next_sync_at = await push_schedule.after_sync(session, self.rt, cal, now)
        if reconnected:  # (re)connected: bots its disconnection cancelled come back
            await status_changed(
                session, cal, now=now, settings=self.rt.settings, previous=previous
            )
        if first and not self.announced:
            # Recall announces a calendar's first sync even when it found no events.
            await announce.events_synced(
                session,
                tenant_id=cal.tenant_id,
                calendar_id=cal.id,
                webhook_url=cal.webhook_url,
                last_updated_ts=now,
                now=now,
            )

    def _synced(self, cal: Calendar) -> None:
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

    async def _finish_disconnected(self, snap: Snapshot, reason: str, message: str) -> None:
        async with self._transaction() as session:
            cal = await self._fence(session)
            now = self.rt.clock.now()
            if record_status(cal, "disconnected", self.rt.clock, reason, {"error": message}):
                cal.updated_at = now
                await status_changed(session, cal, now=now, settings=self.rt.settings)
            cal.last_error = message
            cal.last_error_at = now
            cal.next_sync_at = None
            await push_lifecycle.calendar_disconnected(session, cal, now)
            self._release(cal)
        self.rt.tokens.drop_calendar(snap.id)
        self.outcome.result = "disconnected"
        self.outcome.error = message
        activity.warning("calendar %s disconnected: %s", snap.id, reason)

    async def _finish_rate_limited(self, exc: RateLimited) -> None:
        s = self.rt.settings
        async with self._transaction() as session:
            cal = await self._fence(session)
            now = self.rt.clock.now()
            delay = exc.retry_after or backoff(
                cal.sync_failures + 1, base=s.retry_backoff_base, cap=s.retry_backoff_max
            )
            cal.next_sync_at = now + delay
            self._release(cal)
        self.outcome.result = "rate_limited"
        self.outcome.next_sync_at = cal.next_sync_at
        log.info("calendar %s rate limited; retrying in %s", self.calendar_id, delay)

    async def _finish_failed(self, message: str) -> None:
        s = self.rt.settings
        async with self._transaction() as session:
            cal = await self._fence(session)
            now = self.rt.clock.now()
            cal.sync_failures += 1
            cal.last_error = message
            cal.last_error_at = now
            cal.next_sync_at = now + backoff(
                cal.sync_failures, base=s.retry_backoff_base, cap=s.retry_backoff_max
            )
            self._release(cal)
        self.outcome.result = "failed"
        self.outcome.error = message
        self.outcome.next_sync_at = cal.next_sync_at
        log.warning("sync of calendar %s failed (%s); retrying", self.calendar_id, message)

    @staticmethod
    def _release(cal: Calendar) -> None:
        cal.lease_owner = None
        cal.lease_expires_at = None


async def sync_calendar(
    runtime: Runtime, calendar_id: str, owner: str, *, snapshot: Snapshot | None = None
) -> SyncOutcome:
    """Sync one calendar whose lease ``owner`` holds, from the ``snapshot`` its claim read
    (None: read here, in a transaction of its own)."""
    return await CalendarSync(runtime, calendar_id, owner, snapshot).run()
