"""Calendar webhooks, exactly as Recall sends them (PEERS §1d), written to the outbox in
the same transaction as the change they announce (DESIGN invariant 2).

- ``calendar.sync_events {calendar_id, last_updated_ts}``: events of this calendar changed;
  fetch them with ``updated_at__gte=last_updated_ts``. ``last_updated_ts`` is the
  transaction's own timestamp, which is the ``updated_at`` of every event it announces, so
  the filter never misses one. Sent per committed page of changes (and once after a
  calendar's first sync even when it had no events, as Recall does).
- ``calendar.update {calendar_id}``: the calendar's status changed (e.g. a disconnect);
  re-fetch the calendar to see how.

Both also go to the calendar's own ``webhook_url`` when one was given.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from showup.webhooks.outbox import CALENDAR_SYNC_EVENTS, CALENDAR_UPDATE, enqueue


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


async def events_synced(
    session: AsyncSession,
    *,
    tenant_id: str,
    calendar_id: str,
    webhook_url: str | None,
    last_updated_ts: datetime,
    now: datetime,
) -> None:
    await enqueue(
        session,
        tenant_id=tenant_id,
        event_type=CALENDAR_SYNC_EVENTS,
        data={"calendar_id": calendar_id, "last_updated_ts": _iso(last_updated_ts)},
        now=now,
        calendar_webhook_url=webhook_url,
    )


async def calendar_updated(
    session: AsyncSession,
    *,
    tenant_id: str,
    calendar_id: str,
    webhook_url: str | None,
    now: datetime,
) -> None:
    await enqueue(
        session,
        tenant_id=tenant_id,
        event_type=CALENDAR_UPDATE,
        data={"calendar_id": calendar_id},
        now=now,
        calendar_webhook_url=webhook_url,
    )
