"""Model → JSON, in Recall Calendar V2's field names (PEERS §1b). Never a secret."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from showup.db.models import Calendar, Event


def iso(dt: datetime | None) -> str | None:
    if dt is None:
        return None
    return dt.isoformat().replace("+00:00", "Z")


def calendar_json(cal: Calendar) -> dict[str, Any]:
    return {
        "id": cal.id,
        "platform": cal.platform,
        "platform_email": cal.platform_email,
        "platform_calendar_id": cal.platform_calendar_id,
        "status": cal.status,
        "status_changes": cal.status_changes,
        "external_user_id": cal.external_user_id,
        "oauth_client_id": cal.oauth_client_id,
        "oauth_tenant_id": cal.oauth_tenant_id,
        "webhook_url": cal.webhook_url,
        "sync": {
            "last_synced_at": iso(cal.last_synced_at),
            "next_sync_at": iso(cal.next_sync_at),
            "consecutive_failures": cal.sync_failures,
            "last_error": cal.last_error,
            "last_error_at": iso(cal.last_error_at),
        },
        # none | active | failed | unavailable; without push the calendar polls, and
        # the reason says why (push/schedule.py).
        "push": {"status": cal.push_status, "reason": cal.push_reason},
        "created_at": iso(cal.created_at),
        "updated_at": iso(cal.updated_at),
    }


def event_json(
    ev: Event, platform: str, bots: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return {
        "id": ev.id,
        "calendar_id": ev.calendar_id,
        "platform": platform,
        "platform_id": ev.platform_id,
        "ical_uid": ev.ical_uid,
        "recurring_event_id": ev.recurring_event_id,
        "title": ev.title,
        "start_time": iso(ev.start_time),
        "end_time": iso(ev.end_time),
        "is_all_day": ev.is_all_day,
        "status": ev.status,
        "is_deleted": ev.is_deleted,
        "organizer_email": ev.organizer_email,
        "attendees": ev.attendees,
        "meeting_url": ev.meeting_url,
        "meeting_platform": ev.meeting_platform,
        "bots": bots or [],
        "raw": ev.raw,
        "created_at": iso(ev.created_at),
        "updated_at": iso(ev.updated_at),
    }
