"""Renewal in place: a channel the provider can extend keeps its identity (PROTOCOLS §2.4).

Graph subscriptions are renewed with ``PATCH /subscriptions/{id}`` and a new
``expirationDateTime``: the same subscription goes on, so there is no overlap to manage
and never a moment without a live channel. Google channels cannot be extended; for them
the job opens a successor instead (``push.job``). The provider says which it can do by
being a :class:`ChannelRenewer`. What the job (whose mixin this is) does with the answer:

==============================  ===================================================
PATCH answer                    the row
==============================  ===================================================
200                             ``expiration`` from the answer, the next
                                ``renew_at`` from that; calendar push ``active``
404 (the subscription is gone)  stopped; a new channel is asked for and the calendar
                                syncs now (notifications may have been lost)
429, 5xx, transport errors,     retried with backoff (``Retry-After`` honoured), the
any other refusal               calendar showing the error; never past
                                ``expiration``, where the expiry path takes over
                                (sync now, poll, a new channel)
==============================  ===================================================

Graph's ``reauthorizationRequired`` lifecycle event only makes the row due now
(``push.graph_receiver``); the PATCH above is its answer ("or PATCH to renew", §2.4).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Protocol, runtime_checkable

from sqlalchemy.ext.asyncio import AsyncSession

from showup.backoff import backoff
from showup.db.channel_models import PushChannel
from showup.db.models import Calendar
from showup.providers.base import ChannelInfo, TokenSource
from showup.providers.errors import NotFound, ProviderError, RateLimited
from showup.push.lifecycle import replace_lost_channel, stop_row
from showup.push.outcome import ChannelOutcome
from showup.push.schedule import renew_time, set_push_status
from showup.runtime import Runtime

log = logging.getLogger("showup.push")


@runtime_checkable
class ChannelRenewer(Protocol):
    """Optional, next to :class:`~showup.providers.base.PushProvider`: a provider that
    extends a live channel instead of replacing it."""

    async def renew_channel(
        self, token: TokenSource, channel_id: str, resource_id: str, ttl: timedelta
    ) -> ChannelInfo:
        """Ask for ``ttl`` more life for the channel; NotFound when it is gone."""
        ...


class InPlaceRenewal:
    """The push job's renewal of an extendable channel, after ``_renew`` checked the row
    (active, not expired, calendar connected) and committed, keeping the lease."""

    rt: Runtime
    row_id: str

    async def _owned(self, session: AsyncSession) -> PushChannel:
        raise NotImplementedError

    @staticmethod
    def _release(row: PushChannel) -> None:
        raise NotImplementedError

    async def _renew_in_place(
        self, renewer: ChannelRenewer, tokens: TokenSource, channel_id: str, resource_id: str
    ) -> ChannelOutcome:
        s = self.rt.settings
        try:
            info = await renewer.renew_channel(tokens, channel_id, resource_id, s.push_channel_ttl)
        except NotFound as exc:
            return await self._renewal_gone(f"{type(exc).__name__}: {exc}")
        except ProviderError as exc:
            return await self._renewal_failed(exc)
        async with self.rt.sessions() as session:
            row = await self._owned(session)
            now = self.rt.clock.now()
            self._release(row)
            row.expiration = info.expiration  # true whatever the row became meanwhile
            row.updated_at = now
            if row.status != "active":  # removed or being stopped meanwhile: it stays so
                await session.commit()
                return ChannelOutcome(self.row_id, "skipped")
            row.renew_at = renew_time(now, info.expiration, s.push_renew_margin)
            row.attempts = 0
            row.last_error = None
            await session.flush()  # channel row before calendar row (lock order)
            cal = await session.get(Calendar, row.calendar_id) if row.calendar_id else None
            if cal is not None:
                set_push_status(cal, "active", None)
            await session.commit()
        log.info("push channel %s renewed until %s", self.row_id, info.expiration.isoformat())
        return ChannelOutcome(self.row_id, "renewed")

    async def _renewal_gone(self, error: str) -> ChannelOutcome:
        async with self.rt.sessions() as session:
            row = await self._owned(session)
            now = self.rt.clock.now()
            self._release(row)
            if row.status != "active":
                await session.commit()
                return ChannelOutcome(self.row_id, "skipped", error)
            calendar_id = row.calendar_id
            stop_row(row, now, f"gone at the provider when renewed ({error})")
            if calendar_id is not None:
                await replace_lost_channel(session, self.rt, calendar_id, now, now)
            await session.commit()
        self.rt.notifier.notify()
        log.warning("push channel %s was gone when renewed; replacing it", self.row_id)
        return ChannelOutcome(self.row_id, "replaced", error)

    async def _renewal_failed(self, exc: ProviderError) -> ChannelOutcome:
        s = self.rt.settings
        error = f"{type(exc).__name__}: {exc}"
        async with self.rt.sessions() as session:
            row = await self._owned(session)
            now = self.rt.clock.now()
            self._release(row)
            if row.status != "active":
                await session.commit()
                return ChannelOutcome(self.row_id, "skipped", error)
            row.attempts += 1
            row.last_error = error
            row.updated_at = now
            hint = exc.retry_after if isinstance(exc, RateLimited) else None
            due = now + (
                hint or backoff(row.attempts, base=s.push_retry_base, cap=s.push_retry_max)
            )
            row.renew_at = min(due, row.expiration) if row.expiration is not None else due
            await session.flush()
            cal = await session.get(Calendar, row.calendar_id) if row.calendar_id else None
            if cal is not None:  # it still listens until its expiration
                set_push_status(cal, "active", f"renewing the channel failed, retrying: {error}")
            await session.commit()
        log.warning("push channel %s: renewal failed (%s)", self.row_id, error)
        return ChannelOutcome(self.row_id, "retry", error)
