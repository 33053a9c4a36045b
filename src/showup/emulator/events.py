"""Stored events of the fake world: series cores, per-instance overrides, calendar copies.

One :class:`EventCore` is one meeting as the organizer defined it (a single event or a
series). Every calendar that shows the meeting (the organizer's and each invited world
user's, PROTOCOLS §1.3 "People") holds an :class:`Entry` pointing at the same core, so
an edit is seen everywhere at once and each calendar logs its own change.

Instances are identified the way Google does (PROTOCOLS §1.3 "Identity"): the series id,
``_``, and the *original* start as ``YYYYMMDDTHHMMSSZ`` in UTC or ``YYYYMMDD`` for
all-day series. An instance keeps that id after it moves.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from showup.emulator import recurrence
from showup.emulator.model import EventFields, EventTime, apply_patch, zone


def instance_suffix(original: EventTime) -> str:
    if original.day is not None:
        return original.day.strftime("%Y%m%d")
    assert original.at is not None
    return original.at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def split_instance_id(event_id: str) -> tuple[str, str] | None:
    """``"abc_20261110T090000Z"`` -> ``("abc", "20261110T090000Z")``; None if not that shape."""
    base, sep, suffix = event_id.rpartition("_")
    if not sep or not base:
        return None
    if (len(suffix) == 16 and suffix[8] == "T" and suffix.endswith("Z")) or (
        len(suffix) == 8 and suffix.isdigit()
    ):
        return base, suffix
    return None


@dataclass(slots=True)
class Override:
    """One instance's exception: a patch over the master, or a cancellation."""

    patch: dict[str, Any]
    cancelled: bool
    created: datetime
    updated: datetime
    sequence: int = 0


@dataclass(slots=True)
class Occurrence:
    """One expanded instance, with its effective fields."""

    instance_id: str
    original_start: EventTime
    fields: EventFields
    cancelled: bool
    updated: datetime
    created: datetime
    start_utc: datetime
    end_utc: datetime
    override: Override | None = None


@dataclass(slots=True)
class Retired:
    """An instance id that vanished when the series' timing changed; reads as cancelled."""

    original_start: EventTime
    updated: datetime


@dataclass(slots=True)
class _Expansion:
    version: int
    horizon: datetime
    items: list[Occurrence]
    starts: list[datetime]  # original starts (UTC), for bisecting at a horizon
    by_id: dict[str, Occurrence]


@dataclass(slots=True)
class EventCore:
    id: str
    ical_uid: str
    fields: EventFields
    created: datetime
    updated: datetime
    tz: str  # the zone recurrences expand in (PROTOCOLS §1.3: required for series)
    home: str  # the calendar it was created on; never uninvited from there
    sequence: int = 0
    version: int = 0
    overrides: dict[str, Override] = field(default_factory=dict)
    retired: dict[str, Retired] = field(default_factory=dict)
    calendars: set[str] = field(default_factory=set)
    _cache: _Expansion | None = None

    @property
    def is_series(self) -> bool:
        return bool(self.fields.recurrence)

    @property
    def cancelled(self) -> bool:
        return self.fields.status == "cancelled"

    def start_utc(self) -> datetime:
        return self.fields.start.utc(self.tz)

    def end_utc(self) -> datetime:
        return self.fields.end.utc(self.tz)

    def occurrences(self, until: datetime) -> list[Occurrence]:
        """Instances whose original start is before ``until`` (cached per version).

        The cache is computed with slack beyond ``until`` so that a moving clock does
        not re-expand on every request; results are cut at ``until`` so they do not
        depend on what happens to be cached.
        """
        cached = self._expansion(until)
        return cached.items[: bisect.bisect_left(cached.starts, until)]

    def _expansion(self, until: datetime) -> _Expansion:
        cached = self._cache
        if cached is None or cached.version != self.version or cached.horizon < until:
            horizon = until + timedelta(days=62)
            items = self._expand(horizon)
            cached = _Expansion(
                version=self.version,
                horizon=horizon,
                items=items,
                starts=[o.original_start.utc(self.tz) for o in items],
                by_id={o.instance_id: o for o in items},
            )
            self._cache = cached
        return cached

    def _expand(self, until: datetime) -> list[Occurrence]:
        master = self.fields
        tz = zone(self.tz)
        first = master.start.day if master.start.day is not None else master.start.at
        assert first is not None
        duration = master.duration
        out: list[Occurrence] = []
        for value in recurrence.expand(master.recurrence, first, tz, until):
            if isinstance(value, datetime):
                original = EventTime(at=value, tz=master.start.tz or self.tz)
                end = EventTime(
                    at=(value.astimezone(UTC) + duration).astimezone(tz), tz=original.tz
                )
            else:
                original = EventTime(day=value, tz=master.start.tz)
                end = EventTime(day=value + duration, tz=master.end.tz)
            suffix = instance_suffix(original)
            fields = replace(master, start=original, end=end, recurrence=[])
            override = self.overrides.get(suffix)
            cancelled = self.cancelled
            updated, created = self.updated, self.created
            if override is not None:
                fields = apply_patch(fields, override.patch)
                cancelled = cancelled or override.cancelled or fields.status == "cancelled"
                updated, created = max(updated, override.updated), override.created
            out.append(
                Occurrence(
                    instance_id=f"{self.id}_{suffix}",
                    original_start=original,
                    fields=fields,
                    cancelled=cancelled,
                    updated=updated,
                    created=created,
                    start_utc=fields.start.utc(self.tz),
                    end_utc=fields.end.utc(self.tz),
                    override=override,
                )
            )
        return out

    def find_instance(self, suffix: str) -> Occurrence | None:
        """The instance with this id suffix, expanding just far enough to find it."""
        when = self._suffix_bound(suffix)
        return self._expansion(when).by_id.get(f"{self.id}_{suffix}")

    def _suffix_bound(self, suffix: str) -> datetime:
        """An instant just past the original start an id suffix names."""
        if len(suffix) == 8:
            day = date(int(suffix[:4]), int(suffix[4:6]), int(suffix[6:]))
            return EventTime(day=day).utc(self.tz) + timedelta(days=2)
        return datetime.strptime(suffix, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC) + timedelta(
            seconds=1
        )

    def windowed(self, until: datetime) -> list[Occurrence]:
        """Instances to consider for a listing bounded at ``until``: those whose original
        start is before it, plus exceptions from later that may have moved before it
        (their effective times are then filtered by the caller's window)."""
        bound = max((self._suffix_bound(s) for s in self.overrides), default=until)
        if bound <= until:
            return self.occurrences(until)
        return [
            o
            for o in self.occurrences(bound)
            if o.override is not None or o.original_start.utc(self.tz) < until
        ]


@dataclass(slots=True)
class Entry:
    """A calendar's copy of a core. ``removed``: uninvited, so it reads as cancelled here."""

    core: EventCore
    removed: bool = False
    # Not yet announced to change listeners: the next change is a "created" here (Graph).
    fresh: bool = True
    # Serializers keep per-copy renderings here, keyed by their own names, tagged with
    # core.version so a change invalidates them (keeps list pages cheap).
    cache: dict[str, Any] = field(default_factory=dict)

    @property
    def cancelled(self) -> bool:
        return self.removed or self.core.cancelled


@dataclass(slots=True)
class Calendar:
    id: str
    owner: str
    summary: str
    time_zone: str
    primary: bool
    description: str | None = None
    entries: dict[str, Entry] = field(default_factory=dict)
    # The change log: (sequence, core id, instance id or None for the core itself).
    # Sequences come from one world counter, so they only grow (sync tokens, §1.2).
    log_seqs: list[int] = field(default_factory=list)
    log_items: list[tuple[str, str | None]] = field(default_factory=list)
    last_seq: int = 0
    epoch: int = 0  # bumped to expire every sync token issued so far

    def record(self, seq: int, core_id: str, item: str | None) -> None:
        self.log_seqs.append(seq)
        self.log_items.append((core_id, item))
        self.last_seq = seq

    def changes_since(self, seq: int) -> dict[str, set[str | None]]:
        """Per core id: which items changed after ``seq`` (None = the core itself)."""
        start = bisect.bisect_right(self.log_seqs, seq)
        out: dict[str, set[str | None]] = {}
        for core_id, item in self.log_items[start:]:
            out.setdefault(core_id, set()).add(item)
        return out
