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

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

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
    rows = await session.execute(
        select(WebhookEndpoint.id, WebhookEndpoint.event_types).where(
            WebhookEndpoint.tenant_id == tenant_id, WebhookEndpoint.disabled.is_(False)
        )
    )
    endpoint_ids = [ep_id for ep_id, types in rows.all() if matches(types, event_type)]
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
