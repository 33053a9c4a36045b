"""events.list over the world, exactly per PROTOCOLS §1.2 (and §5: empty pages, 410).

A listing is computed once, on its first page, into a snapshot that later pages slice:
the result does not shift under a client that pages while the world changes, and a
page costs a slice. The snapshot also fixes the sync token the last page will carry, at
the calendar's change-log position when the listing began, so changes made while paging
come back in the next incremental sync.

Incremental results (``syncToken``) hold every item whose meeting changed after the
token's position, once, in its latest state, wherever it lies in time: the window of
the original full sync (``timeMin``/``timeMax``) is not remembered. Cancelled items are
minimal stubs; cancelled instances keep ``recurringEventId`` and ``originalStartTime``.
"""

from __future__ import annotations

import base64
import binascii
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from showup.emulator.events import Calendar, Entry, EventCore, Occurrence, split_instance_id
from showup.emulator.google import serialize as ser
from showup.emulator.google.errors import GoogleError
from showup.emulator.model import EventFields, InvalidEvent, format_rfc3339_ms, parse_rfc3339
from showup.emulator.world import World

# §1.2: these may not accompany a syncToken.
_FORBIDDEN_WITH_SYNC = (
    "iCalUID",
    "orderBy",
    "privateExtendedProperty",
    "q",
    "sharedExtendedProperty",
    "timeMin",
    "timeMax",
    "updatedMin",
)
_MAX_SNAPSHOTS = 8192
_SEP = "\x1f"

Params = Callable[[str], list[str]]  # name -> all values of a query parameter


@dataclass(frozen=True, slots=True)
class ListQuery:
    single_events: bool = False
    show_deleted: bool = False
    time_min: datetime | None = None
    time_max: datetime | None = None
    updated_min: datetime | None = None
    order_by: str | None = None
    ical_uid: str | None = None
    q: str | None = None
    event_types: tuple[str, ...] = ()
    max_results: int = 250
    sync_token: str | None = None
    page_token: str | None = None


def _last(get: Params, name: str) -> str | None:
    values = get(name)
    return values[-1] if values else None


def _bool(values: list[str], name: str) -> bool | None:
    if not values:
        return None
    if values[-1].lower() in ("true", "1"):
        return True
    if values[-1].lower() in ("false", "0"):
        return False
    raise GoogleError(400, f"Invalid boolean value for {name}.", "invalid", location=name)


def _time(values: list[str], name: str) -> datetime | None:
    if not values:
        return None
    try:
        return parse_rfc3339(values[-1])
    except InvalidEvent:
        raise GoogleError(400, "Bad Request", "badRequest", location=name) from None


def parse_query(get: Params) -> ListQuery:
    """Validate events.list parameters (§1.2); raise GoogleError 400 on misuse."""
    sync_token = _last(get, "syncToken")
    if sync_token:
        for name in _FORBIDDEN_WITH_SYNC:
            if get(name):
                raise GoogleError(
                    400,
                    f"Sync token cannot be used with the {name} parameter.",
                    "syncTokenWithRequestRestrictions",
                    location=name,
                )
        if _bool(get("showDeleted"), "showDeleted") is False:
            raise GoogleError(
                400,
                "showDeleted=false is not allowed with a sync token.",
                "syncTokenWithRequestRestrictions",
                location="showDeleted",
            )
    single = bool(_bool(get("singleEvents"), "singleEvents"))
    order_by = _last(get, "orderBy")
    if order_by not in (None, "startTime", "updated"):
        raise GoogleError(400, "Invalid value for orderBy.", "invalid", location="orderBy")
    if order_by == "startTime" and not single:
        raise GoogleError(
            400, "The requested ordering is not available for the particular query.", "badRequest"
        )
    try:
        max_results = int((get("maxResults") or ["250"])[-1])
    except ValueError:
        raise GoogleError(400, "Invalid value for maxResults.", "invalid") from None
    if max_results < 1:
        raise GoogleError(400, "Invalid value for maxResults.", "invalid", location="maxResults")
    time_min, time_max = _time(get("timeMin"), "timeMin"), _time(get("timeMax"), "timeMax")
    if time_min and time_max and time_max <= time_min:
        raise GoogleError(
            400, "The specified time range is empty.", "timeRangeEmpty", location="timeMax"
        )
    return ListQuery(
        single_events=single,
        show_deleted=bool(_bool(get("showDeleted"), "showDeleted")),
        # Milliseconds in timeMax are ignored (§1.2).
        time_min=time_min,
        time_max=time_max.replace(microsecond=0) if time_max else None,
        updated_min=_time(get("updatedMin"), "updatedMin"),
        order_by=order_by,
        ical_uid=_last(get, "iCalUID"),
        q=(_last(get, "q") or None),
        event_types=tuple(get("eventTypes")),
        max_results=min(max_results, 2500),  # §1.2: max 2500
        sync_token=sync_token or None,
        page_token=_last(get, "pageToken") or None,
    )


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _unb64(token: str) -> list[str]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return []
    return raw.split(_SEP)


@dataclass(slots=True)
class _Snapshot:
    calendar: Calendar
    items: list[dict[str, Any]]
    sync_token: str
    max_results: int
    key: str | None = None


def _matches_q(fields: EventFields, q: str) -> bool:
    needle = q.lower()
    hay = [fields.summary, fields.description, fields.location]
    hay += [a.email for a in fields.attendees] + [a.display_name for a in fields.attendees]
    if fields.organizer is not None:
        hay += [fields.organizer.email, fields.organizer.display_name]
    return any(needle in h.lower() for h in hay if h)


class EventLister:
    """events.list for one app: sync-token codec, snapshots and page slicing."""

    def __init__(self, world: World) -> None:
        self.world = world
        self._snapshots: OrderedDict[str, _Snapshot] = OrderedDict()
        self._next = 0
        self._lock = threading.Lock()

    # ---- tokens ------------------------------------------------------------------

    def _sync_token(self, cal: Calendar) -> str:
        issued = int(self.world.clock.now().timestamp())
        return "C" + _b64(_SEP.join((cal.id, str(cal.epoch), str(cal.last_seq), str(issued))))

    def _token_position(self, cal: Calendar, token: str) -> int:
        """The change-log position a sync token stands for, or 410 fullSyncRequired."""
        parts = _unb64(token[1:]) if token.startswith("C") else []
        gone = GoogleError(
            410,
            "Sync token is no longer valid, a full sync is required.",
            "fullSyncRequired",
            location="syncToken",
        )
        if len(parts) != 4 or parts[0] != cal.id or parts[1] != str(cal.epoch):
            raise gone
        if not (parts[2].isdigit() and parts[3].isdigit()):
            raise gone
        ttl = self.world.settings.sync_token_ttl
        if (
            ttl is not None
            and int(parts[3]) + ttl.total_seconds() <= self.world.clock.now().timestamp()
        ):
            raise gone
        return int(parts[2])

    # ---- the endpoint --------------------------------------------------------------

    def list_events(self, cal: Calendar, query: ListQuery) -> dict[str, Any]:
        if query.page_token:
            snapshot, offset, page_no = self._resume(cal, query.page_token)
        else:
            with self.world.lock:
                if query.sync_token:
                    position = self._token_position(cal, query.sync_token)
                    items = self._incremental(cal, query, position)
                else:
                    items = self._full(cal, query)
                token = self._sync_token(cal)
            snapshot = _Snapshot(cal, items, token, query.max_results)
            offset, page_no = 0, 1
        size = self._page_size(snapshot.max_results, page_no)
        page = snapshot.items[offset : offset + size]
        body: dict[str, Any] = {
            "kind": "calendar#events",
            "etag": f'"{cal.last_seq}"',
            "summary": cal.summary,
            "updated": format_rfc3339_ms(self.world.clock.now()),
            "timeZone": cal.time_zone,
            "accessRole": "owner",
            "defaultReminders": [],
            "items": page,
        }
        if offset + size < len(snapshot.items):
            body["nextPageToken"] = self._store(snapshot, offset + size, page_no + 1)
        else:
            body["nextSyncToken"] = snapshot.sync_token  # §1.2: last page only
        return body

    def _page_size(self, max_results: int, page_no: int) -> int:
        # §1.2/§5: pages may be empty or short while more remain. Page 1 is always full;
        # then every 2nd of three is empty and every 3rd half-size.
        if not self.world.settings.quirky_pages or page_no % 3 == 1:
            return max_results
        return 0 if page_no % 3 == 2 else max(1, max_results // 2)

    def _store(self, snapshot: _Snapshot, offset: int, page_no: int) -> str:
        with self._lock:
            if snapshot.key is None:
                self._next += 1
                snapshot.key = str(self._next)
                self._snapshots[snapshot.key] = snapshot
                while len(self._snapshots) > _MAX_SNAPSHOTS:
                    self._snapshots.popitem(last=False)
        return "P" + _b64(_SEP.join((snapshot.key, str(offset), str(page_no))))

    def _resume(self, cal: Calendar, token: str) -> tuple[_Snapshot, int, int]:
        parts = _unb64(token[1:]) if token.startswith("P") else []
        valid = len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit()
        with self._lock:
            snapshot = self._snapshots.get(parts[0]) if valid else None
            if snapshot is not None:
                self._snapshots.move_to_end(parts[0])  # least recently used goes first
        if snapshot is None or snapshot.calendar is not cal:
            raise GoogleError(400, "Invalid page token.", "invalid", location="pageToken")
        return snapshot, int(parts[1]), int(parts[2])

    # ---- full listings -------------------------------------------------------------

    def _full(self, cal: Calendar, query: ListQuery) -> list[dict[str, Any]]:
        horizon = query.time_max or self.world.horizon()
        if query.time_min is not None and query.time_max is None:
            horizon = max(horizon, query.time_min + self.world.settings.expansion_horizon)
        # updatedMin always brings deletions (§1.2).
        deleted = query.show_deleted or query.updated_min is not None
        rows: list[tuple[float, str, dict[str, Any]]] = []

        def keep(fields: EventFields, start: datetime, end: datetime, updated: datetime) -> bool:
            if query.time_min is not None and end <= query.time_min:
                return False
            if query.time_max is not None and start >= query.time_max:
                return False
            if query.updated_min is not None and updated < query.updated_min:
                return False
            if query.event_types and fields.event_type not in query.event_types:
                return False
            return not (query.q and not _matches_q(fields, query.q))

        def add(start: datetime, updated: datetime, item: dict[str, Any]) -> None:
            key = updated if query.order_by == "updated" else start
            rows.append((key.timestamp(), item["id"], item))

        for entry in cal.entries.values():
            core = entry.core
            if query.ical_uid is not None and core.ical_uid != query.ical_uid:
                continue
            if not core.is_series:
                start, end = core.start_utc(), core.end_utc()
                if entry.cancelled:
                    if deleted and keep(core.fields, start, end, core.updated):
                        add(start, core.updated, ser.entry_stub(entry))
                elif keep(core.fields, start, end, core.updated):
                    add(start, core.updated, ser.render_entry(cal, entry))
            elif query.single_events:
                self._full_instances(cal, entry, horizon, deleted, keep, add)
            else:
                self._full_master(cal, entry, horizon, deleted, keep, add)
        rows.sort(key=lambda r: (r[0], r[1]))
        return [r[2] for r in rows]

    def _full_instances(
        self,
        cal: Calendar,
        entry: Entry,
        horizon: datetime,
        deleted: bool,
        keep: Callable[[EventFields, datetime, datetime, datetime], bool],
        add: Callable[[datetime, datetime, dict[str, Any]], None],
    ) -> None:
        for occ in entry.core.windowed(horizon):
            if not keep(occ.fields, occ.start_utc, occ.end_utc, occ.updated):
                continue
            if entry.cancelled or occ.cancelled:
                # §1.2: singleEvents+showDeleted returns deleted single instances.
                if deleted:
                    add(occ.start_utc, occ.updated, ser.occurrence_stub(entry, occ))
            else:
                add(occ.start_utc, occ.updated, ser.render_occurrence(cal, entry, occ))
        if deleted:
            for iid, retired in entry.core.retired.items():
                start = retired.original_start.utc(entry.core.tz)
                add(start, retired.updated, ser.retired_stub(entry, iid, retired))

    def _full_master(
        self,
        cal: Calendar,
        entry: Entry,
        horizon: datetime,
        deleted: bool,
        keep: Callable[[EventFields, datetime, datetime, datetime], bool],
        add: Callable[[datetime, datetime, dict[str, Any]], None],
    ) -> None:
        core = entry.core
        occs = core.windowed(horizon)
        # The master stands for the series: it is in the window if any instance is.
        in_window = any(keep(core.fields, o.start_utc, o.end_utc, core.updated) for o in occs)
        if entry.cancelled:
            if deleted and in_window:
                add(core.start_utc(), core.updated, ser.entry_stub(entry))
            return
        if in_window:
            add(core.start_utc(), core.updated, ser.render_entry(cal, entry))
        # Exceptions ride along; cancelled ones even without showDeleted (§1.2).
        for occ in occs:
            if occ.override is None or not keep(
                occ.fields, occ.start_utc, occ.end_utc, occ.updated
            ):
                continue
            if occ.cancelled:
                add(occ.start_utc, occ.updated, ser.occurrence_stub(entry, occ))
            else:
                add(occ.start_utc, occ.updated, ser.render_occurrence(cal, entry, occ))

    # ---- incremental ---------------------------------------------------------------

    def _incremental(self, cal: Calendar, query: ListQuery, position: int) -> list[dict[str, Any]]:
        horizon = self.world.horizon()
        out: list[dict[str, Any]] = []
        for core_id, items in cal.changes_since(position).items():
            entry = cal.entries[core_id]
            core = entry.core
            if not core.is_series:
                out.append(self._one(cal, entry, None))
                continue
            if query.single_events and None in items:
                out.extend(self._one(cal, entry, o) for o in core.windowed(horizon))
            elif None in items:
                out.append(self._one(cal, entry, None))
            out.extend(self._instances(cal, entry, (i for i in items if i is not None)))
        seen: set[str] = set()
        unique = []
        for item in out:
            if item["id"] not in seen:
                seen.add(item["id"])
                unique.append(item)
        return unique

    def _one(self, cal: Calendar, entry: Entry, occ: Occurrence | None) -> dict[str, Any]:
        if occ is None:
            return ser.entry_stub(entry) if entry.cancelled else ser.render_entry(cal, entry)
        if entry.cancelled or occ.cancelled:
            return ser.occurrence_stub(entry, occ)
        return ser.render_occurrence(cal, entry, occ)

    def _instances(self, cal: Calendar, entry: Entry, ids: Iterable[str]) -> list[dict[str, Any]]:
        core: EventCore = entry.core
        out = []
        for iid in sorted(ids):
            split = split_instance_id(iid)
            occ = core.find_instance(split[1]) if split else None
            if occ is not None:
                out.append(self._one(cal, entry, occ))
            elif iid in core.retired:
                out.append(ser.retired_stub(entry, iid, core.retired[iid]))
        return out
