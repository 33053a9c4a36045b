"""World events rendered as Google Calendar event resources (PROTOCOLS §1.3).

Renderings are plain dicts cached on the calendar's :class:`Entry` until the meeting
changes (``_touch`` clears the cache), so list pages cost a dict lookup per item.
Callers must treat returned dicts as read-only; the Python API deep-copies them.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

from showup.emulator.events import Calendar, Entry, EventCore, Occurrence, Retired
from showup.emulator.model import EventFields, EventTime, Person, format_rfc3339_ms


def time_json(value: EventTime) -> dict[str, Any]:
    """``{date}`` or ``{dateTime, timeZone?}``; UTC offsets print as ``Z`` like Google."""
    if value.day is not None:
        out: dict[str, Any] = {"date": value.day.isoformat()}
    else:
        assert value.at is not None
        text = value.at.isoformat(timespec="seconds")
        out = {"dateTime": text[:-6] + "Z" if text.endswith("+00:00") else text}
    if value.tz:
        out["timeZone"] = value.tz
    return out


def etag(updated: datetime, version: int) -> str:
    # Quoted digits like Google's; the version makes it change on every edit even
    # when the clock did not move (a FakeClock often does not).
    millis = int(updated.astimezone(UTC).timestamp() * 1000)
    return f'"{millis}{version % 1000:03d}"'


def _person(p: Person | None, owner: str) -> dict[str, Any] | None:
    if p is None:
        return None
    out: dict[str, Any] = {"email": p.email}
    if p.display_name:
        out["displayName"] = p.display_name
    if p.email == owner:
        out["self"] = True
    return out


def _body(
    cal: Calendar, core: EventCore, fields: EventFields, event_id: str, cancelled: bool
) -> dict[str, Any]:
    owner = cal.owner
    link = base64.urlsafe_b64encode(f"{event_id} {cal.id}".encode()).decode().rstrip("=")
    out: dict[str, Any] = {
        "kind": "calendar#event",
        "id": event_id,
        "status": "cancelled" if cancelled else fields.status,
        "htmlLink": f"https://www.google.com/calendar/event?eid={link}",
    }
    for key, value in (
        ("summary", fields.summary),
        ("description", fields.description),
        ("location", fields.location),
    ):
        if value is not None:
            out[key] = value
    out["creator"] = _person(fields.creator, owner)
    out["organizer"] = _person(fields.organizer, owner)
    out["start"] = time_json(fields.start)
    out["end"] = time_json(fields.end)
    if fields.recurrence:
        out["recurrence"] = list(fields.recurrence)
    out["iCalUID"] = core.ical_uid
    if fields.attendees:
        org = fields.organizer.email if fields.organizer else None
        attendees = []
        for a in fields.attendees:
            item: dict[str, Any] = {"email": a.email}
            if a.display_name:
                item["displayName"] = a.display_name
            if a.email == org:
                item["organizer"] = True
            if a.email == owner:
                item["self"] = True
            if a.resource:
                item["resource"] = True
            if a.optional:
                item["optional"] = True
            item["responseStatus"] = a.response_status
            attendees.append(item)
        out["attendees"] = attendees
    if fields.hangout_link:
        out["hangoutLink"] = fields.hangout_link
    if fields.conference_data:
        out["conferenceData"] = fields.conference_data
    out["reminders"] = {"useDefault": True}
    out["eventType"] = fields.event_type
    if "graph" in fields.extra:  # Graph-only overrides (docs/emulator.md), not Google's
        out.update((k, v) for k, v in fields.extra.items() if k != "graph")
    else:
        out.update(fields.extra)
    return out


def render_entry(cal: Calendar, entry: Entry) -> dict[str, Any]:
    """The single event or series master, full representation (status may be cancelled)."""
    cached = entry.cache.get("master")
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    core = entry.core
    out = _body(cal, core, core.fields, core.id, entry.cancelled)
    out["etag"] = etag(core.updated, core.version)
    out["created"] = format_rfc3339_ms(core.created)
    out["updated"] = format_rfc3339_ms(core.updated)
    out["sequence"] = core.sequence
    entry.cache["master"] = out
    return out


def render_occurrence(cal: Calendar, entry: Entry, occ: Occurrence) -> dict[str, Any]:
    """One instance with ``recurringEventId`` and ``originalStartTime`` (§1.3)."""
    cache: dict[str, dict[str, Any]] = entry.cache.setdefault("instances", {})
    cached = cache.get(occ.instance_id)
    if cached is not None:
        return cached
    core = entry.core
    out = _body(cal, core, occ.fields, occ.instance_id, entry.cancelled or occ.cancelled)
    out["etag"] = etag(occ.updated, core.version)
    out["created"] = format_rfc3339_ms(occ.created)
    out["updated"] = format_rfc3339_ms(occ.updated)
    out["recurringEventId"] = core.id
    out["originalStartTime"] = time_json(occ.original_start)
    out["sequence"] = core.sequence + (occ.override.sequence if occ.override else 0)
    cache[occ.instance_id] = out
    return out


def stub(event_id: str, tag: str) -> dict[str, Any]:
    """A deletion: only ``id`` is guaranteed (PROTOCOLS §1.3 "status")."""
    return {"kind": "calendar#event", "etag": tag, "id": event_id, "status": "cancelled"}


def entry_stub(entry: Entry) -> dict[str, Any]:
    core = entry.core
    return stub(core.id, etag(core.updated, core.version))


def occurrence_stub(entry: Entry, occ: Occurrence) -> dict[str, Any]:
    """A cancelled instance keeps ``recurringEventId`` and ``originalStartTime`` (§1.3)."""
    out = stub(occ.instance_id, etag(occ.updated, entry.core.version))
    out["recurringEventId"] = entry.core.id
    out["originalStartTime"] = time_json(occ.original_start)
    return out


def retired_stub(entry: Entry, instance_id: str, retired: Retired) -> dict[str, Any]:
    out = stub(instance_id, etag(retired.updated, entry.core.version))
    out["recurringEventId"] = entry.core.id
    out["originalStartTime"] = time_json(retired.original_start)
    return out
