"""Microsoft Graph event JSON → :class:`RemoteEvent` / :class:`RemoteDeletion`.

Follows PROTOCOLS §2.2 (delta items, ``@removed``) and §2.3 (the event resource). Pure
functions over dicts, like :mod:`showup.providers.google_normalize`:

* ``@removed`` and ``isCancelled: true`` are deletions; ``type: seriesMaster`` items are not
  occurrences and are skipped (a calendarView lists the occurrences themselves), but they
  are remembered: delta sends occurrences *sparse* (``id``, ``seriesMasterId``, ``type``,
  ``start``, ``end``), so subject, people, body and join link come from their master;
* ``start``/``end`` are ``{dateTime, timeZone}`` with no offset; the adapter asks for UTC,
  and Windows zone names are mapped (:mod:`.microsoft_zones`) when a server ignores that.
  All-day events are midnight-to-midnight dates: a midnight is read in the event's
  ``originalStartTimeZone`` (as Google's dates are read in the calendar's zone);
* the calendar owner's attendee entry is ``is_self``; its answer is the event's
  ``responseStatus`` (the owner's own reply), which the attendee list may not reflect;
* the join link comes from :func:`showup.meetings.from_graph_event` (``onlineMeeting.joinUrl``
  first, then the location and the body).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, time
from functools import lru_cache
from typing import Any

from showup.meetings import from_graph_event
from showup.providers.base import Attendee, RemoteDeletion, RemoteEvent, ResponseStatus
from showup.providers.microsoft_zones import UnknownTimeZone, graph_zone

log = logging.getLogger(__name__)

# attendees[].status.response and responseStatus.response (PROTOCOLS §2.3) → ours. Unknown
# values read as "no answer yet", the only reading that promises nothing.
_RESPONSE: dict[str, ResponseStatus] = {
    "none": "needs_action",
    "notResponded": "needs_action",
    "accepted": "accepted",
    "organizer": "accepted",
    "declined": "declined",
    "tentativelyAccepted": "tentative",
}


class MalformedEvent(ValueError):
    """An item we cannot turn into an occurrence (no id, no usable start/end)."""


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _response(value: object) -> ResponseStatus:
    return _RESPONSE.get(value, "needs_action") if isinstance(value, str) else "needs_action"


# What an occurrence does not inherit from its series master: its identity and times, and
# the master's own bookkeeping (PROTOCOLS §2.3).
_NOT_INHERITED = frozenset(
    {
        "id",
        "type",
        "seriesMasterId",
        "start",
        "end",
        "originalStart",
        "recurrence",
        "@odata.etag",
        "@removed",
        "changeKey",
        "createdDateTime",
        "lastModifiedDateTime",
    }
)
_INSTANCE_TYPES = frozenset({"occurrence", "exception"})


def sparse_master_id(item: Any) -> str | None:
    """The ``seriesMasterId`` of a sparse occurrence (one without a ``subject``), else None."""
    if not isinstance(item, dict) or "@removed" in item or "subject" in item:
        return None
    if item.get("type") not in _INSTANCE_TYPES:
        return None
    return _str(item.get("seriesMasterId"))


def with_master(item: dict[str, Any], masters: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """An occurrence completed with its master's fields (the occurrence's own keys win)."""
    if item.get("type") not in _INSTANCE_TYPES or "@removed" in item:
        return item
    master = masters.get(item.get("seriesMasterId") or "")
    if master is None or "subject" in item:
        return item
    inherited = {k: v for k, v in master.items() if k not in _NOT_INHERITED}
    return {**inherited, **item}


def parse_time(node: Any, all_day_zone: Any = None) -> datetime:
    """One ``dateTimeTimeZone`` object → aware UTC.

    ``dateTime`` has no offset and up to seven fractional digits
    (``2016-12-09T20:30:00.0000000``); ``timeZone`` names its zone (``UTC`` when we asked
    for it, else a Windows or IANA name). A string that does carry an offset is honoured.
    ``all_day_zone`` (an all-day event's ``originalStartTimeZone``) is the zone of a bare
    midnight, when it is a zone we know.
    """
    if not isinstance(node, dict):
        raise MalformedEvent("start/end is not an object")
    text = node.get("dateTime")
    if not isinstance(text, str):
        raise MalformedEvent("start/end has no dateTime")
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise MalformedEvent("unparseable dateTime") from exc
    if value.tzinfo is None and isinstance(all_day_zone, str) and value.time() == time(0):
        try:
            return value.replace(tzinfo=graph_zone(all_day_zone)).astimezone(UTC)
        except UnknownTimeZone:
            pass  # e.g. "tzone://Microsoft/Custom": fall back to the given timeZone
    if value.tzinfo is None:
        name = node.get("timeZone")
        if name is None:
            name = "UTC"
        if not isinstance(name, str):
            raise MalformedEvent("timeZone is not a string")
        try:
            value = value.replace(tzinfo=graph_zone(name))
        except UnknownTimeZone as exc:
            raise MalformedEvent(f"unknown time zone {name!r}") from exc
    return value.astimezone(UTC)


def _attendee(
    node: dict[str, Any], owner: str | None, organizer: str | None, mine: object
) -> Attendee:
    address = _dict(node.get("emailAddress"))
    email = _str(address.get("address"))
    folded = email.lower() if email else None
    is_self = folded is not None and folded == owner
    response = _response(_dict(node.get("status")).get("response"))
    if is_self and isinstance(mine, str) and mine in _RESPONSE and mine != "none":
        response = _RESPONSE[mine]  # the owner's own reply is authoritative for them
    return _attendee_cached(
        email,
        _str(address.get("name")),
        response,
        folded is not None and folded == organizer,
        is_self,
        node.get("type") == "resource",
    )


# Frozen and repeated across a series' occurrences: a lookup beats building it again.
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


def normalize_item(item: Any, owner_email: str | None) -> RemoteEvent | RemoteDeletion | None:
    """One ``value[]`` entry of a calendarView (delta) page → occurrence, deletion or None.

    None means "not an occurrence" (a ``seriesMaster``). ``owner_email`` is the calendar
    owner's address, used to mark their attendee entry ``is_self``. ``raw`` is the item
    unchanged. Raises MalformedEvent when the item has no id or no usable start/end.
    """
    if not isinstance(item, dict):
        raise MalformedEvent("item is not an object")
    platform_id = _str(item.get("id"))
    if platform_id is None:
        raise MalformedEvent("item has no id")
    if item.get("type") == "seriesMaster":
        return None  # its occurrences are listed (or removed) one by one
    if "@removed" in item or item.get("isCancelled") is True:
        return RemoteDeletion(platform_id=platform_id, raw=item)

    all_day = item.get("isAllDay") is True
    start = parse_time(item.get("start"), item.get("originalStartTimeZone") if all_day else None)
    end = parse_time(item.get("end"), item.get("originalEndTimeZone") if all_day else None)
    if end < start:  # keep the occurrence, not a negative span
        end = start

    organizer = _str(_dict(_dict(item.get("organizer")).get("emailAddress")).get("address"))
    owner = owner_email.lower() if owner_email else None
    mine = _dict(item.get("responseStatus")).get("response")
    attendees_raw = item.get("attendees")
    attendees = (
        tuple(
            _attendee(a, owner, organizer.lower() if organizer else None, mine)
            for a in attendees_raw
            if isinstance(a, dict)
        )
        if isinstance(attendees_raw, list)
        else ()
    )
    link = _meeting_link(item, platform_id)
    return RemoteEvent(
        platform_id=platform_id,
        start_time=start,
        end_time=end,
        raw=item,
        ical_uid=_str(item.get("iCalUId")),
        recurring_event_id=_str(item.get("seriesMasterId")),
        title=_str(item.get("subject")),
        is_all_day=all_day,
        status="confirmed",
        organizer_email=organizer,
        attendees=attendees,
        meeting_url=link[0] if link else None,
        meeting_platform=link[1] if link else None,
    )


def _meeting_link(item: dict[str, Any], platform_id: str) -> tuple[str, str] | None:
    # A bug in link extraction on one odd event must not stop a calendar's whole sync.
    try:
        link = from_graph_event(item)
    except Exception:
        log.exception("meeting link extraction failed for event %s", platform_id)
        return None
    if link is None:
        return None
    return link.url, link.platform


def normalize_items(
    items: Any, owner_email: str | None, masters: dict[str, dict[str, Any]] | None = None
) -> tuple[list[RemoteEvent], list[RemoteDeletion]]:
    """A page's ``value`` → (upserts, deletions), the last word per id, malformed skipped.

    Delta pages may replay an item or name it twice (PROTOCOLS §2.2); only the last entry
    for an id counts, so "changed then removed" within one page is a deletion. Series
    masters met on the way are added to ``masters`` (kept by the caller for the round) and
    complete the sparse occurrences that follow. One unreadable item must not block the
    calendar's sync: it is logged by id and reason only (subjects and attendees are
    personal data, DESIGN invariant 7).
    """
    masters = {} if masters is None else masters
    if not items:
        return [], []
    if not isinstance(items, list):
        log.warning("skipping Graph page: value is not a list")
        return [], []
    latest: dict[str, RemoteEvent | RemoteDeletion] = {}
    for item in items:
        if isinstance(item, dict) and item.get("type") == "seriesMaster":
            master_id = _str(item.get("id"))
            if master_id is not None and "@removed" not in item:
                masters[master_id] = item
        elif isinstance(item, dict):
            item = with_master(item, masters)
        try:
            change = normalize_item(item, owner_email)
        except MalformedEvent as exc:
            event_id = item.get("id") if isinstance(item, dict) else None
            log.warning("skipping malformed Graph event %r: %s", event_id, exc)
            continue
        if change is None:
            continue
        latest.pop(change.platform_id, None)  # re-insert: dict order = order of last word
        latest[change.platform_id] = change
    upserts = [c for c in latest.values() if isinstance(c, RemoteEvent)]
    deletions = [c for c in latest.values() if isinstance(c, RemoteDeletion)]
    return upserts, deletions
