"""Microsoft Graph change notifications and lifecycle events: checked, then turned into a
sync request or a channel step (PROTOCOLS §2.4).

Graph POSTs ``{"value": [item, …]}`` (several items per POST) to the subscription's
``notificationUrl`` (``/push/microsoft``) and lifecycle events to its
``lifecycleNotificationUrl`` (``/push/microsoft/lifecycle``); both carry our channel id
as ``?channel=`` (``providers.microsoft_push``), which finds the row by the table's unique
key. Every item carries the subscription's ``clientState``, our secret for that channel.
What we do with a request:

=====================================================  ==============================  ======
request                                                action                          answer
=====================================================  ==============================  ======
``?validationToken=`` (plain text, <= 1024 chars,      echoed, nothing else            200
a channel id of our shape)
``?validationToken=`` otherwise                        refused                         400
body over 1 MiB                                        refused                         413
not JSON, no ``value`` list, an item malformed         refused                         400
known channel, any item's ``clientState`` wrong        refused, logged; nothing done   401
no channel id of ours, or unknown and not proven ours  ignored, logged                 202
unknown channel provably ours (a stray subscription)   scheduled for a DELETE          202
items of another subscription than the row's           ignored, logged                 202
known channel, stopped or failed                       ignored (late)                  202
change (``created`` / ``updated`` / ``deleted``)       sync requested                  202
``missed``                                             sync requested                  202
``reauthorizationRequired``                            renewal due now (PATCH)         202
``subscriptionRemoved``                                channel stopped; a new one      202
                                                       asked for; sync requested
another lifecycle event                                ignored, logged                 202
=====================================================  ==============================  ======

The validation request arrives *during* our create call (Graph waits for it before
answering us), carries no secret, and Graph requires the echo, so it is answered from the
request alone, without touching the database. Every sync request goes through
``schedule.request_sync`` and the per-calendar limiter, as for Google; nothing syncs
inside the request, which is answered 202 at once (§2.4: within 3 s).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from showup.db.channel_models import RECEIVING, PushChannel
from showup.db.models import Calendar
from showup.providers.microsoft_push import MAX_CLIENT_STATE, graph_time
from showup.push.lifecycle import replace_lost_channel, stop_row
from showup.push.limiter import SyncRequestLimiter
from showup.push.schedule import push_address, request_sync
from showup.push.secrets import calendar_of_channel_id, channel_token, same_token
from showup.runtime import Runtime
from showup.security.vault import VaultError

log = logging.getLogger("showup.push")

PLATFORM = "microsoft_outlook"
MAX_BODY = 1 << 20
MAX_ITEMS = 1000
MAX_VALIDATION_TOKEN = 1024
LIFECYCLE_EVENTS = ("reauthorizationRequired", "subscriptionRemoved", "missed")
# Graph's validation tokens are plain text ("Validation: Testing client application …").
_PRINTABLE = re.compile(r"[\x20-\x7e]+")
_VISIBLE = re.compile(r"[\x21-\x7e]+")

Verdict = Literal[
    "requested",
    "coalesced",
    "renew",
    "replaced",
    "ignored",
    "inactive",
    "unknown",
    "stray",
    "bad_client_state",
]


class Malformed(ValueError):
    """The request is not a Graph notification or validation request."""


@dataclass(frozen=True, slots=True)
class GraphItem:
    subscription_id: str
    client_state: str | None
    lifecycle_event: str | None  # None: a change notification
    expiration: datetime | None  # subscriptionExpirationDateTime


def validation_echo(token: str, channel_id: str | None) -> str:
    """The answer to a validation request: the (already URL-decoded) token itself."""
    if len(token) > MAX_VALIDATION_TOKEN or not _PRINTABLE.fullmatch(token):
        raise Malformed("validationToken must be printable text of at most 1024 characters")
    if channel_id is None or calendar_of_channel_id(channel_id) is None:
        raise Malformed("this is not a notification URL of ours")
    return token


def parse_batch(raw: bytes, *, lifecycle: bool) -> list[GraphItem]:
    """The items of a notification body, or Malformed."""
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise Malformed("the body is not JSON") from None
    values = body.get("value") if isinstance(body, dict) else None
    if not isinstance(values, list):
        raise Malformed('the body has no "value" list')
    if not 1 <= len(values) <= MAX_ITEMS:
        raise Malformed(f'"value" must hold 1 to {MAX_ITEMS} items')
    return [_item(value, lifecycle) for value in values]


def _text(item: dict[str, Any], name: str, limit: int) -> str:
    value = item.get(name)
    if not isinstance(value, str) or len(value) > limit or not _VISIBLE.fullmatch(value):
        raise Malformed(f"an item has no valid {name}")
    return value


def _item(value: Any, lifecycle: bool) -> GraphItem:
    if not isinstance(value, dict):
        raise Malformed("an item is not an object")
    state = value.get("clientState")
    if state is not None and (not isinstance(state, str) or len(state) > MAX_CLIENT_STATE):
        raise Malformed("an item's clientState is not a string of at most 128 characters")
    event = None
    if lifecycle:
        event = _text(value, "lifecycleEvent", 64)
    elif "lifecycleEvent" in value:
        raise Malformed("lifecycle events go to the lifecycle URL")
    else:
        _text(value, "changeType", 64)
    return GraphItem(
        subscription_id=_text(value, "subscriptionId", 128),
        client_state=state,
        lifecycle_event=event,
        expiration=graph_time(value.get("subscriptionExpirationDateTime")),
    )


async def receive(
    rt: Runtime, limiter: SyncRequestLimiter, channel_id: str | None, items: list[GraphItem]
) -> Verdict:
    """Act on one POST's items; see the module's table. Commits its own writes.

    One transaction. Change notifications of a live channel's own subscription (the common
    case) take two statements (:func:`_changes`); anything else is sorted out by reading
    the row (:func:`_other`).
    """
    if channel_id is None or calendar_of_channel_id(channel_id) is None:
        log.info("push: Graph notification without a channel id of ours ignored")
        return "unknown"
    now = rt.clock.now()
    async with rt.sessions() as session:
        taken = await _changes(session, rt, limiter, channel_id, items, now)
        if taken is None:
            return await _other(session, rt, limiter, channel_id, items, now)
    verdict, renewal_due = taken
    _wake(rt, verdict, renewal_due)
    return verdict


def _wake(rt: Runtime, verdict: Verdict, renewal_due: bool) -> None:
    if verdict == "requested" and not renewal_due:
        rt.notifier.notify(f"sync:{PLATFORM}")  # only this kind has new work
    elif verdict in ("requested", "renew", "replaced"):
        rt.notifier.notify()


def _client_states_match(
    rt: Runtime, row_id: str, tenant_id: str, secret_enc: bytes, items: list[GraphItem]
) -> bool:
    """Every item carries the channel's clientState (logged when not, without either)."""
    try:
        secret: str | None = rt.vault.open(tenant_id, secret_enc)
    except VaultError:
        log.error("push channel %s: stored clientState does not open", row_id)
        secret = None
    # Every item is checked, whatever the others say (§2.4 "Verify clientState on each").
    if secret is None or not all([same_token(i.client_state, secret) for i in items]):
        log.warning("push: wrong clientState for channel %s; refused", row_id)
        return False
    return True


async def _changes(
    session: AsyncSession,
    rt: Runtime,
    limiter: SyncRequestLimiter,
    channel_id: str,
    items: list[GraphItem],
    now: datetime,
) -> tuple[Verdict, bool] | None:
    """Change notifications on a live channel: the channel notes the time and hands back
    what checks them in one statement (the check failing rolls it back), the sync request
    is the other. The verdict, and whether the channel's renewal is due; None when the
    request is anything else (lifecycle events, another subscription's items, a channel
    that is unknown or not live), for :func:`_other` in the same transaction."""
    if any(i.lifecycle_event is not None for i in items):
        return None
    taken = (
        await session.execute(
            update(PushChannel)
            .where(
                PushChannel.platform == PLATFORM,
                PushChannel.channel_id == channel_id,
                PushChannel.status.in_(RECEIVING),
                PushChannel.calendar_id.is_not(None),
            )
            .values(last_notification_at=now)
            .returning(
                PushChannel.id,
                PushChannel.tenant_id,
                PushChannel.secret_enc,
                PushChannel.calendar_id,
                PushChannel.resource_id,
                PushChannel.renew_at,
            )
            .execution_options(synchronize_session=False)
        )
    ).first()
    if taken is None:
        return None
    row_id, tenant_id, secret_enc, calendar_id, resource_id, renew_at = taken
    if not _client_states_match(rt, row_id, tenant_id, secret_enc, items):
        await session.rollback()
        return "bad_client_state", False
    if any(resource_id not in (None, i.subscription_id) for i in items):
        return None
    assert calendar_id is not None  # the UPDATE's condition
    verdict: Verdict = "coalesced"
    if await request_sync(session, calendar_id, limiter.due(calendar_id, now)):
        limiter.take(calendar_id, now)
        verdict = "requested"
    await session.commit()
    return verdict, renew_at is not None and renew_at <= now


async def _other(
    session: AsyncSession,
    rt: Runtime,
    limiter: SyncRequestLimiter,
    channel_id: str,
    items: list[GraphItem],
    now: datetime,
) -> Verdict:
    """Everything but :func:`_changes`' case, from the row (locked on PostgreSQL)."""
    row = await session.scalar(
        select(PushChannel)
        .where(PushChannel.platform == PLATFORM, PushChannel.channel_id == channel_id)
        .with_for_update()
    )
    if row is None:
        verdict = await _unknown(session, rt, channel_id, items, now)
        await session.commit()
        if verdict == "stray":
            rt.notifier.notify("push")
        return verdict
    if not _client_states_match(rt, row.id, row.tenant_id, row.secret_enc, items):
        return "bad_client_state"
    mine = [i for i in items if row.resource_id in (None, i.subscription_id)]
    if len(mine) < len(items):
        log.info("push channel %s: items of another subscription ignored", row.id)
    calendar_id = row.calendar_id
    if not mine:
        return "unknown"
    if row.status not in RECEIVING or calendar_id is None:
        return "inactive"
    row.last_notification_at = now
    verdict = await _act(session, rt, limiter, row, calendar_id, mine, now)
    renewal_due = row.renew_at is not None and row.renew_at <= now
    await session.commit()
    _wake(rt, verdict, renewal_due)
    return verdict


async def _act(
    session: AsyncSession,
    rt: Runtime,
    limiter: SyncRequestLimiter,
    row: PushChannel,
    calendar_id: str,
    items: list[GraphItem],
    now: datetime,
) -> Verdict:
    events = {i.lifecycle_event for i in items}
    for unknown in sorted(e for e in events if e is not None and e not in LIFECYCLE_EVENTS):
        log.info("push channel %s: lifecycle event %r ignored", row.id, unknown[:64])
    due = limiter.due(calendar_id, now)
    if "subscriptionRemoved" in events and row.status in ("active", "stopping"):
        was_active = row.status == "active"
        stop_row(row, now, "removed by Microsoft (subscriptionRemoved)")
        log.warning("push channel %s: subscription removed by Microsoft", row.id)
        if not was_active:
            return "ignored"  # superseded anyway; nothing left to stop
        if await replace_lost_channel(session, rt, calendar_id, now, due):
            limiter.take(calendar_id, now)
        return "replaced"
    verdict: Verdict = "ignored"
    if "reauthorizationRequired" in events and row.status == "active":
        if row.renew_at is None or row.renew_at > now:
            row.renew_at = now  # the push job renews it (PATCH), push.renewal
            row.updated_at = now
        verdict = "renew"
    if None in events or "missed" in events:  # a change, or changes we never heard of
        await session.flush()  # channel row before calendar row (lock order)
        if await request_sync(session, calendar_id, due):
            limiter.take(calendar_id, now)
            return "requested"
        return verdict if verdict != "ignored" else "coalesced"
    return verdict


async def _unknown(
    session: AsyncSession, rt: Runtime, channel_id: str, items: list[GraphItem], now: datetime
) -> Verdict:
    """No row: a subscription of ours we lost track of (a crash between Graph creating it
    and our commit, or a creation retried under a new id) is proven by its clientState,
    the HMAC of the channel id, and scheduled for a DELETE. Anything else is ignored."""
    calendar_id = calendar_of_channel_id(channel_id)
    token = channel_token(rt.settings.master_key_bytes(), channel_id)
    if calendar_id is None or not all([same_token(i.client_state, token) for i in items]):
        log.info("push: Graph notification for unknown channel %r ignored", channel_id)
        return "unknown"
    if any(i.lifecycle_event == "subscriptionRemoved" for i in items):
        return "unknown"  # gone already: nothing to stop
    cal = await session.get(Calendar, calendar_id)
    if cal is None:
        log.info("push: stray subscription %r of a deleted calendar; it expires", channel_id)
        return "unknown"
    expirations = [i.expiration for i in items if i.expiration is not None]
    session.add(
        PushChannel(
            tenant_id=cal.tenant_id,
            calendar_id=cal.id,
            platform=PLATFORM,
            channel_id=channel_id,
            resource_id=items[0].subscription_id,
            secret_enc=rt.vault.seal(cal.tenant_id, token),
            address=push_address(rt.settings, PLATFORM) or "",
            status="stopping",
            expiration=max(expirations, default=None),
            renew_at=now,
            attempts=0,
            last_notification_at=now,
            created_at=now,
            updated_at=now,
        )
    )
    try:
        await session.flush()
    except IntegrityError:  # a concurrent notification of the same stray got there first
        await session.rollback()
        return "unknown"
    log.info("push: stray subscription %r of calendar %s will be deleted", channel_id, cal.id)
    return "stray"
