"""The ``push`` job: opens, renews and stops channels whose ``renew_at`` is due.

One claimed row, one step, each step committed before the next provider call so a crash
repeats at most one call (DESIGN invariant 1, leases as in ``jobs/leases.py``):

- ``pending`` → ``events.watch`` (PROTOCOLS §1.5) under the row's current id and token,
  both committed first so the receiver knows them when the ``sync`` message arrives
  (it may beat the watch response). Success: ``active``, ``renew_at = expiration -
  margin``, calendar ``push_status = active``, and every *other* active channel of the
  calendar becomes ``stopping``: the new channel is live before the old one is stopped,
  so some channel is always listening. Failure: retry with backoff (transient) or
  ``failed`` (refused); without another live channel the calendar shows ``failed`` with
  the reason and polls every ``poll_interval``.
- ``active`` (renewal due, ``push_renew_margin`` before expiry, at most half the TTL) →
  a provider that extends channels (a :class:`~showup.push.renewal.ChannelRenewer`:
  Graph, §2.4) is asked to, in place (``push.renewal``). Otherwise (Google) a successor
  ``pending`` row (a new id: renewal is not automatic and ids are never reused, §1.5);
  the old row is revisited at its expiration, and if it is still active then, it was
  never replaced: it is marked expired and the calendar syncs now.
- ``stopping`` → ``channels.stop``; NotFound means already gone. Stop attempts end at the
  channel's expiration, when it stops by itself.
"""

from __future__ import annotations

import base64
import logging
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from showup.backoff import backoff
from showup.calendars.service import credentials
from showup.db.channel_models import CLAIMABLE, PushChannel
from showup.db.models import Calendar
from showup.jobs.leases import claim_due
from showup.providers.base import OAuthCredentials, PushProvider, TokenSource
from showup.providers.errors import NotFound, ProviderError, RateLimited, Transient
from showup.push.lifecycle import new_identity, schedule_stop, stop_row, want_channel
from showup.push.outcome import Action, ChannelOutcome, LeaseLost
from showup.push.renewal import ChannelRenewer, InPlaceRenewal
from showup.push.schedule import (
    describe_interval,
    renew_time,
    set_push_status,
    unavailable_reason,
)
from showup.runtime import Runtime
from showup.sync.tokens import CalendarTokens

log = logging.getLogger("showup.push")

# Stopped and failed rows are kept this long for the record, then deleted.
HISTORY = timedelta(days=7)


async def claim_channels(rt: Runtime, owner: str, limit: int) -> list[str]:
    async with rt.sessions() as session:
        ids = await claim_due(
            session,
            PushChannel,
            PushChannel.renew_at,
            now=rt.clock.now(),
            owner=owner,
            lease=rt.settings.lease_duration,
            limit=limit,
            where=(PushChannel.status.in_(CLAIMABLE),),
        )
        await session.commit()
    return ids


async def run_channel(rt: Runtime, row_id: str, owner: str) -> ChannelOutcome:
    return await _ChannelJob(rt, row_id, owner).run()


class _SnapshotTokens:
    """Access tokens from a deleted calendar's saved credentials, for one stop call."""

    def __init__(self, rt: Runtime, platform: str, creds: OAuthCredentials) -> None:
        self._provider = rt.provider(platform)
        self._creds = creds
        self._token: str | None = None

    async def __call__(self, force: bool = False) -> str:
        if self._token is None or force:
            self._token = (await self._provider.refresh_access_token(self._creds)).token
        return self._token


class _ChannelJob(InPlaceRenewal):
    def __init__(self, rt: Runtime, row_id: str, owner: str) -> None:
        self.rt = rt
        self.row_id = row_id
        self.owner = owner

    async def run(self) -> ChannelOutcome:
        try:
            async with self.rt.sessions() as session:
                status = (await self._owned(session)).status
            if status == "pending":
                return await self._create()
            if status == "active":
                return await self._renew()
            if status == "stopping":
                return await self._stop()
            return await self._done("skipped")
        except LeaseLost:
            return ChannelOutcome(self.row_id, "skipped")
        except Exception as exc:  # a bug of ours must not stop the worker or the channel
            log.exception("push channel %s: unexpected error", self.row_id)
            return await self._retry(f"internal error: {type(exc).__name__}")

    # -- helpers ---------------------------------------------------------------------------

    async def _owned(self, session: AsyncSession) -> PushChannel:
        """Extend our lease (fencing every write) and load the row afresh."""
        now = self.rt.clock.now()
        res = await session.execute(
            update(PushChannel)
            .where(PushChannel.id == self.row_id, PushChannel.lease_owner == self.owner)
            .values(lease_expires_at=now + self.rt.settings.lease_duration)
            .execution_options(synchronize_session=False)
        )
        row = await session.get(PushChannel, self.row_id, populate_existing=True)
        if res.rowcount == 0 or row is None:  # type: ignore[attr-defined]
            raise LeaseLost(self.row_id)
        return row

    @staticmethod
    def _release(row: PushChannel) -> None:
        row.lease_owner = None
        row.lease_expires_at = None

    async def _done(self, action: Action, error: str | None = None) -> ChannelOutcome:
        async with self.rt.sessions() as session:
            self._release(await self._owned(session))
            await session.commit()
        return ChannelOutcome(self.row_id, action, error)

    async def _retry(self, error: str, delay: timedelta | None = None) -> ChannelOutcome:
        s = self.rt.settings
        async with self.rt.sessions() as session:
            try:
                row = await self._owned(session)
            except LeaseLost:
                return ChannelOutcome(self.row_id, "skipped", error)
            now = self.rt.clock.now()
            row.attempts += 1
            row.last_error = error
            row.renew_at = now + (
                delay or backoff(row.attempts, base=s.push_retry_base, cap=s.push_retry_max)
            )
            if row.status in ("active", "stopping") and row.expiration is not None:
                row.renew_at = min(row.renew_at, row.expiration)
            row.updated_at = now
            self._release(row)
            await session.commit()
        return ChannelOutcome(self.row_id, "retry", error)

    def _push_provider(self, platform: str) -> PushProvider | None:
        provider = self.rt.providers.get(platform)
        return provider if isinstance(provider, PushProvider) else None

    def _calendar_tokens(self, cal: Calendar) -> CalendarTokens:
        return CalendarTokens(
            calendar_id=cal.id,
            tenant_id=cal.tenant_id,
            creds=credentials(cal, self.rt.vault),
            provider=self.rt.provider(cal.platform),
            cache=self.rt.tokens,
            clock=self.rt.clock,
            vault=self.rt.vault,
            sessions=self.rt.sessions,
        )

    # -- pending: open the channel ---------------------------------------------------------

    async def _create(self) -> ChannelOutcome:
        s = self.rt.settings
        async with self.rt.sessions() as session:
            row = await self._owned(session)
            now = self.rt.clock.now()
            if row.status != "pending":  # changed since the claim; its new state is due
                self._release(row)
                await session.commit()
                return ChannelOutcome(self.row_id, "skipped")
            cal = await session.get(Calendar, row.calendar_id) if row.calendar_id else None
            reason = unavailable_reason(s, self.rt.providers, row.platform)
            provider = self._push_provider(row.platform)
            if cal is None or cal.status == "disconnected" or reason or provider is None:
                stop_row(row, now, reason)
                if cal is not None and reason:
                    set_push_status(cal, "unavailable", reason)
                self._release(row)
                await session.commit()
                return ChannelOutcome(self.row_id, "stopped", reason)
            if row.attempts > 0:
                token = new_identity(self.rt, row)
            else:
                token = self.rt.vault.open(row.tenant_id, row.secret_enc)
            row.updated_at = now
            channel_id, address = row.channel_id, row.address
            calendar_ref = cal.platform_calendar_id
            tokens = self._calendar_tokens(cal)
            await session.commit()  # the receiver must know this id before Google pings it
        try:
            info = await provider.watch(
                tokens, calendar_ref, channel_id, address, token, s.push_channel_ttl
            )
        except ProviderError as exc:
            return await self._create_failed(exc)
        async with self.rt.sessions() as session:
            row = await self._owned(session)
            now = self.rt.clock.now()
            row.resource_id = info.resource_id
            row.expiration = info.expiration
            row.attempts = 0
            row.last_error = None
            row.updated_at = now
            self._release(row)
            if row.status != "pending":  # its calendar left while we were opening it
                schedule_stop(row, now)
                await session.commit()
                return ChannelOutcome(self.row_id, "stopped")
            row.status = "active"
            row.renew_at = renew_time(now, info.expiration, s.push_renew_margin)
            older = await session.scalars(
                select(PushChannel).where(
                    PushChannel.calendar_id == row.calendar_id,
                    PushChannel.status == "active",
                    PushChannel.id != row.id,
                )
            )
            for old in older:  # overlap over: the new channel is live from this commit on
                schedule_stop(old, now)
            # Channel rows before the calendar row, the receiver's lock order (PostgreSQL).
            await session.flush()
            cal = await session.get(Calendar, row.calendar_id) if row.calendar_id else None
            if cal is not None:
                set_push_status(cal, "active", None)
            await session.commit()
        self.rt.notifier.notify()
        log.info("push channel %s open until %s", self.row_id, info.expiration.isoformat())
        return ChannelOutcome(self.row_id, "created")

    async def _create_failed(self, exc: ProviderError) -> ChannelOutcome:
        s = self.rt.settings
        error = f"{type(exc).__name__}: {exc}"
        retryable = isinstance(exc, Transient | RateLimited)
        async with self.rt.sessions() as session:
            row = await self._owned(session)
            now = self.rt.clock.now()
            self._release(row)
            if row.status != "pending":
                stop_row(row, now, error)
                await session.commit()
                return ChannelOutcome(self.row_id, "stopped", error)
            row.attempts += 1
            row.last_error = error
            row.updated_at = now
            if retryable:
                hint = exc.retry_after if isinstance(exc, RateLimited) else None
                row.renew_at = now + (
                    hint or backoff(row.attempts, base=s.push_retry_base, cap=s.push_retry_max)
                )
            else:
                row.status = "failed"
                row.renew_at = None
            cal = await session.get(Calendar, row.calendar_id) if row.calendar_id else None
            if cal is not None:
                await self._show_failure(session, cal, now, error, retryable)
            await session.commit()
        log.warning("push channel %s: creation failed (%s)", self.row_id, error)
        return ChannelOutcome(self.row_id, "retry" if retryable else "failed", error)

    async def _show_failure(
        self, session: AsyncSession, cal: Calendar, now: datetime, error: str, retrying: bool
    ) -> None:
        s = self.rt.settings
        then = ", retrying" if retrying else ""
        live = await session.scalar(
            select(PushChannel.id).where(
                PushChannel.calendar_id == cal.id,
                PushChannel.status == "active",
                PushChannel.expiration > now,
            )
        )
        if live is not None:  # the old channel still listens: only the renewal failed
            set_push_status(cal, "active", f"renewing the channel failed{then}: {error}")
            return
        polling = describe_interval(s.poll_interval)
        set_push_status(
            cal, "failed", f"opening a push channel failed{then}: {error}; polling every {polling}"
        )
        if cal.next_sync_at is not None and cal.next_sync_at > now + s.poll_interval:
            cal.next_sync_at = now + s.poll_interval

    # -- active: renew before it expires -------------------------------------------------------

    async def _renew(self) -> ChannelOutcome:
        s = self.rt.settings
        async with self.rt.sessions() as session:
            row = await self._owned(session)
            now = self.rt.clock.now()
            if row.status != "active":
                self._release(row)
                await session.commit()
                return ChannelOutcome(self.row_id, "skipped")
            cal = None
            if row.calendar_id is not None:
                cal = await session.scalar(
                    select(Calendar).where(Calendar.id == row.calendar_id).with_for_update()
                )
            if row.expiration is None or row.expiration <= now:
                self._release(row)
                stop_row(row, now, "expired before a successor was open")
                if cal is not None:
                    await self._expired(session, cal, now)
                await session.commit()
                return ChannelOutcome(self.row_id, "expired")
            if cal is None or cal.status == "disconnected":
                self._release(row)
                schedule_stop(row, now)
                await session.commit()
                return ChannelOutcome(self.row_id, "stopped")
            renewer = self._renewer(row.platform)
            if renewer is not None and row.resource_id is not None:
                # Extended in place (push.renewal), still under our lease: PATCH is
                # idempotent, so a crash during the call only repeats it.
                channel_id, resource_id = row.channel_id, row.resource_id
                tokens = self._calendar_tokens(cal)
                await session.commit()
                return await self._renew_in_place(renewer, tokens, channel_id, resource_id)
            self._release(row)
            pending = await session.scalar(
                select(PushChannel.id).where(
                    PushChannel.calendar_id == cal.id, PushChannel.status == "pending"
                )
            )
            if pending is None and unavailable_reason(s, self.rt.providers, cal.platform) is None:
                await want_channel(session, self.rt, cal, now)
            row.renew_at = row.expiration  # back then: if still active, it was never replaced
            row.updated_at = now
            await session.commit()
        self.rt.notifier.notify()
        return ChannelOutcome(self.row_id, "renewing")

    def _renewer(self, platform: str) -> ChannelRenewer | None:
        provider = self.rt.providers.get(platform)
        return provider if isinstance(provider, ChannelRenewer) else None

    async def _expired(self, session: AsyncSession, cal: Calendar, now: datetime) -> None:
        live = await session.scalar(
            select(PushChannel.id).where(
                PushChannel.calendar_id == cal.id,
                PushChannel.status == "active",
                PushChannel.id != self.row_id,
                PushChannel.expiration > now,
            )
        )
        if live is None:
            if cal.push_status == "active":
                polling = describe_interval(self.rt.settings.poll_interval)
                reason = f"the push channel expired before it was renewed; polling every {polling}"
                set_push_status(cal, "failed", reason)
            if cal.next_sync_at is not None and cal.next_sync_at > now:
                cal.next_sync_at = now  # catch up at once, and poll from then on

    # -- stopping: stop it at the provider -------------------------------------------------

    async def _stop(self) -> ChannelOutcome:
        async with self.rt.sessions() as session:
            row = await self._owned(session)
            now = self.rt.clock.now()
            if row.status != "stopping":
                self._release(row)
                await session.commit()
                return ChannelOutcome(self.row_id, "skipped")
            provider = self._push_provider(row.platform)
            tokens: TokenSource | None = None
            if row.resource_id is None or (row.expiration is not None and row.expiration <= now):
                error = None  # never opened, or already expired: nothing to stop
            elif provider is None:
                error = f"{row.platform} cannot stop channels"
            else:
                tokens = await self._stop_tokens(session, row)
                error = None if tokens else "no credentials left to stop it; it expires by itself"
            if tokens is None or provider is None or row.resource_id is None:
                stop_row(row, now, error)
                self._release(row)
                await self._purge(session, row, now)
                await session.commit()
                return ChannelOutcome(self.row_id, "stopped", error)
            channel_id, resource_id = row.channel_id, row.resource_id
            await session.commit()
        try:
            await provider.stop_channel(tokens, channel_id, resource_id)
            error = None
        except NotFound:
            error = None  # already gone: the goal
        except (Transient, RateLimited) as exc:
            delay = exc.retry_after if isinstance(exc, RateLimited) else None
            return await self._retry(f"{type(exc).__name__}: {exc}", delay)
        except ProviderError as exc:  # revoked or refused: it expires by itself
            error = f"could not stop it ({type(exc).__name__}: {exc}); it expires by itself"
        async with self.rt.sessions() as session:
            row = await self._owned(session)
            now = self.rt.clock.now()
            stop_row(row, now, error)
            self._release(row)
            await self._purge(session, row, now)
            await session.commit()
        return ChannelOutcome(self.row_id, "stopped", error)

    async def _stop_tokens(self, session: AsyncSession, row: PushChannel) -> TokenSource | None:
        if row.calendar_id is not None:
            cal = await session.get(Calendar, row.calendar_id)
            return self._calendar_tokens(cal) if cal is not None else None
        saved = row.orphan_credentials
        if not saved:
            return None
        vault = self.rt.vault
        creds = OAuthCredentials(
            client_id=str(saved["client_id"]),
            client_secret=vault.open(row.tenant_id, base64.b64decode(saved["client_secret_enc"])),
            refresh_token=vault.open(row.tenant_id, base64.b64decode(saved["refresh_token_enc"])),
            oauth_tenant=saved.get("oauth_tenant_id"),
        )
        return _SnapshotTokens(self.rt, row.platform, creds)

    @staticmethod
    async def _purge(session: AsyncSession, row: PushChannel, now: datetime) -> None:
        """Drop this calendar's (or these orphans') channel history past HISTORY."""
        same = (
            PushChannel.calendar_id == row.calendar_id
            if row.calendar_id is not None
            else (PushChannel.calendar_id.is_(None) & (PushChannel.tenant_id == row.tenant_id))
        )
        await session.execute(
            delete(PushChannel)
            .where(
                same,
                PushChannel.status.in_(("stopped", "failed")),
                PushChannel.updated_at < now - HISTORY,
            )
            .execution_options(synchronize_session=False)
        )
