"""Google Calendar event JSON → :class:`RemoteEvent` / :class:`RemoteDeletion`.

Follows PROTOCOLS §1.3 (event resource). Pure functions, on the hot path of a full sync
(hundreds of thousands of items), so they avoid per-event validation models: times are
parsed with ``datetime.fromisoformat`` (3.11 accepts RFC 3339's ``Z``) and ``ZoneInfo``
objects are cached by name. A whole page is read from its bytes by :func:`events_page`,
which decodes only the members read here (typed, with msgspec) and keeps each item's JSON
text for ``raw``; :func:`normalize_item` reads an item already decoded into dicts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from functools import lru_cache
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from showup.meetings import MeetingLink, find_meeting_link, from_google_event
from showup.providers.base import Attendee, RawJSON, RemoteDeletion, RemoteEvent, ResponseStatus
from showup.providers.http import decode_json, without_nul

log = logging.getLogger(__name__)
_T = TypeVar("_T")

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
    return _instant(node.get("dateTime"), node.get("date"), node.get("timeZone"), calendar_tz)


def _instant(
    date_time: object, date: object, time_zone: object, calendar_tz: str | None
) -> tuple[datetime, bool]:
    """:func:`parse_time` of the object's three members."""
    if isinstance(date_time, str):
        try:
            value = datetime.fromisoformat(date_time)
        except ValueError as exc:
            raise MalformedEvent("unparseable dateTime") from exc
        if value.tzinfo is None:
            name = time_zone or calendar_tz
            if not isinstance(name, str):
                raise MalformedEvent("dateTime without offset or timeZone")
            value = value.replace(tzinfo=zone(name))
        return value.astimezone(UTC), False
    if isinstance(date, str):
        try:
            day = datetime.fromisoformat(date)
        except ValueError as exc:
            raise MalformedEvent("unparseable date") from exc
        name = time_zone or calendar_tz or "UTC"
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
    return _attendee_of(
        (
            get("email"),
            get("displayName"),
            get("responseStatus"),
            get("organizer"),
            get("self"),
            get("resource"),
        )
    )


def _attendee_of(key: tuple[Any, ...]) -> Attendee:
    """The attendee of an entry's (email, displayName, responseStatus, organizer, self,
    resource) members, absent ones ``None``."""
    try:
        return _SEEN[key]
    except KeyError:
        pass
    except TypeError:  # an unhashable value where a string belongs
        return _attendee_checked(*key)
    if len(_SEEN) >= _SEEN_MAX:
        _SEEN.clear()
    attendee = _SEEN[key] = _attendee_checked(*key)
    return attendee


def _attendee_checked(
    email: Any, name: Any, status: Any, organizer: Any, is_self: Any, resource: Any
) -> Attendee:
    return _attendee_cached(
        # The cache key must be hashable: a non-string where a string belongs reads as absent.
        email if isinstance(email, str) else None,
        name if isinstance(name, str) else None,
        _RESPONSE.get(status, "needs_action") if isinstance(status, str) else "needs_action",
        bool(organizer or False),
        bool(is_self or False),
        bool(resource or False),
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
    return _guarded_link(from_google_event, item, platform_id)


def _guarded_link(
    find: Callable[[_T], MeetingLink | None], source: _T, platform_id: str
) -> tuple[str, str] | None:
    # A bug in link extraction on one odd event must not stop a calendar's whole sync:
    # the event is still worth storing, just without a link. Logged loudly to get fixed.
    try:
        link = find(source)
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
    if not items:
        return [], []
    if not isinstance(items, list):
        log.warning("skipping events page: items is not a list")
        return [], []
    return _split(_read(item, calendar_tz) for item in items)


def _read(item: Any, calendar_tz: str | None) -> RemoteEvent | RemoteDeletion | None:
    """:func:`normalize_item`, or ``None`` (and a warning) for a malformed item."""
    try:
        return normalize_item(item, calendar_tz)
    except MalformedEvent as exc:
        event_id = item.get("id") if isinstance(item, dict) else None
        log.warning("skipping malformed Google event %r: %s", event_id, exc)
        return None


def _split(
    changes: Iterable[RemoteEvent | RemoteDeletion | None],
) -> tuple[list[RemoteEvent], list[RemoteDeletion]]:
    upserts: list[RemoteEvent] = []
    deletions: list[RemoteDeletion] = []
    for change in changes:
        if isinstance(change, RemoteEvent):
            upserts.append(change)
        elif change is not None:
            deletions.append(change)
    return upserts, deletions


# -- A whole events.list page, straight from its bytes ----------------------------------------
#
# The fast path of a sync. Decoding a page into dicts builds every string of every event
# (links to the event page, reminders, the conference's icon and request ids, ...), and
# storing ``raw`` then encodes each event back to JSON. Here each item of the page is kept
# as its JSON text (``raw`` stores that text as is) and only the members read below are
# decoded, into typed structs. An item whose members do not have the types Google documents
# goes through :func:`normalize_item` instead (the same outcome, a dict's way), and a page
# that is not plain UTF-8 JSON of the expected shape through :func:`events_page_of`.


@dataclass(frozen=True, slots=True)
class EventsPage:
    """One events.list answer: its items normalized, and where it leads."""

    upserts: list[RemoteEvent]
    deletions: list[RemoteDeletion]
    next_page_token: str | None
    next_sync_token: str | None


# Members carry Google's names (camelCase), so that msgspec matches them without renaming.
class _Time(msgspec.Struct):
    dateTime: str | None = None
    date: str | None = None
    timeZone: str | None = None


class _Person(msgspec.Struct):
    email: str | None = None


class _Attendee(msgspec.Struct):
    email: str | None = None
    displayName: str | None = None
    responseStatus: str | None = None
    organizer: bool | None = None
    is_self: bool | None = msgspec.field(default=None, name="self")
    resource: bool | None = None


class _EntryPoint(msgspec.Struct):
    entryPointType: str | None = None
    uri: str | None = None


class _Conference(msgspec.Struct):
    entryPoints: list[_EntryPoint] | None = None


_ABSENT = msgspec.Raw()


class _Item(msgspec.Struct):
    id: str | None = None
    status: str | None = None
    start: _Time | None = None
    end: _Time | None = None
    endTimeUnspecified: bool | None = None
    summary: str | None = None
    location: str | None = None
    description: str | None = None
    hangoutLink: str | None = None
    conferenceData: _Conference | None = None
    attendees: list[_Attendee] | None = None
    organizer: _Person | None = None
    iCalUID: str | None = None
    recurringEventId: str | None = None
    # Bookkeeping (plan._VOLATILE_RAW_KEYS), as their JSON text: cut out of the hashed text.
    etag: msgspec.Raw = _ABSENT
    updated: msgspec.Raw = _ABSENT
    sequence: msgspec.Raw = _ABSENT


class _Page(msgspec.Struct):
    items: list[msgspec.Raw] | None = None
    timeZone: str | None = None
    nextPageToken: str | None = None
    nextSyncToken: str | None = None


_PAGE = msgspec.json.Decoder(_Page)
_ITEM = msgspec.json.Decoder(_Item)
_compact = msgspec.json.format


class _NotTyped(Exception):
    """The page is not what the fast path reads; the general path takes it."""


def events_page(body: bytes) -> EventsPage:
    """An events.list response body → :class:`EventsPage`.

    Raises ValueError when the body is not JSON, or not an object. Text holding NUL reads
    as if it held U+FFFD there (``http.without_nul``).
    """
    body = without_nul(body)
    try:
        return _typed_page(body)
    except (_NotTyped, msgspec.DecodeError):
        pass
    value = decode_json(body)
    if not isinstance(value, dict):
        raise ValueError("events page is not a JSON object")
    return events_page_of(value)


def events_page_of(body: dict[str, Any]) -> EventsPage:
    """:func:`events_page` of a body decoded already."""
    calendar_tz = body.get("timeZone")
    upserts, deletions = normalize_items(
        body.get("items"), calendar_tz if isinstance(calendar_tz, str) else None
    )
    next_page, sync_token = body.get("nextPageToken"), body.get("nextSyncToken")
    return EventsPage(
        upserts,
        deletions,
        next_page if isinstance(next_page, str) and next_page else None,
        sync_token if isinstance(sync_token, str) and sync_token else None,
    )


def _typed_page(body: bytes) -> EventsPage:
    # Compact first: Google indents its JSON, and each item's text is stored as is.
    page = _PAGE.decode(_compact(body, indent=-1))
    upserts, deletions = _split(_item_change(text, page.timeZone) for text in page.items or ())
    return EventsPage(upserts, deletions, page.nextPageToken or None, page.nextSyncToken or None)


def _item_change(text: msgspec.Raw, calendar_tz: str | None) -> RemoteEvent | RemoteDeletion | None:
    try:
        return _typed_item(text, calendar_tz)
    except (msgspec.DecodeError, MalformedEvent):
        # Members of other types than documented, or no usable id or times: the general
        # path reads it (a dict's way) and knows what to skip and log.
        return _read(decode_json(bytes(text)), calendar_tz)


def _typed_item(text: msgspec.Raw, calendar_tz: str | None) -> RemoteEvent | RemoteDeletion:
    """:func:`normalize_item` of one item's JSON text, for well-formed items. Raises
    msgspec.DecodeError or MalformedEvent for the rest, which the general path takes."""
    item = _ITEM.decode(text)
    platform_id = item.id
    if not platform_id:
        raise MalformedEvent("item has no id")
    if item.status == "cancelled":
        return RemoteDeletion(platform_id=platform_id, raw=decode_json(bytes(text)))
    start_node, end_node = item.start, item.end
    if start_node is None or (end_node is None and not item.endTimeUnspecified):
        raise MalformedEvent("start/end is not an object")
    start, all_day = _instant(
        start_node.dateTime, start_node.date, start_node.timeZone, calendar_tz
    )
    if end_node is None:
        end = start  # Google's "no end time" events: treat as an instant
    else:
        end, _ = _instant(end_node.dateTime, end_node.date, end_node.timeZone, calendar_tz)
    if end < start:
        end = start
    data = bytes(text)
    try:
        raw = RawJSON(data.decode(), _stable(data, item))
    except UnicodeDecodeError as exc:
        raise _NotTyped from exc  # the general path refuses the page, as it always did
    attendees = (
        tuple(
            [
                _attendee_of(
                    (a.email, a.displayName, a.responseStatus, a.organizer, a.is_self, a.resource)
                )
                for a in item.attendees
            ]
        )
        if item.attendees
        else ()
    )
    link = _guarded_link(_typed_link, item, platform_id)
    return RemoteEvent(
        platform_id=platform_id,
        start_time=start,
        end_time=end,
        raw=raw,
        ical_uid=item.iCalUID,
        recurring_event_id=item.recurringEventId,
        title=item.summary,
        is_all_day=all_day,
        status="tentative" if item.status == "tentative" else "confirmed",
        organizer_email=item.organizer.email if item.organizer is not None else None,
        attendees=attendees,
        meeting_url=link[0] if link else None,
        meeting_platform=link[1] if link else None,
    )


def _typed_link(item: _Item) -> MeetingLink | None:
    """:func:`from_google_event`'s precedence over the typed members."""
    conference = item.conferenceData
    videos = (
        [e.uri for e in conference.entryPoints if e.entryPointType == "video"]
        if conference is not None and conference.entryPoints
        else []
    )
    return find_meeting_link(
        *videos, item.hangoutLink, item.location, item.description, item.summary
    )


def _stable(data: bytes, item: _Item) -> bytes:
    """``data`` without its bookkeeping members, for the fingerprint.

    Each is cut where ``"name":value`` first occurs. Inside a JSON string a quote is
    escaped, so that is a member: the event's own, unless a nested object before it holds
    the same name with the same value (then only that one is cut, and the event's stays in
    the hash, which costs at most an ``updated_at`` move). The rest of the text is the
    provider's, in its order: Google serializes a resource the same way every time, so
    equal content gives equal text.
    """
    for name, value in (
        (b'"etag":', item.etag),
        (b'"updated":', item.updated),
        (b'"sequence":', item.sequence),
    ):
        if value:
            data = data.replace(name + bytes(value), b"", 1)
    return data
