"""Event operations of the fake world (mixed into :class:`~showup.emulator.world.World`).

Every mutation bumps the core's version (invalidating cached expansions and renderings)
and appends one change to the log of every calendar holding the meeting, under one new
world sequence number: that is what sync tokens count (PROTOCOLS §1.2 "Sync").

Ids: a series id targets the series; ``{seriesId}_{YYYYMMDDTHHMMSSZ}`` (or ``_{YYYYMMDD}``)
targets one instance and creates or edits its exception (PROTOCOLS §1.3 "Identity").
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from showup.clock import Clock
from showup.emulator import recurrence
from showup.emulator.events import (
    Calendar,
    Entry,
    EventCore,
    Occurrence,
    Override,
    Retired,
    split_instance_id,
)
from showup.emulator.model import (
    RESPONSES,
    Attendee,
    EventFields,
    EventTime,
    InvalidEvent,
    NotFound,
    Person,
    apply_patch,
    copy_json,
    parse_new,
    zone,
)

if TYPE_CHECKING:
    from showup.emulator.world import Settings, User

_ID_RE = re.compile(r"^[a-v0-9]{5,1024}$")
_IMMUTABLE = ("id", "iCalUID", "recurringEventId", "originalStartTime")
# Changes Google counts as "significant" for the iCalendar SEQUENCE (RFC 5545 §3.8.7.4).
_SEQUENCE_KEYS = ("start", "end", "recurrence", "location", "status")


class Mutations:
    clock: Clock
    lock: threading.RLock
    settings: Settings
    users: dict[str, User]
    calendars: dict[str, Calendar]
    cores: dict[str, EventCore]
    listeners: list[Callable[[str], None]]
    change_listeners: list[Callable[[str, str, list[str | None], bool], None]]

    if TYPE_CHECKING:

        def calendar(self, email: str, calendar_id: str = "primary") -> Calendar: ...
        def new_id(self) -> str: ...
        def next_seq(self) -> int: ...
        def person(self, email: str) -> Person: ...
        def horizon(self) -> datetime: ...

    # ---- reading -----------------------------------------------------------------

    def get_event(self, email: str, event_id: str, calendar_id: str = "primary") -> dict[str, Any]:
        """The event (or instance) as this calendar's owner sees it, in Google JSON."""
        from showup.emulator.google.serialize import render_entry, render_occurrence

        with self.lock:
            cal = self.calendar(email, calendar_id)
            entry, occ = self._target(cal, event_id)
            rendered = (
                render_entry(cal, entry) if occ is None else render_occurrence(cal, entry, occ)
            )
            # Renderings are shared cache entries; callers get their own copy.
            return copy_json(rendered)  # type: ignore[no-any-return]

    def _target(self, cal: Calendar, event_id: str) -> tuple[Entry, Occurrence | None]:
        entry = cal.entries.get(event_id)
        if entry is not None:
            return entry, None
        if event_id.startswith("AAMk"):
            # A Microsoft Graph id (PROTOCOLS §2.3): it names a mailbox copy and a world id.
            from showup.emulator.graph.ids import parse_event_id

            parsed = parse_event_id(event_id)
            if parsed is None or parsed[0] != cal.id:
                raise NotFound(f"no event {event_id} on {cal.id}")
            event_id = parsed[1]
            entry = cal.entries.get(event_id)
            if entry is not None:
                return entry, None
        split = split_instance_id(event_id)
        if split is not None:
            entry = cal.entries.get(split[0])
            if entry is not None and entry.core.is_series:
                occ = entry.core.find_instance(split[1])
                if occ is not None:
                    return entry, occ
        raise NotFound(f"no event {event_id} on {cal.id}")

    # ---- creating ----------------------------------------------------------------

    def create_event(
        self, email: str, data: dict[str, Any], calendar_id: str = "primary"
    ) -> dict[str, Any]:
        """Store a new event or series; place it on every invited world user's calendar."""
        with self.lock:
            event_id = self._create(email, data, calendar_id)
            return self.get_event(email, event_id, calendar_id)

    def create_events(
        self, email: str, items: list[dict[str, Any]], calendar_id: str = "primary"
    ) -> list[str]:
        """Bulk :meth:`create_event` returning only ids: skips rendering, for seeding
        benchmarks with hundreds of thousands of events."""
        with self.lock:
            return [self._create(email, data, calendar_id) for data in items]

    def _create(self, email: str, data: dict[str, Any], calendar_id: str) -> str:
        cal = self.calendar(email, calendar_id)
        fields = parse_new(data)
        event_id = data.get("id") or self.new_id()
        if not isinstance(event_id, str) or not _ID_RE.match(event_id):
            raise InvalidEvent(f"invalid event id {event_id!r}")
        if event_id in self.cores:
            raise InvalidEvent(f"event id {event_id} exists")
        owner = self.person(cal.owner)
        fields.organizer = fields.organizer or owner
        fields.creator = fields.creator or owner
        _with_organizer(fields, self.person)
        tz = fields.start.tz or cal.time_zone
        if fields.recurrence:
            _check_recurrence(fields, tz)
        now = self.clock.now()
        core = EventCore(
            id=event_id,
            ical_uid=str(data.get("iCalUID") or f"{event_id}@google.com"),
            fields=fields,
            created=now,
            updated=now,
            tz=tz,
            home=cal.id,
        )
        core.calendars.add(cal.id)
        cal.entries[event_id] = Entry(core)
        self.cores[event_id] = core
        self._place(core)
        self._touch(core, [None])
        return event_id

    def _place(self, core: EventCore) -> None:
        """Put the meeting on the organizer's and each invited user's primary calendar;
        an uninvited user's copy stays but reads as cancelled."""
        fields = core.fields
        wanted = {a.email for a in fields.attendees if a.email in self.users}
        if fields.organizer is not None and fields.organizer.email in self.users:
            wanted.add(fields.organizer.email)
        for cal_id in list(core.calendars):
            cal = self.calendars[cal_id]
            if cal_id != core.home and cal.owner not in wanted:
                cal.entries[core.id].removed = True
        for email in wanted:
            cal = self.calendars[email]
            entry = cal.entries.get(core.id)
            if entry is None:
                cal.entries[core.id] = Entry(core)
                core.calendars.add(cal.id)
            else:
                entry.removed = False

    def _touch(self, core: EventCore, items: list[str | None]) -> None:
        seq = self.next_seq()
        core.version += 1
        if None in items:
            core.updated = self.clock.now()
        fresh: dict[str, bool] = {}
        for cal_id in core.calendars:
            cal = self.calendars[cal_id]
            entry = cal.entries[core.id]
            entry.cache.clear()
            fresh[cal_id], entry.fresh = entry.fresh, False
            for item in items:
                cal.record(seq, core.id, item)
        for cal_id in core.calendars:
            for listener in self.listeners:
                listener(cal_id)
            for change in self.change_listeners:
                change(cal_id, core.id, items, fresh[cal_id])

    # ---- editing -----------------------------------------------------------------

    def update_event(
        self, email: str, event_id: str, patch: dict[str, Any], calendar_id: str = "primary"
    ) -> dict[str, Any]:
        """Patch semantics (given keys replace). Edits apply to the shared meeting, so
        every attendee's copy changes too. Instance ids create/edit an exception."""
        with self.lock:
            cal = self.calendar(email, calendar_id)
            entry, occ = self._target(cal, event_id)
            core = entry.core
            for key in _IMMUTABLE:
                if key in patch and patch[key] != _current(core, occ, key):
                    raise InvalidEvent(f"{key} is immutable")
            if "eventType" in patch and patch["eventType"] != core.fields.event_type:
                raise InvalidEvent("eventType is immutable")
            if occ is None:
                self._patch_core(core, patch)
            else:
                self._patch_instance(core, occ, patch)
            return self.get_event(email, event_id, calendar_id)

    def _patch_core(self, core: EventCore, patch: dict[str, Any]) -> None:
        old = core.fields
        new = apply_patch(old, patch)
        _check_times(new)
        _with_organizer(new, self.person)
        tz = new.start.tz or core.tz
        items: list[str | None] = [None]
        timing = (new.start, new.end, new.recurrence) != (old.start, old.end, old.recurrence)
        if timing and (old.recurrence or new.recurrence):
            if new.recurrence:
                _check_recurrence(new, tz)
            # Moving a whole series re-keys its instances: drop exceptions (as Google does
            # for "all events" time edits) and report vanished instance ids as cancelled.
            horizon = self.horizon()
            before = {o.instance_id: o.original_start for o in core.occurrences(horizon)}
            core.fields, core.tz = new, tz
            core.overrides.clear()
            core.version += 1
            after = {o.instance_id for o in core.occurrences(horizon)} if new.recurrence else set()
            now = self.clock.now()
            for iid, original in before.items():
                if iid not in after:
                    core.retired[iid] = Retired(original, now)
                    items.append(iid)
            for iid in after:
                core.retired.pop(iid, None)
        core.fields, core.tz = new, tz
        if any(k in patch for k in _SEQUENCE_KEYS):
            core.sequence += 1
        self._place(core)
        self._touch(core, items)

    def _patch_instance(self, core: EventCore, occ: Occurrence, patch: dict[str, Any]) -> None:
        if "recurrence" in patch:
            raise InvalidEvent("an instance has no recurrence")
        _check_times(apply_patch(occ.fields, patch))
        suffix = occ.instance_id.rsplit("_", 1)[1]
        now = self.clock.now()
        override = core.overrides.get(suffix) or Override({}, False, created=now, updated=now)
        override.patch = {**override.patch, **patch}
        override.updated = now
        override.cancelled = override.patch.get("status") == "cancelled"
        if any(k in patch for k in _SEQUENCE_KEYS):
            override.sequence += 1
        core.overrides[suffix] = override
        self._touch(core, [occ.instance_id])

    def move_event(
        self,
        email: str,
        event_id: str,
        start: datetime,
        end: datetime | None = None,
        calendar_id: str = "primary",
    ) -> dict[str, Any]:
        """Move an event, a series' first start, or (by instance id) one instance.
        ``end`` defaults to keeping the duration. All-day events move to ``start``'s date."""
        with self.lock:
            cal = self.calendar(email, calendar_id)
            entry, occ = self._target(cal, event_id)
            current = occ.fields if occ is not None else entry.core.fields
            patch: dict[str, Any]
            if current.start.day is not None:
                day = start.date()
                last = end.date() if end is not None else day + current.duration
                patch = {"start": {"date": _iso(day)}, "end": {"date": _iso(last)}}
            else:
                tz = current.start.tz
                stop = end if end is not None else start + current.duration
                patch = {
                    "start": _time_json(EventTime.from_datetime(start, tz)),
                    "end": _time_json(EventTime.from_datetime(stop, current.end.tz or tz)),
                }
            return self.update_event(email, event_id, patch, calendar_id)

    def cancel_event(
        self, email: str, event_id: str, calendar_id: str = "primary"
    ) -> dict[str, Any]:
        """Cancel a single event or a whole series, or (by instance id) one instance."""
        return self.update_event(email, event_id, {"status": "cancelled"}, calendar_id)

    def delete_event(
        self, email: str, event_id: str, calendar_id: str = "primary"
    ) -> dict[str, Any]:
        """On Google a delete is a cancellation: syncs then see a cancelled stub (§1.3)."""
        return self.cancel_event(email, event_id, calendar_id)

    def respond(
        self, email: str, event_id: str, response: str, calendar_id: str = "primary"
    ) -> dict[str, Any]:
        """Set ``email``'s attendee responseStatus on the meeting (or one instance)."""
        if response not in RESPONSES:
            raise InvalidEvent(f"bad responseStatus {response!r}")
        with self.lock:
            cal = self.calendar(email, calendar_id)
            entry, occ = self._target(cal, event_id)
            fields = occ.fields if occ is not None else entry.core.fields
            attendees = [_attendee_json(a) for a in fields.attendees]
            me = email.lower()
            for item in attendees:
                if item["email"] == me:
                    item["responseStatus"] = response
                    break
            else:
                raise NotFound(f"{email} is not an attendee of {event_id}")
            return self.update_event(email, event_id, {"attendees": attendees}, calendar_id)


def _current(core: EventCore, occ: Occurrence | None, key: str) -> Any:
    if key == "id":
        return occ.instance_id if occ else core.id
    if key == "iCalUID":
        return core.ical_uid
    return None


def _with_organizer(fields: EventFields, person: Any) -> None:
    """Meetings with guests list the organizer as an accepted attendee, as Google shows."""
    if not fields.attendees or fields.organizer is None:
        return
    org = fields.organizer.email
    for attendee in fields.attendees:
        if attendee.display_name is None:
            attendee.display_name = person(attendee.email).display_name
    if all(a.email != org for a in fields.attendees):
        fields.attendees.insert(
            0, Attendee(org, fields.organizer.display_name, response_status="accepted")
        )


def _check_times(fields: EventFields) -> None:
    if fields.start.all_day != fields.end.all_day:
        raise InvalidEvent("start and end must both be dates or both be dateTimes")
    if fields.duration <= timedelta(0):
        raise InvalidEvent("end must be after start")


def _check_recurrence(fields: EventFields, tz: str) -> None:
    first = fields.start.day if fields.start.day is not None else fields.start.at
    assert first is not None
    recurrence.expand(fields.recurrence, first, zone(tz), fields.start.utc(tz))


def _iso(day: date) -> str:
    return day.isoformat()


def _time_json(value: EventTime) -> dict[str, Any]:
    if value.day is not None:
        return {"date": value.day.isoformat()}
    assert value.at is not None
    out: dict[str, Any] = {"dateTime": value.at.isoformat()}
    if value.tz:
        out["timeZone"] = value.tz
    return out


def _attendee_json(a: Attendee) -> dict[str, Any]:
    return {
        "email": a.email,
        "displayName": a.display_name,
        "responseStatus": a.response_status,
        "resource": a.resource,
        "optional": a.optional,
    }
