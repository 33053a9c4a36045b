"""The webhook outbox: announcing an event writes rows, never sends (DESIGN invariant 2).

:func:`enqueue` adds the message and one delivery per target to the caller's session and
only flushes. The caller's transaction commits them together with the change they
announce, or rolls them back with it: a webhook never announces a change that did not
happen, and a committed change is always announced. The delivery job
(``webhooks/delivery.py``) sends them after commit; callers at an edge may call
``runtime.notifier.notify()`` after committing to wake an in-process worker early.

Payload envelope, for every type: ``{"event", "type", "timestamp", "data"}``. ``type``,
``timestamp`` and ``data`` are Standard Webhooks' recommendation; ``event`` repeats the
type under the key Recall's calendar webhooks use (``{"event": "calendar.sync_events",
"data": {"calendar_id", "last_updated_ts"}}``), so Recall receivers keep working.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapper, ORMExecuteState, Session, SessionTransaction, object_session

from showup.db.webhook_models import (
    WebhookDelivery,
    WebhookEndpoint,
    WebhookMessage,
    new_message_id,
)

CALENDAR_UPDATE: Final = "calendar.update"
CALENDAR_SYNC_EVENTS: Final = "calendar.sync_events"
BOT_SCHEDULED: Final = "bot.scheduled"
BOT_UPDATED: Final = "bot.updated"
BOT_CANCELLED: Final = "bot.cancelled"
BOT_DISPATCH: Final = "bot.dispatch"
BOT_FAILED: Final = "bot.failed"

EVENT_TYPES: Final = (
    CALENDAR_UPDATE,
    CALENDAR_SYNC_EVENTS,
    BOT_SCHEDULED,
    BOT_UPDATED,
    BOT_CANCELLED,
    BOT_DISPATCH,
    BOT_FAILED,
)


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


def envelope(event_type: str, data: Mapping[str, Any], now: datetime) -> str:
    """The JSON body sent for one message, serialized once and stored as sent."""
    return json.dumps(
        {"event": event_type, "type": event_type, "timestamp": _iso(now), "data": dict(data)},
        separators=(",", ":"),
        allow_nan=False,
    )


def matches(filter_types: list[str] | None, event_type: str) -> bool:
    """An endpoint without a filter receives every type."""
    return filter_types is None or event_type in filter_types


# The tenants' enabled endpoints read by ``enqueue`` in the session's current transaction,
# so that the announcements of one transaction (a first sync's ``calendar.update`` and
# ``calendar.sync_events``) read them once: in session.info, with the transaction they
# were read in. Dropped when the session's transaction or a savepoint of it ends, and when
# the session writes an endpoint (a flush, or an INSERT, UPDATE or DELETE statement); the
# transaction check below also covers a session whose events did not fire. (On
# PostgreSQL, READ COMMITTED, a later announcement of the same transaction no longer sees
# an endpoint another transaction committed meanwhile: as if it had been created after.)
_ENDPOINTS = "showup.webhooks.outbox.endpoints"

_Endpoints = list[tuple[str, list[str] | None]]


def _forget_endpoints(session: Session) -> None:
    session.info.pop(_ENDPOINTS, None)


def _transaction_ended(session: Session, transaction: SessionTransaction) -> None:
    # Not for the subtransaction each flush opens and closes (it neither commits nor
    # rolls back anything of its own).
    if transaction.parent is None or transaction.nested:
        _forget_endpoints(session)


def _endpoint_written(_mapper: Mapper[Any], _connection: Any, target: WebhookEndpoint) -> None:
    session = object_session(target)
    if session is not None:
        _forget_endpoints(session)


def _statement_written(state: ORMExecuteState) -> None:
    if state.is_insert or state.is_update or state.is_delete:
        table = getattr(state.statement, "table", None)
        if table is None or getattr(table, "name", None) == _TABLE:
            _forget_endpoints(state.session)


_TABLE = WebhookEndpoint.__tablename__
event.listen(Session, "after_transaction_end", _transaction_ended)
event.listen(Session, "do_orm_execute", _statement_written)
for _write in ("after_insert", "after_update", "after_delete"):
    event.listen(WebhookEndpoint, _write, _endpoint_written)


async def _endpoints(session: AsyncSession, tenant_id: str) -> _Endpoints:
    """``(id, event_types)`` of the tenant's enabled endpoints, read once per transaction."""
    sync = session.sync_session
    transaction: SessionTransaction | None = sync.get_transaction()
    cached = sync.info.get(_ENDPOINTS)
    if cached is not None and cached[0] is transaction and tenant_id in cached[1]:
        found: _Endpoints = cached[1][tenant_id]
        return found
    rows = await session.execute(
        select(WebhookEndpoint.id, WebhookEndpoint.event_types).where(
            WebhookEndpoint.tenant_id == tenant_id, WebhookEndpoint.disabled.is_(False)
        )
    )
    found = [(ep_id, types) for ep_id, types in rows.all()]
    # The transaction the SELECT ran in (it began one if none was open).
    transaction = sync.get_transaction()
    if transaction is not None:
        by_tenant: dict[str, _Endpoints] = {}
        if cached is not None and cached[0] is transaction:
            by_tenant = cached[1]
        else:
            sync.info[_ENDPOINTS] = (transaction, by_tenant)
        by_tenant[tenant_id] = found
    return found


async def enqueue(
    session: AsyncSession,
    *,
    tenant_id: str,
    event_type: str,
    data: dict[str, Any],
    now: datetime,
    calendar_webhook_url: str | None = None,
) -> str | None:
    """Queue ``event_type`` with ``data`` for every interested target of ``tenant_id``.

    Targets: each enabled endpoint of the tenant whose filter admits the type, plus
    ``calendar_webhook_url`` (a calendar's own ``webhook_url``, signed with the tenant's
    default secret) when given. Flushes only; the caller commits.

    Returns the message id (the ``webhook-id`` header of every attempt), or None when
    nobody listens, in which case nothing is written.

    Raises:
        ValueError: ``event_type`` is not one of :data:`EVENT_TYPES`.
        TypeError: ``data`` is not JSON-serializable (a bug of the caller; raised before
            anything is added to the session).
    """
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown webhook event type {event_type!r}")
    endpoints = await _endpoints(session, tenant_id)
    endpoint_ids = [ep_id for ep_id, types in endpoints if matches(types, event_type)]
    if not endpoint_ids and calendar_webhook_url is None:
        return None
    payload = envelope(event_type, data, now)
    message = WebhookMessage(
        id=new_message_id(),
        tenant_id=tenant_id,
        event_type=event_type,
        payload=payload,
        created_at=now,
    )
    session.add(message)
    # The deliveries reference the message; no relationship() orders the inserts for us.
    await session.flush()
    targets: list[tuple[str | None, str | None]] = [(ep_id, None) for ep_id in endpoint_ids]
    if calendar_webhook_url is not None:
        targets.append((None, calendar_webhook_url))
    for endpoint_id, url in targets:
        session.add(new_delivery(message, now, endpoint_id=endpoint_id, target_url=url))
    await session.flush()
    return message.id


def new_delivery(
    message: WebhookMessage,
    now: datetime,
    *,
    endpoint_id: str | None,
    target_url: str | None,
) -> WebhookDelivery:
    """A pending delivery of ``message`` to one target, due now."""
    return WebhookDelivery(
        tenant_id=message.tenant_id,
        message_id=message.id,
        endpoint_id=endpoint_id,
        target_url=target_url,
        status="pending",
        attempts=0,
        next_attempt_at=now,
        created_at=now,
        updated_at=now,
    )
