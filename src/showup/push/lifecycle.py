"""Wanting and dropping channels, in the caller's transaction (services flush, edges commit).

- :func:`want_channel` adds a ``pending`` row due now; the ``push`` job opens it.
- :func:`replace_lost_channel`: a channel is gone at the provider before its time (Graph
  ``subscriptionRemoved``, or a renewal answered 404): a new one, and a sync, since
  notifications may have been lost meanwhile.
- :func:`calendar_disconnected` and :func:`calendar_deleted` move every live channel of
  the calendar to ``stopping`` (due now) and the job stops them at the provider. A
  deleted calendar takes its credentials with it, so each channel keeps a copy of the
  calendar's *sealed* credentials for that one stop call, and forgets it afterwards.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from showup.db.channel_models import RECEIVING, PushChannel
from showup.db.models import Calendar
from showup.push.schedule import push_address, request_sync, set_push_status, unavailable_reason
from showup.push.secrets import channel_token, new_channel_id
from showup.runtime import Runtime


async def want_channel(session: AsyncSession, rt: Runtime, cal: Calendar, now: datetime) -> None:
    """Ask for a new channel on ``cal`` (a first one, or a renewal's successor)."""
    address = push_address(rt.settings, cal.platform)
    if address is None:
        raise ValueError(f"no push address for {cal.platform}")
    channel_id = new_channel_id(cal.id)
    token = channel_token(rt.settings.master_key_bytes(), channel_id)
    session.add(
        PushChannel(
            tenant_id=cal.tenant_id,
            calendar_id=cal.id,
            platform=cal.platform,
            channel_id=channel_id,
            secret_enc=rt.vault.seal(cal.tenant_id, token),
            address=address,
            status="pending",
            renew_at=now,
            attempts=0,
            created_at=now,
            updated_at=now,
        )
    )
    await session.flush()


def new_identity(rt: Runtime, row: PushChannel) -> str:
    """Give ``row`` a fresh channel id and token; return the token.

    Used before retrying a creation: the previous attempt may have opened a channel under
    the old id (Google refuses a live id twice), and that one, if it exists, is stray.
    """
    if row.calendar_id is None:
        raise ValueError("a channel without a calendar gets no new identity")
    row.channel_id = new_channel_id(row.calendar_id)
    token = channel_token(rt.settings.master_key_bytes(), row.channel_id)
    row.secret_enc = rt.vault.seal(row.tenant_id, token)
    return token


def stop_row(row: PushChannel, now: datetime, error: str | None = None) -> None:
    """Final: stopped at the provider, expired, never created, or impossible to stop."""
    row.status = "stopped"
    row.renew_at = None
    row.stopped_at = now
    row.orphan_credentials = None
    row.last_error = error
    row.updated_at = now


async def replace_lost_channel(
    session: AsyncSession, rt: Runtime, calendar_id: str, now: datetime, due: datetime
) -> bool:
    """After a live channel of the calendar was lost (its row already stopped): ask for a
    new one unless another is live or being opened, and request a sync at ``due``
    (``schedule.request_sync``). True when the sync request changed something.

    Call it after writing the channel row: it locks the calendar row next, the order every
    push writer keeps (PostgreSQL), so that a concurrent renewal cannot add a second
    pending row.
    """
    await session.flush()  # the stopped row first
    cal = await session.scalar(select(Calendar).where(Calendar.id == calendar_id).with_for_update())
    if cal is None or cal.status == "disconnected":
        return False
    if unavailable_reason(rt.settings, rt.providers, cal.platform) is None:
        live = await session.scalar(
            select(PushChannel.id).where(
                PushChannel.calendar_id == cal.id,
                PushChannel.status.in_(("pending", "active")),
            )
        )
        if live is None:
            await want_channel(session, rt, cal, now)
    return await request_sync(session, cal.id, due)


def schedule_stop(row: PushChannel, now: datetime) -> None:
    row.status = "stopping"
    row.renew_at = now
    row.attempts = 0
    row.updated_at = now


async def _live_channels(session: AsyncSession, calendar_id: str) -> list[PushChannel]:
    rows = await session.scalars(
        select(PushChannel).where(
            PushChannel.calendar_id == calendar_id, PushChannel.status.in_(RECEIVING)
        )
    )
    return list(rows)


async def calendar_disconnected(session: AsyncSession, cal: Calendar, now: datetime) -> None:
    """The calendar stopped syncing (revoked, gone): stop its channels."""
    for row in await _live_channels(session, cal.id):
        if row.status == "pending" and row.lease_owner is None:
            stop_row(row, now)  # never opened; one being opened is stopped when it opens
        else:
            schedule_stop(row, now)
    set_push_status(cal, "none", "the calendar is disconnected")


async def calendar_deleted(session: AsyncSession, cal: Calendar, now: datetime) -> None:
    """The calendar is being deleted: detach its channels, keeping what stopping needs."""
    creds = orphan_credentials(cal)
    for row in await _live_channels(session, cal.id):
        if row.status == "pending" and row.lease_owner is None:
            stop_row(row, now)
        else:
            schedule_stop(row, now)
            row.orphan_credentials = creds
        row.calendar_id = None
    await session.flush()


def orphan_credentials(cal: Calendar) -> dict[str, Any]:
    """The calendar's OAuth credentials, still sealed under its tenant's key."""
    return {
        "client_id": cal.oauth_client_id,
        "oauth_tenant_id": cal.oauth_tenant_id,
        "client_secret_enc": base64.b64encode(cal.oauth_client_secret_enc).decode(),
        "refresh_token_enc": base64.b64encode(cal.oauth_refresh_token_enc).decode(),
    }
