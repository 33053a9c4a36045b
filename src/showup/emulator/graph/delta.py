"""``calendarView/delta`` over the world (PROTOCOLS §2.2, §5): rounds, tokens, paging.

A round starts with ``startDateTime``/``endDateTime`` (first sync) or a
``$deltatoken`` (incremental). It is computed once, on its first page, into a
snapshot that later pages (``$skiptoken``) slice, so paging is stable while the world
changes; the delta token of the last page is fixed at the calendar's change-log
position when the round began, so changes made while paging come in the next round.

Delta tokens are stateless: calendar, epoch, range and world sequence position (plus
the issue time for ``sync_token_ttl``). Re-following an old deltaLink therefore replays
its changes. ``world.expire_sync_tokens()`` bumps the calendar's epoch: every delta and
skip token of it then answers 410 ``SyncStateNotFound``.

Incremental rounds report each changed item once, in its latest state: live items in
range in full, anything deleted, cancelled or outside the range as ``@removed`` (§2.2
"Deletions": a calendarView delta also reports changes outside the range that way).
"""

from __future__ import annotations

import base64
import binascii
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from showup.emulator.events import Calendar, Entry, Occurrence, split_instance_id
from showup.emulator.graph import ids
from showup.emulator.graph import serialize as ser
from showup.emulator.graph.errors import GraphError
from showup.emulator.world import World

MAX_PAGE = 1000
_MAX_SNAPSHOTS = 4096
_SEP = "\x1f"
# A few Windows zone names Outlook clients send (§2.2 "Prefer: outlook.timezone").
WINDOWS_ZONES = {
    "UTC": "UTC",
    "GMT Standard Time": "Europe/London",
    "W. Europe Standard Time": "Europe/Berlin",
    "Romance Standard Time": "Europe/Paris",
    "Central Europe Standard Time": "Europe/Budapest",
    "Eastern Standard Time": "America/New_York",
    "Central Standard Time": "America/Chicago",
    "Mountain Standard Time": "America/Denver",
    "Pacific Standard Time": "America/Los_Angeles",
    "India Standard Time": "Asia/Kolkata",
    "Tokyo Standard Time": "Asia/Tokyo",
    "AUS Eastern Standard Time": "Australia/Sydney",
}
_PREFER_SPLIT = re.compile(r',(?=(?:[^"]*"[^"]*")*[^"]*$)')


def preferences(headers: list[str]) -> dict[str, str]:
    """``Prefer`` header values by lower-case name, quotes removed."""
    out: dict[str, str] = {}
    for header in headers:
        for part in _PREFER_SPLIT.split(header):
            key, _, value = part.strip().partition("=")
            if key:
                out[key.strip().lower()] = value.strip().strip('"')
    return out


def view_of(prefs: dict[str, str]) -> ser.View:
    text = prefs.get("outlook.body-content-type", "").lower() == "text"
    label = prefs.get("outlook.timezone") or "UTC"
    try:
        zone = ZoneInfo(WINDOWS_ZONES.get(label, label))
    except (ZoneInfoNotFoundError, ValueError):
        raise GraphError(
            400,
            "TimeZoneNotSupportedException",
            f"A valid TimeZone value must be specified. The following TimeZone value is "
            f"not supported: '{label}'.",
        ) from None
    return ser.View(label=label, zone=zone, text_body=text)


def max_page_size(prefs: dict[str, str]) -> int | None:
    raw = prefs.get("odata.maxpagesize")
    if raw is None or not raw.isdigit() or int(raw) < 1:
        return None
    return min(int(raw), MAX_PAGE)


def parse_time(value: str, name: str) -> datetime:
    """ISO 8601; no offset means UTC (§2.2). A ``+`` decoded as a space is restored."""
    text = value.strip().replace(" ", "+")
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise GraphError(
            400, "ErrorInvalidParameter", f"The value '{value}' of parameter '{name}' is invalid."
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Range:
    start: datetime
    end: datetime

    def overlaps(self, start: datetime, end: datetime) -> bool:
        return start < self.end and end > self.start


def parse_range(params: dict[str, str]) -> Range:
    """``startDateTime``/``endDateTime`` (names case-insensitive), both required."""
    start, end = params.get("startdatetime"), params.get("enddatetime")
    if not start or not end:
        raise GraphError(
            400,
            "ErrorInvalidParameter",
            "This request requires a time window specified by the query string parameters "
            "StartDateTime and EndDateTime.",
        )
    rng = Range(parse_time(start, "startDateTime"), parse_time(end, "endDateTime"))
    if rng.end <= rng.start:
        raise GraphError(400, "ErrorInvalidParameter", "EndDateTime must be after StartDateTime.")
    return rng


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _unb64(token: str) -> list[str]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return []
    return raw.split(_SEP)


def gone() -> GraphError:
    return GraphError(
        410,
        "SyncStateNotFound",
        "The sync state generation is not found; the delta token is expired or invalid. "
        "Please do a full sync.",
    )


@dataclass(slots=True)
class _Snapshot:
    calendar: Calendar
    epoch: int
    items: list[dict[str, Any]]
    delta_token: str
    page_size: int
    key: str | None = None


class DeltaEngine:
    """calendarView/delta for one app: token codec, snapshots, rounds and pages."""

    def __init__(self, world: World) -> None:
        self.world = world
        self._snapshots: OrderedDict[str, _Snapshot] = OrderedDict()
        self._next = 0
        self._lock = threading.Lock()

    # ---- the endpoint ----------------------------------------------------------------

    def page(
        self, cal: Calendar, params: dict[str, str], prefs: dict[str, str], url: str
    ) -> dict[str, Any]:
        """One page. ``params``: lower-cased query; ``url``: the request URL sans query."""
        skip, token = params.get("$skiptoken"), params.get("$deltatoken")
        if (skip or token) and ("startdatetime" in params or "enddatetime" in params):
            raise GraphError(
                400,
                "BadRequest",
                "startDateTime and endDateTime are encoded in the delta and next links; "
                "do not add them again.",
            )
        wanted = max_page_size(prefs)
        if skip:
            snapshot, offset, page_no = self._resume(cal, skip)
        else:
            view = view_of(prefs)
            with self.world.lock:
                if token:
                    rng, position = self._decode(cal, token)
                    items = self._incremental(cal, rng, position, view)
                else:
                    rng = parse_range(params)
                    items = self._full(cal, rng, view)
                delta = self._encode(cal, rng)
            size = wanted or self.world.settings.graph_page_size
            snapshot = _Snapshot(cal, cal.epoch, items, delta, size)
            offset, page_no = 0, 1
        size = self._page_size(wanted or snapshot.page_size, page_no)
        start = offset
        if self.world.settings.graph_replays and page_no > 1 and offset > 0 and size >= 2:
            start = offset - 1  # §2.2: replays within a round
        items = snapshot.items[start : start + size]
        body: dict[str, Any] = {"value": items}
        if start + size < len(snapshot.items):
            body["@odata.nextLink"] = (
                f"{url}?$skiptoken={self._store(snapshot, start + size, page_no + 1)}"
            )
        else:
            body["@odata.deltaLink"] = f"{url}?$deltatoken={snapshot.delta_token}"
        return body

    def _page_size(self, size: int, page_no: int) -> int:
        # §2.2/§5: pages can be empty and still carry a nextLink. As for Google: page 1
        # full, then the 2nd of every three empty and the 3rd half-size.
        if not self.world.settings.quirky_pages or page_no % 3 == 1:
            return size
        return 0 if page_no % 3 == 2 else max(1, size // 2)

    # ---- tokens ----------------------------------------------------------------------

    def _encode(self, cal: Calendar, rng: Range) -> str:
        issued = int(self.world.clock.now().timestamp())
        fields = (
            cal.id,
            str(cal.epoch),
            rng.start.isoformat(),
            rng.end.isoformat(),
            str(cal.last_seq),
            str(issued),
        )
        return "D" + _b64(_SEP.join(fields))

    def _decode(self, cal: Calendar, token: str) -> tuple[Range, int]:
        parts = _unb64(token[1:]) if token.startswith("D") else []
        if len(parts) != 6 or parts[0] != cal.id or parts[1] != str(cal.epoch):
            raise gone()
        if not (parts[4].isdigit() and parts[5].isdigit()):
            raise gone()
        ttl = self.world.settings.sync_token_ttl
        now = self.world.clock.now().timestamp()
        if ttl is not None and int(parts[5]) + ttl.total_seconds() <= now:
            raise gone()
        try:
            rng = Range(datetime.fromisoformat(parts[2]), datetime.fromisoformat(parts[3]))
        except ValueError:
            raise gone() from None
        return rng, int(parts[4])

    def _store(self, snapshot: _Snapshot, offset: int, page_no: int) -> str:
        with self._lock:
            if snapshot.key is None:
                self._next += 1
                snapshot.key = str(self._next)
                self._snapshots[snapshot.key] = snapshot
                while len(self._snapshots) > _MAX_SNAPSHOTS:
                    self._snapshots.popitem(last=False)
        return "S" + _b64(_SEP.join((snapshot.key, str(offset), str(page_no))))

    def _resume(self, cal: Calendar, token: str) -> tuple[_Snapshot, int, int]:
        parts = _unb64(token[1:]) if token.startswith("S") else []
        valid = len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit()
        with self._lock:
            snapshot = self._snapshots.get(parts[0]) if valid else None
            if snapshot is not None:
                self._snapshots.move_to_end(parts[0])
        if snapshot is None or snapshot.calendar is not cal or snapshot.epoch != cal.epoch:
            raise gone()
        return snapshot, int(parts[1]), int(parts[2])

    # ---- rounds ----------------------------------------------------------------------

    def _occurrence(
        self, cal: Calendar, entry: Entry, occ: Occurrence, view: ser.View, st: ser.State
    ) -> dict[str, Any]:
        sparse = self.world.settings.graph_sparse_occurrences
        if sparse and st == "live" and occ.override is None:
            return ser.sparse(cal, entry, occ, view)
        return ser.render(cal, entry, occ, view)

    def _full(self, cal: Calendar, rng: Range, view: ser.View) -> list[dict[str, Any]]:
        """Everything on the calendar in range: singles, masters, occurrences, exceptions."""
        keep = self.world.settings.graph_attendee_cancellations
        rows: list[tuple[tuple[datetime, str, int, str], dict[str, Any]]] = []
        for entry in cal.entries.values():
            core = entry.core
            if entry.removed:
                continue
            if not core.is_series:
                if ser.state(cal, entry, None, keep) != "gone" and rng.overlaps(
                    core.start_utc(), core.end_utc()
                ):
                    rows.append(
                        ((core.start_utc(), core.id, 0, ""), ser.render(cal, entry, None, view))
                    )
                continue
            occs = [
                (o, st)
                for o in core.windowed(rng.end)
                if rng.overlaps(o.start_utc, o.end_utc)
                and (st := ser.state(cal, entry, o, keep)) != "gone"
            ]
            if not occs:
                continue
            first = min(o.start_utc for o, _ in occs)
            rows.append(((first, core.id, 0, ""), ser.render(cal, entry, None, view)))
            for o, st in occs:
                item = self._occurrence(cal, entry, o, view, st)
                rows.append(((o.start_utc, core.id, 1, o.instance_id), item))
        rows.sort(key=lambda r: r[0])
        return [r[1] for r in rows]

    def _incremental(
        self, cal: Calendar, rng: Range, position: int, view: ser.View
    ) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for core_id, items in cal.changes_since(position).items():
            entry = cal.entries[core_id]
            if None in items:
                if entry.core.is_series:
                    out.extend(self._series(cal, entry, rng, view))
                else:
                    out.append(self._single(cal, entry, rng, view))
            for iid in sorted(i for i in items if i is not None):
                out.append(self._instance(cal, entry, iid, rng, view))
        seen: set[str] = set()
        unique = []
        for item in out:
            if item["id"] not in seen:
                seen.add(item["id"])
                unique.append(item)
        return unique

    def _single(self, cal: Calendar, entry: Entry, rng: Range, view: ser.View) -> dict[str, Any]:
        core = entry.core
        keep = self.world.settings.graph_attendee_cancellations
        if ser.state(cal, entry, None, keep) != "gone" and rng.overlaps(
            core.start_utc(), core.end_utc()
        ):
            return ser.render(cal, entry, None, view)
        return ser.removed(ids.event_id(cal.id, core.id))

    def _series(
        self, cal: Calendar, entry: Entry, rng: Range, view: ser.View
    ) -> list[dict[str, Any]]:
        """A changed series: its master and in-range occurrences; exceptions outside the
        range, occurrences gone from it and ids vanished by a re-timing as removed."""
        core = entry.core
        keep = self.world.settings.graph_attendee_cancellations
        body: list[dict[str, Any]] = []
        alive = False
        for occ in core.windowed(rng.end):
            st = ser.state(cal, entry, occ, keep)
            in_range = rng.overlaps(occ.start_utc, occ.end_utc)
            if in_range and st != "gone":
                alive = True
                body.append(self._occurrence(cal, entry, occ, view, st))
            elif in_range or occ.override is not None:
                body.append(ser.removed(ids.event_id(cal.id, occ.instance_id)))
        body.extend(ser.removed(ids.event_id(cal.id, iid)) for iid in core.retired)
        master_id = ids.event_id(cal.id, core.id)
        master = ser.render(cal, entry, None, view) if alive else ser.removed(master_id)
        return [master, *body]

    def _instance(
        self, cal: Calendar, entry: Entry, iid: str, rng: Range, view: ser.View
    ) -> dict[str, Any]:
        core = entry.core
        gid = ids.event_id(cal.id, iid)
        split = split_instance_id(iid)
        occ = core.find_instance(split[1]) if split is not None and core.is_series else None
        if occ is None:
            return ser.removed(gid)
        st = ser.state(cal, entry, occ, self.world.settings.graph_attendee_cancellations)
        if st != "gone" and rng.overlaps(occ.start_utc, occ.end_utc):
            return self._occurrence(cal, entry, occ, view, st)
        return ser.removed(gid)
