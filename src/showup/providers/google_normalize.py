"""Google Calendar event JSON → :class:`RemoteEvent` / :class:`RemoteDeletion`.

Follows PROTOCOLS §1.3 (event resource). Pure functions over dicts, on the hot path of a
full sync (hundreds of thousands of items), so they avoid per-event validation models:
times are parsed with ``datetime.fromisoformat`` (3.11 accepts RFC 3339's ``Z``) and
``ZoneInfo`` objects are cached by name.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, tzinfo
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from showup.meetings import from_google_event
from showup.providers.base import Attendee, RemoteDeletion, RemoteEvent, ResponseStatus

log = logging.getLogger(__name__)

# attendees[].responseStatus (PROTOCOLS §1.3) → our ResponseStatus. Anything unknown is
# treated as "no answer yet", the only reading that promises nothing.
_RESPONSE: dict[str, ResponseStatus] = {
    "needsAction": "needs_action",
    "accepted": "accepted",
    "declined": "declined",
    "tentative": "tentative",
}


class MalformedEvent(ValueError):
    """An item we cannot turn into an occurrence (no id, no usable start/end)."""


@lru_cache(maxsize=1024)
def zone(name: str) -> tzinfo:
    """``ZoneInfo(name)``, cached: a calendar repeats the same few zones on every item.

    Raises MalformedEvent for a name the tz database does not know.
    """
    if name in ("UTC", "Etc/UTC", "GMT"):
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise MalformedEvent(f"unknown time zone {name!r}") from exc


def parse_time(node: Any, calendar_tz: str | None) -> tuple[datetime, bool]:
    """One ``start``/``end`` object → (aware UTC datetime, is_all_day).

    ``dateTime`` carries an offset, or a ``timeZone`` when it has none (PROTOCOLS §1.3); a
    missing zone falls back to the calendar's. ``date`` (all-day) means midnight in the
    event's ``timeZone`` if given, else the calendar's, else UTC.
    """
    if not isinstance(node, dict):
        raise MalformedEvent("start/end is not an object")
    text = node.get("dateTime")
    if isinstance(text, str):
        try:
            value = datetime.fromisoformat(text)
        except ValueError as exc:
            raise MalformedEvent("unparseable dateTime") from exc
        if value.tzinfo is None:
            name = node.get("timeZone") or calendar_tz
            if not isinstance(name, str):
                raise MalformedEvent("dateTime without offset or timeZone")
            value = value.replace(tzinfo=zone(name))
        return value.astimezone(UTC), False
    text = node.get("date")
    if isinstance(text, str):
        try:
            day = datetime.fromisoformat(text)
        except ValueError as exc:
            raise MalformedEvent("unparseable date") from exc
        name = node.get("timeZone") or calendar_tz or "UTC"
        if not isinstance(name, str):
            raise MalformedEvent("timeZone is not a string")
        return day.replace(tzinfo=zone(name)).astimezone(UTC), True
    raise MalformedEvent("start/end has neither dateTime nor date")


# The same attendee entries recur on every occurrence of a series and across a calendar.
# Keyed by the raw values the Attendee is made from, a hit skips the type checks below
# (equal keys always give equal attendees: a non-string reads as absent either way).
_SEEN: dict[tuple[Any, ...], Attendee] = {}
_SEEN_MAX = 8192


def _attendee(node: dict[str, Any]) -> Attendee:
    get = node.get
    key = (
        get("email"),
        get("displayName"),
        get("responseStatus"),
        get("organizer"),
        get("self"),
        get("resource"),
    )
    try:
        return _SEEN[key]
    except KeyError:
        pass
    except TypeError:  # an unhashable value where a string belongs
        return _attendee_checked(node)
    if len(_SEEN) >= _SEEN_MAX:
        _SEEN.clear()
    attendee = _SEEN[key] = _attendee_checked(node)
    return attendee


def _attendee_checked(node: dict[str, Any]) -> Attendee:
    email = node.get("email")
    name = node.get("displayName")
    status = node.get("responseStatus")
    return _attendee_cached(
        # The cache key must be hashable: a non-string where a string belongs reads as absent.
        email if isinstance(email, str) else None,
        name if isinstance(name, str) else None,
        _RESPONSE.get(status, "needs_action") if isinstance(status, str) else "needs_action",
        bool(node.get("organizer", False)),
        bool(node.get("self", False)),
        bool(node.get("resource", False)),
    )


# Attendee is frozen, and the same people with the same answers recur on every instance of
# a series and across a calendar: a lookup is cheaper than building the dataclass again
# (attendees are most of the normalization cost of a big full sync).
@lru_cache(maxsize=8192)
def _attendee_cached(
    email: str | None,
    name: str | None,
    response_status: ResponseStatus,
    is_organizer: bool,
    is_self: bool,
    is_resource: bool,
) -> Attendee:
    return Attendee(
        email=email,
        name=name,
        response_status=response_status,
        is_organizer=is_organizer,
        is_self=is_self,
        is_resource=is_resource,
    )


def normalize_item(item: Any, calendar_tz: str | None) -> RemoteEvent | RemoteDeletion:
    """One ``items[]`` entry of events.list → a live occurrence or a deletion.

    ``status == "cancelled"`` is a deletion whatever else the stub carries (a cancelled
    stub guarantees only ``id``, PROTOCOLS §1.3). ``raw`` is the item itself, unchanged.
    Raises MalformedEvent when the item has no id or no usable start/end.
    """
    if not isinstance(item, dict):
        raise MalformedEvent("item is not an object")
    platform_id = item.get("id")
    if not isinstance(platform_id, str) or not platform_id:
        raise MalformedEvent("item has no id")
    status = item.get("status")
    if status == "cancelled":
        return RemoteDeletion(platform_id=platform_id, raw=item)

    start, all_day = parse_time(item.get("start"), calendar_tz)
    end_node = item.get("end")
    if end_node is None and item.get("endTimeUnspecified"):
        end = start  # Google's "no end time" events: treat as an instant
    else:
        end, _ = parse_time(end_node, calendar_tz)
    if end < start:  # never seen from Google; keep the occurrence, not a negative span
        end = start

    organizer = item.get("organizer")
    attendees_raw = item.get("attendees")
    attendees = (
        tuple(_attendee(a) for a in attendees_raw if isinstance(a, dict))
        if isinstance(attendees_raw, list)
        else ()
    )
    link = _meeting_link(item, platform_id)
    return RemoteEvent(
        platform_id=platform_id,
        start_time=start,
        end_time=end,
        raw=item,
        ical_uid=item.get("iCalUID"),
        recurring_event_id=item.get("recurringEventId"),
        title=item.get("summary"),
        is_all_day=all_day,
        status="tentative" if status == "tentative" else "confirmed",
        organizer_email=organizer.get("email") if isinstance(organizer, dict) else None,
        attendees=attendees,
        meeting_url=link[0] if link else None,
        meeting_platform=link[1] if link else None,
    )


def _meeting_link(item: dict[str, Any], platform_id: str) -> tuple[str, str] | None:
    # A bug in link extraction on one odd event must not stop a calendar's whole sync:
    # the event is still worth storing, just without a link. Logged loudly to get fixed.
    try:
        link = from_google_event(item)
    except Exception:
        log.exception("meeting link extraction failed for event %s", platform_id)
        return None
    if link is None:
        return None
    return link.url, link.platform


def normalize_items(
    items: Any, calendar_tz: str | None
) -> tuple[list[RemoteEvent], list[RemoteDeletion]]:
    """A page's ``items`` → (upserts, deletions), skipping malformed items with a warning.

    One unreadable item must not block the calendar's sync forever; the warning names the
    event id and the reason only (titles and attendees are personal data, DESIGN inv. 7).
    """
    upserts: list[RemoteEvent] = []
    deletions: list[RemoteDeletion] = []
    if not items:
        return upserts, deletions
    if not isinstance(items, list):
        log.warning("skipping events page: items is not a list")
        return upserts, deletions
    for item in items:
        try:
            change = normalize_item(item, calendar_tz)
        except MalformedEvent as exc:
            event_id = item.get("id") if isinstance(item, dict) else None
            log.warning("skipping malformed Google event %r: %s", event_id, exc)
            continue
        if isinstance(change, RemoteEvent):
            upserts.append(change)
        else:
            deletions.append(change)
    return upserts, deletions
