"""Google push notifications: checked, then turned into a sync request (PROTOCOLS §1.5).

A notification is a body-less POST whose headers say which channel fired
(``X-Goog-Channel-ID``), with our secret (``X-Goog-Channel-Token``), what happened
(``X-Goog-Resource-State``: ``sync`` when the channel opens, ``exists`` / ``not_exists``
for changes) and a per-channel ``X-Goog-Message-Number`` that grows but is not
sequential. What we do with one:

=================================================  =========================  ======
notification                                       action                     answer
=================================================  =========================  ======
body present                                       refused                    413
header missing or malformed                        refused                    400
known channel, token differs                       refused, logged (no token) 401
known channel, stopped or failed                   ignored (late ping)        200
message number at or below the last accepted one   ignored (duplicate/late)   200
``sync``                                           noted, no sync             200
``exists`` / ``not_exists``                        sync requested             200
unknown id, not ours (token does not prove it)     ignored, logged            200
unknown id that is provably ours (a stray)         scheduled for a stop       200
=================================================  =========================  ======

Unknown channels get a 200 so that Google does not retry them. We can stop a stray only
because our channel ids name their calendar and our tokens are an HMAC of the id
(``push.secrets``): a crash between Google opening a channel and our commit leaves such
strays. Anything else (someone else's channel, a forgery) cannot be stopped by us: we
have neither its owner's credentials nor proof, so it is logged and ignored.

A sync request only moves ``next_sync_at`` earlier (``schedule.request_sync``), through
the per-calendar :class:`~showup.push.limiter.SyncRequestLimiter`, and wakes the worker;
the sync itself never runs inside the request.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Literal

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from showup.db.channel_models import RECEIVING, PushChannel
from showup.db.models import Calendar
from showup.push.limiter import SyncRequestLimiter
from showup.push.schedule import push_address, request_sync
from showup.push.secrets import calendar_of_channel_id, channel_token, same_token
from showup.runtime import Runtime
from showup.security.vault import VaultError

log = logging.getLogger("showup.push")

PLATFORM = "google_calendar"
STATES = ("sync", "exists", "not_exists")
# Header values are ASCII without controls; anything else is not from Google.
_VISIBLE = re.compile(r"[\x21-\x7e]+")

Verdict = Literal[
    "requested", "coalesced", "sync", "stale", "inactive", "unknown", "stray", "bad_token"
]


class Malformed(ValueError):
    """The request is not a Google push notification."""


@dataclass(frozen=True, slots=True)
class GoogleNotification:
    channel_id: str
    token: str | None
    resource_id: str
    state: str
    message_number: int
    expiration: datetime | None


def _header(headers: Mapping[str, str], name: str, limit: int) -> str:
    value = headers.get(name)
    if value is None or not value.strip():
        raise Malformed(f"{name} is missing")
    value = value.strip()
    if len(value) > limit or not _VISIBLE.fullmatch(value):
        raise Malformed(f"{name} is malformed")
    return value


def parse_notification(headers: Mapping[str, str]) -> GoogleNotification:
    """The notification in ``headers`` (case-insensitive mapping), or Malformed."""
    channel_id = _header(headers, "x-goog-channel-id", 64)
    resource_id = _header(headers, "x-goog-resource-id", 1024)
    state = _header(headers, "x-goog-resource-state", 32)
    if state not in STATES:
        raise Malformed("X-Goog-Resource-State is not sync, exists or not_exists")
    number = _header(headers, "x-goog-message-number", 20)
    if not number.isdigit():
        raise Malformed("X-Goog-Message-Number is not a number")
    token = headers.get("x-goog-channel-token")
    if token is not None and len(token) > 256:
        raise Malformed("X-Goog-Channel-Token is too long")
    return GoogleNotification(
        channel_id=channel_id,
        token=token,
        resource_id=resource_id,
        state=state,
        message_number=int(number),
        expiration=_http_date(headers.get("x-goog-channel-expiration")),
    )


def _http_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


async def receive(rt: Runtime, limiter: SyncRequestLimiter, note: GoogleNotification) -> Verdict:
    """Act on one notification; see the module's table. Commits its own writes.

    One transaction. A change on a live channel (the common case) takes two statements:
    the channel's message number is moved up only if this one is newer, returning the
    stored token, which is then checked (a wrong one rolls the transaction back), and the
    sync is requested. Anything else is told apart by reading the row (:func:`_other`).
    """
    now = rt.clock.now()
    async with rt.sessions() as session:
        accepted = (
            await session.execute(
                update(PushChannel)
                .where(
                    PushChannel.platform == PLATFORM,
                    PushChannel.channel_id == note.channel_id,
                    PushChannel.status.in_(RECEIVING),
                    PushChannel.calendar_id.is_not(None),
                    or_(
                        PushChannel.last_message_number.is_(None),
                        PushChannel.last_message_number < note.message_number,
                    ),
                )
                .values(last_message_number=note.message_number, last_notification_at=now)
                .returning(
                    PushChannel.id,
                    PushChannel.tenant_id,
                    PushChannel.secret_enc,
                    PushChannel.calendar_id,
                )
                .execution_options(synchronize_session=False)
            )
        ).first()
        if accepted is None:
            return await _other(session, rt, note, now)
        row_id, tenant_id, secret_enc, calendar_id = accepted
        assert calendar_id is not None  # the UPDATE's condition
        if not _token_matches(rt, row_id, tenant_id, secret_enc, note.token):
            await session.rollback()  # the message number stays as it was
            return "bad_token"
        if note.state == "sync":
            await session.commit()
            return "sync"
        requested = await request_sync(session, calendar_id, limiter.due(calendar_id, now))
        await session.commit()
    if not requested:
        return "coalesced"
    limiter.take(calendar_id, now)
    rt.notifier.notify(f"sync:{PLATFORM}")  # only this kind has new work
    return "requested"


def _token_matches(
    rt: Runtime, row_id: str, tenant_id: str, secret_enc: bytes, token: str | None
) -> bool:
    """The notification's token is the channel's (logged when not, without either)."""
    try:
        secret: str | None = rt.vault.open(tenant_id, secret_enc)
    except VaultError:
        log.error("push channel %s: stored token does not open", row_id)
        secret = None
    if secret is None or not same_token(token, secret):
        log.warning("push: wrong channel token for channel %s; refused", row_id)
        return False
    return True


async def _other(
    session: AsyncSession, rt: Runtime, note: GoogleNotification, now: datetime
) -> Verdict:
    """Why the channel did not take the notification as a new change: an unknown channel
    (maybe a stray of ours), a wrong token, a stopped channel, or an old message number."""
    row = await session.scalar(
        select(PushChannel).where(
            PushChannel.platform == PLATFORM, PushChannel.channel_id == note.channel_id
        )
    )
    if row is None:
        verdict = await _unknown(session, rt, note, now)
        await session.commit()
        if verdict == "stray":
            rt.notifier.notify("push")
        return verdict
    if not _token_matches(rt, row.id, row.tenant_id, row.secret_enc, note.token):
        return "bad_token"
    if row.status not in RECEIVING or row.calendar_id is None:
        return "inactive"
    # Live, and the token is right: the message number was not newer. A later message was
    # accepted, and the sync it asked for covers this one. (On PostgreSQL a row committed
    # between the two statements lands here too, as it would have landed in "unknown".)
    return "stale"


async def _unknown(
    session: AsyncSession, rt: Runtime, note: GoogleNotification, now: datetime
) -> Verdict:
    calendar_id = calendar_of_channel_id(note.channel_id)
    token = channel_token(rt.settings.master_key_bytes(), note.channel_id)
    if calendar_id is None or not same_token(note.token, token):
        log.info("push: notification for unknown channel %r ignored", note.channel_id)
        return "unknown"
    cal = await session.get(Calendar, calendar_id)
    if cal is None:
        log.info("push: stray channel %r of a deleted calendar; it expires", note.channel_id)
        return "unknown"
    session.add(
        PushChannel(
            tenant_id=cal.tenant_id,
            calendar_id=cal.id,
            platform=PLATFORM,
            channel_id=note.channel_id,
            resource_id=note.resource_id,
            secret_enc=rt.vault.seal(cal.tenant_id, token),
            address=push_address(rt.settings, PLATFORM) or "",
            status="stopping",
            expiration=note.expiration,
            renew_at=now,
            attempts=0,
            last_message_number=note.message_number,
            last_notification_at=now,
            created_at=now,
            updated_at=now,
        )
    )
    try:
        await session.flush()
    except IntegrityError:  # a concurrent ping of the same stray got there first
        await session.rollback()
        return "unknown"
    log.info("push: stray channel %r of calendar %s will be stopped", note.channel_id, cal.id)
    return "stray"
