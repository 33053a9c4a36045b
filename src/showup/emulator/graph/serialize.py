"""World events rendered as Microsoft Graph ``event`` resources (PROTOCOLS §2.3).

One world meeting appears once per mailbox that holds it, with that mailbox's ids
(:mod:`showup.emulator.graph.ids`), its own ``responseStatus`` and ``isOrganizer``.
Times are ``{"dateTime": "…T09:00:00.0000000", "timeZone": "UTC"}`` without an offset,
in the zone the request prefers (``Prefer: outlook.timezone``, §2.2; UTC by default).

Choices where Graph leaves room (docs/emulator.md "Event resource"): occurrences get
``iCalUId = {uid}_{original start}`` ("different for each occurrence", §2.3); the organizer
is not listed among ``attendees``; an attendee's copy of a cancelled meeting stays with
``isCancelled: true`` when ``settings.graph_attendee_cancellations`` is on.

Renderings are cached on the :class:`Entry` per view until the meeting changes.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any, Literal
from urllib.parse import quote

from showup.emulator.events import Calendar, Entry, Occurrence
from showup.emulator.graph import ids
from showup.emulator.graph.pattern import patterned
from showup.emulator.model import EventFields, EventTime

State = Literal["live", "cancelled", "gone"]

_RESPONSES = {
    "needsAction": "none",
    "accepted": "accepted",
    "tentative": "tentativelyAccepted",
    "declined": "declined",
}
_SENSITIVITY = {"private": "private", "confidential": "confidential"}
_NEVER = "0001-01-01T00:00:00Z"
_TAG = re.compile(r"<[^>]+>")
_LINK = re.compile(r'<a\s[^>]*href="([^"]*)"[^>]*>(.*?)</a>', re.IGNORECASE | re.DOTALL)
_RULE = "_" * 80


@dataclass(frozen=True, slots=True)
class View:
    """How a request wants events shown: zone (label and tzinfo) and body type."""

    label: str = "UTC"
    zone: tzinfo = UTC
    text_body: bool = False

    @property
    def key(self) -> str:
        return f"{self.label}|{self.text_body}"


def odata_time(at: datetime, zone: tzinfo) -> str:
    """``2026-11-04T09:00:00.0000000``: seven fractional digits, no offset (§2.3)."""
    return at.astimezone(zone).replace(tzinfo=None).isoformat(timespec="microseconds") + "0"


def stamp(at: datetime) -> str:
    """``createdDateTime`` style: UTC with seven fractional digits and ``Z``."""
    return odata_time(at, UTC) + "Z"


def _time(value: EventTime, view: View) -> dict[str, str]:
    if value.day is not None:
        return {"dateTime": f"{value.day.isoformat()}T00:00:00.0000000", "timeZone": view.label}
    assert value.at is not None
    return {"dateTime": odata_time(value.at, view.zone), "timeZone": view.label}


def organizer_email(fields: EventFields) -> str | None:
    return fields.organizer.email if fields.organizer else None


def state(cal: Calendar, entry: Entry, occ: Occurrence | None, keep_cancelled: bool) -> State:
    """Whether the item is on this calendar: live, shown as cancelled, or gone."""
    if entry.removed:
        return "gone"
    cancelled = entry.core.cancelled or (occ is not None and occ.cancelled)
    if not cancelled:
        return "live"
    fields = occ.fields if occ is not None else entry.core.fields
    attendee_copy = cal.owner != organizer_email(fields)
    return "cancelled" if keep_cancelled and attendee_copy else "gone"


def change_key(cal: Calendar, item_id: str, version: int) -> str:
    """Changes on every edit (§2.3 ``changeKey``); also the ``@odata.etag`` payload."""
    digest = hashlib.blake2b(f"{cal.id}|{item_id}|{version}".encode(), digest_size=21).digest()
    return base64.b64encode(digest).decode()


def join_url(fields: EventFields) -> str | None:
    """The video entry point of the world's conference data, else its hangoutLink."""
    data = fields.conference_data or {}
    for point in data.get("entryPoints") or []:
        if isinstance(point, dict) and point.get("entryPointType") == "video":
            uri = point.get("uri")
            if isinstance(uri, str):
                return uri
    return fields.hangout_link


def _html(description: str | None, link: str | None) -> str:
    if description is None:
        inner = ""
    elif _TAG.search(description):
        inner = description
    else:
        inner = html.escape(description).replace("\n", "<br>\r\n")
    if link and link not in inner:
        inner += (
            f"{'<br>' if inner else ''}\r\n<div>{_RULE}</div>\r\n"
            f'<div><a href="{html.escape(link)}">Join the meeting now</a></div>'
        )
    return (
        '<html>\r\n<head>\r\n<meta http-equiv="Content-Type" content="text/html; '
        f'charset=utf-8">\r\n</head>\r\n<body>\r\n{inner}\r\n</body>\r\n</html>\r\n'
    )


def text_of(markup: str) -> str:
    """HTML → text the way Outlook does it roughly: links become ``text<url>``."""
    body = markup.split("<body>", 1)[-1].split("</body>", 1)[0]
    body = _LINK.sub(lambda m: f"{m.group(2)}<{m.group(1)}>", body)
    body = re.sub(r"<br\s*/?>|</div>|</p>", "\n", body, flags=re.IGNORECASE)
    body = re.sub(r"<(?!https?://)[^>]+>", "", body)
    return html.unescape(body).replace("\r", "").strip()


def _show_as(fields: EventFields) -> str:
    if fields.event_type == "outOfOffice":
        return "oof"
    if fields.event_type == "workingLocation":
        return "workingElsewhere"
    if fields.extra.get("transparency") == "transparent":
        return "free"
    return "tentative" if fields.status == "tentative" else "busy"


def _email(name: str | None, address: str) -> dict[str, str]:
    return {"name": name or address, "address": address}


def _attendees(fields: EventFields) -> list[dict[str, Any]]:
    org = organizer_email(fields)
    out = []
    for a in fields.attendees:
        if a.email == org:
            continue  # Graph lists the organizer only as ``organizer``
        kind = "resource" if a.resource else "optional" if a.optional else "required"
        out.append(
            {
                "type": kind,
                "status": {"response": _RESPONSES[a.response_status], "time": _NEVER},
                "emailAddress": _email(a.display_name, a.email),
            }
        )
    return out


def _response(cal: Calendar, fields: EventFields) -> dict[str, str]:
    if cal.owner == organizer_email(fields):
        return {"response": "organizer", "time": _NEVER}
    for a in fields.attendees:
        if a.email == cal.owner:
            return {"response": _RESPONSES[a.response_status], "time": _NEVER}
    return {"response": "none", "time": _NEVER}


def _kind(entry: Entry, occ: Occurrence | None) -> str:
    if occ is not None:
        return "exception" if occ.override is not None else "occurrence"
    return "seriesMaster" if entry.core.is_series else "singleInstance"


def item_id(cal: Calendar, entry: Entry, occ: Occurrence | None) -> str:
    return ids.event_id(cal.id, occ.instance_id if occ is not None else entry.core.id)


def removed(graph_id: str) -> dict[str, Any]:
    """A deletion in a delta round (§2.2 "Deletions")."""
    return {
        "@odata.type": "#microsoft.graph.event",
        "id": graph_id,
        "@removed": {"reason": "deleted"},
    }


def sparse(cal: Calendar, entry: Entry, occ: Occurrence, view: View) -> dict[str, Any]:
    """An occurrence as calendarView/delta really returns it: ids, type and times only."""
    gid = item_id(cal, entry, occ)
    return {
        "@odata.type": "#microsoft.graph.event",
        "@odata.etag": f'W/"{change_key(cal, gid, entry.core.version)}"',
        "id": gid,
        "seriesMasterId": ids.event_id(cal.id, entry.core.id),
        "type": _kind(entry, occ),
        "start": _time(occ.fields.start, view),
        "end": _time(occ.fields.end, view),
    }


def render(cal: Calendar, entry: Entry, occ: Occurrence | None, view: View) -> dict[str, Any]:
    """The full event resource of a single instance, master, occurrence or exception."""
    per_view: dict[str, dict[str, Any]] = entry.cache.setdefault("graph", {}).setdefault(
        view.key, {}
    )
    cache_key = occ.instance_id if occ is not None else ""
    cached = per_view.get(cache_key)
    if cached is None:
        cached = _render(cal, entry, occ, view)
        per_view[cache_key] = cached
    return cached


def _render(cal: Calendar, entry: Entry, occ: Occurrence | None, view: View) -> dict[str, Any]:
    core = entry.core
    fields = occ.fields if occ is not None else core.fields
    gid = item_id(cal, entry, occ)
    key = change_key(cal, gid, core.version)
    cancelled = core.cancelled or (occ is not None and occ.cancelled) or entry.removed
    link = join_url(fields)
    markup = _html(fields.description, link)
    text = text_of(markup)
    subject = fields.summary or ""
    if cancelled:
        subject = f"Canceled: {subject}" if subject else "Canceled:"
    org = fields.organizer
    uid = core.ical_uid
    if occ is not None:
        uid = f"{uid}_{occ.instance_id.rsplit('_', 1)[1]}"
    provider = "unknown"
    if link and "teams.microsoft.com" in link:
        provider = "teamsForBusiness"
    location = {
        "displayName": fields.location or "",
        "locationType": "default",
        "uniqueIdType": "unknown",
        "address": {},
        "coordinates": {},
    }
    out: dict[str, Any] = {
        "@odata.etag": f'W/"{key}"',
        "id": gid,
        "createdDateTime": stamp(occ.created if occ is not None else core.created),
        "lastModifiedDateTime": stamp(occ.updated if occ is not None else core.updated),
        "changeKey": key,
        "categories": [],
        "transactionId": None,
        "originalStartTimeZone": fields.start.tz or core.tz,
        "originalEndTimeZone": fields.end.tz or fields.start.tz or core.tz,
        "iCalUId": uid,
        "reminderMinutesBeforeStart": 15,
        "isReminderOn": True,
        "hasAttachments": False,
        "subject": subject,
        "bodyPreview": " ".join(text.split())[:255],
        "importance": "normal",
        "sensitivity": _SENSITIVITY.get(str(fields.extra.get("visibility")), "normal"),
        "isAllDay": fields.start.all_day,
        "isCancelled": cancelled,
        "isOrganizer": org is not None and org.email == cal.owner,
        "responseRequested": True,
        "seriesMasterId": ids.event_id(cal.id, core.id) if occ is not None else None,
        "showAs": _show_as(fields),
        "type": _kind(entry, occ),
        "webLink": (
            "https://outlook.office365.com/owa/?itemid="
            f"{quote(gid, safe='')}&exvsurl=1&path=/calendar/item"
        ),
        "onlineMeetingUrl": None,
        "isOnlineMeeting": link is not None,
        "onlineMeetingProvider": provider if link else "unknown",
        "allowNewTimeProposals": True,
        "isDraft": False,
        "hideAttendees": False,
        "responseStatus": _response(cal, fields),
        "body": (
            {"contentType": "text", "content": text}
            if view.text_body
            else {"contentType": "html", "content": markup}
        ),
        "start": _time(fields.start, view),
        "end": _time(fields.end, view),
        "location": location,
        "locations": [location] if fields.location else [],
        "recurrence": None,
        "attendees": _attendees(fields),
        "organizer": {"emailAddress": _email(org.display_name, org.email)} if org else None,
        "onlineMeeting": {"joinUrl": link} if link else None,
    }
    if occ is not None:
        out["originalStart"] = stamp(occ.original_start.utc(core.tz)).replace(".0000000Z", "Z")
    elif core.is_series:
        first = fields.start.day if fields.start.day is not None else fields.start.at
        assert first is not None
        out["recurrence"] = patterned(fields.recurrence, first, core.tz)
    overrides = fields.extra.get("graph")
    if isinstance(overrides, dict):
        out.update(overrides)
    return out
