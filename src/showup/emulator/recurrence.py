"""A small RFC 5545 recurrence expander (RRULE subset, RDATE, EXDATE).

python-dateutil is not installed in this project, so this implements the subset the
emulators need (PROTOCOLS §1.3 "Recurrence"): FREQ=DAILY/WEEKLY/MONTHLY/YEARLY with
INTERVAL, COUNT, UNTIL, BYDAY (ordinals for MONTHLY/YEARLY-with-BYMONTH), BYMONTHDAY,
BYMONTH and WKST, plus RDATE and EXDATE lines. BYSETPOS, BYYEARDAY, BYWEEKNO, BYHOUR
and friends are rejected rather than silently misread.

Occurrences are generated as wall-clock times in the series' zone and only then made
aware, so a 10:00 meeting stays at 10:00 local across a DST change. A wall time that
falls into a spring-forward gap resolves with ``fold=0`` (the pre-transition offset),
i.e. it moves forward by the gap, which is what calendar clients show.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from showup.emulator.model import InvalidEvent

WEEKDAYS = {"MO": 0, "TU": 1, "WE": 2, "TH": 3, "FR": 4, "SA": 5, "SU": 6}
_SUPPORTED = {"FREQ", "INTERVAL", "COUNT", "UNTIL", "BYDAY", "BYMONTHDAY", "BYMONTH", "WKST"}
# Hard stop for rules whose filters rarely match; real series never need this many.
_MAX_CANDIDATES = 200_000


@dataclass(frozen=True, slots=True)
class Rule:
    freq: str
    interval: int = 1
    count: int | None = None
    until: datetime | date | None = None  # aware UTC, naive local, or a date
    byday: tuple[tuple[int | None, int], ...] = ()
    bymonthday: tuple[int, ...] = ()
    bymonth: tuple[int, ...] = ()
    wkst: int = 0


def _parse_stamp(text: str, tz: ZoneInfo | None) -> datetime | date:
    """Parse a DATE or DATE-TIME value: ``20261110``, ``20261110T100000`` or ``…Z``."""
    try:
        if "T" not in text:
            return datetime.strptime(text, "%Y%m%d").replace(tzinfo=UTC).date()
        if text.endswith("Z"):
            return datetime.strptime(text, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        naive = datetime.strptime(text, "%Y%m%dT%H%M%S")  # noqa: DTZ007 - zone applied below
    except ValueError as exc:
        raise InvalidEvent(f"bad date-time {text!r} in recurrence") from exc
    return naive.replace(tzinfo=tz) if tz is not None else naive


def parse_rule(line: str) -> Rule:
    body = line.split(":", 1)[1] if line.upper().startswith("RRULE:") else line
    parts: dict[str, str] = {}
    for piece in body.strip().split(";"):
        if not piece:
            continue
        key, _, value = piece.partition("=")
        parts[key.upper()] = value.upper()
    unknown = set(parts) - _SUPPORTED
    if unknown:
        raise InvalidEvent(f"unsupported RRULE parts: {sorted(unknown)}")
    freq = parts.get("FREQ")
    if freq not in ("DAILY", "WEEKLY", "MONTHLY", "YEARLY"):
        raise InvalidEvent(f"unsupported FREQ {freq!r}")
    if "COUNT" in parts and "UNTIL" in parts:
        raise InvalidEvent("COUNT and UNTIL are exclusive")
    try:
        byday: list[tuple[int | None, int]] = []
        for item in filter(None, parts.get("BYDAY", "").split(",")):
            ordinal = item[:-2]
            byday.append((int(ordinal) if ordinal else None, WEEKDAYS[item[-2:]]))
        return Rule(
            freq=freq,
            interval=max(1, int(parts.get("INTERVAL", "1"))),
            count=int(parts["COUNT"]) if "COUNT" in parts else None,
            until=_parse_stamp(parts["UNTIL"], None) if "UNTIL" in parts else None,
            byday=tuple(byday),
            bymonthday=tuple(int(x) for x in filter(None, parts.get("BYMONTHDAY", "").split(","))),
            bymonth=tuple(int(x) for x in filter(None, parts.get("BYMONTH", "").split(","))),
            wkst=WEEKDAYS[parts.get("WKST", "MO")],
        )
    except (KeyError, ValueError) as exc:
        raise InvalidEvent(f"bad RRULE {line!r}") from exc


def _month_days(rule: Rule, year: int, month: int, start_day: int) -> list[int]:
    ndays = calendar.monthrange(year, month)[1]
    by_monthday = (
        {d if d > 0 else ndays + 1 + d for d in rule.bymonthday} if rule.bymonthday else None
    )
    by_weekday: set[int] | None = None
    if rule.byday:
        by_weekday = set()
        first_wd = date(year, month, 1).weekday()
        for ordinal, wd in rule.byday:
            days = list(range(1 + (wd - first_wd) % 7, ndays + 1, 7))
            if ordinal is None:
                by_weekday.update(days)
            elif 0 < ordinal <= len(days):
                by_weekday.add(days[ordinal - 1])
            elif ordinal < 0 and -ordinal <= len(days):
                by_weekday.add(days[ordinal])
    if by_monthday is not None and by_weekday is not None:
        chosen = by_monthday & by_weekday
    elif by_monthday is not None:
        chosen = by_monthday
    elif by_weekday is not None:
        chosen = by_weekday
    else:
        chosen = {start_day}
    return sorted(d for d in chosen if 1 <= d <= ndays)


def _candidates(rule: Rule, start: date) -> Iterator[date]:
    """Days the rule selects, in order, from the period containing ``start``."""
    if rule.freq == "DAILY":
        weekdays = {wd for _, wd in rule.byday}
        day = start
        while True:
            if (
                (not rule.bymonth or day.month in rule.bymonth)
                and (not weekdays or day.weekday() in weekdays)
                and (not rule.bymonthday or day.day in _month_days(rule, day.year, day.month, 0))
            ):
                yield day
            day += timedelta(days=rule.interval)
    elif rule.freq == "WEEKLY":
        chosen = {wd for _, wd in rule.byday} or {start.weekday()}
        offsets = sorted((wd - rule.wkst) % 7 for wd in chosen)
        week = start - timedelta(days=(start.weekday() - rule.wkst) % 7)
        while True:
            for offset in offsets:
                day = week + timedelta(days=offset)
                if not rule.bymonth or day.month in rule.bymonth:
                    yield day
            week += timedelta(weeks=rule.interval)
    elif rule.freq == "MONTHLY":
        year, month = start.year, start.month
        while True:
            if not rule.bymonth or month in rule.bymonth:
                for d in _month_days(rule, year, month, start.day):
                    yield date(year, month, d)
            month += rule.interval
            year, month = year + (month - 1) // 12, (month - 1) % 12 + 1
    else:  # YEARLY: ordinals in BYDAY are taken within each month (documented subset)
        year = start.year
        while True:
            for month in sorted(rule.bymonth or (start.month,)):
                for d in _month_days(rule, year, month, start.day):
                    yield date(year, month, d)
            year += rule.interval


def _key(value: datetime | date, tz: ZoneInfo, all_day: bool) -> datetime | date:
    """Comparable identity of an occurrence: the date (all-day) or the UTC instant."""
    if all_day:
        return value if not isinstance(value, datetime) else value.date()
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=tz)
        return aware.astimezone(UTC)
    return datetime.combine(value, time(), tzinfo=tz).astimezone(UTC)


def _date_lines(lines: list[str], prefix: str, tz: ZoneInfo) -> list[datetime | date]:
    out: list[datetime | date] = []
    for line in lines:
        head, _, values = line.partition(":")
        if head.split(";")[0].upper() != prefix:
            continue
        line_tz = tz
        for param in head.split(";")[1:]:
            name, _, value = param.partition("=")
            if name.upper() == "TZID":
                line_tz = ZoneInfo(value)
        out.extend(_parse_stamp(v.strip(), line_tz) for v in values.split(",") if v.strip())
    return out


def expand(
    lines: list[str],
    start: datetime | date,
    tz: ZoneInfo,
    until: datetime,
) -> list[datetime | date]:
    """Occurrence starts of a series whose first start is ``start``, up to ``until`` (UTC).

    ``start`` is an aware datetime (shown in ``tz``) or a date for all-day series.
    Returns aware datetimes in ``tz`` (or dates), sorted, EXDATEs removed, RDATEs added.
    """
    all_day = not isinstance(start, datetime)
    local_start = start.astimezone(tz) if isinstance(start, datetime) else start
    first_day = local_start.date() if isinstance(local_start, datetime) else local_start
    wall = local_start.timetz().replace(tzinfo=None) if isinstance(local_start, datetime) else None
    rules = [parse_rule(line) for line in lines if line.upper().startswith("RRULE")]
    for line in lines:
        if line.split(":")[0].split(";")[0].upper() not in ("RRULE", "EXDATE", "RDATE"):
            raise InvalidEvent(f"unsupported recurrence line {line!r}")
    found: dict[datetime | date, datetime | date] = {}

    def occurrence(day: date) -> datetime | date:
        if wall is None:
            return day
        return datetime.combine(day, wall).replace(tzinfo=tz)

    for rule in rules or [Rule(freq="DAILY", count=1)]:
        emitted = 0
        for n, day in enumerate(_candidates(rule, first_day)):
            if n > _MAX_CANDIDATES or (rule.count is not None and emitted >= rule.count):
                break
            if day < first_day:
                continue
            value = occurrence(day)
            key = _key(value, tz, all_day)
            if rule.until is not None and _beyond_until(value, rule.until, tz):
                break
            if (isinstance(key, datetime) and key > until) or (
                not isinstance(key, datetime) and _key(day, tz, False) > until
            ):
                break
            emitted += 1
            found[key] = value
    for extra in _date_lines(lines, "RDATE", tz):
        value = extra if all_day or isinstance(extra, datetime) else occurrence(extra)
        if isinstance(value, datetime) and all_day:
            value = value.date()
        key = _key(value, tz, all_day)
        if isinstance(value, datetime) and value.tzinfo is None:
            value = value.replace(tzinfo=tz)
        if isinstance(value, datetime):
            value = value.astimezone(tz)
        found[key] = value
    for gone in _date_lines(lines, "EXDATE", tz):
        found.pop(_key(gone, tz, all_day), None)
    # Keys are homogeneous: all UTC datetimes (timed) or all dates (all-day).
    return [found[k] for k in sorted(found)]


def _beyond_until(value: datetime | date, until: datetime | date, tz: ZoneInfo) -> bool:
    if isinstance(until, datetime) and until.tzinfo is not None:
        # A UTC UNTIL bounds the instant; for all-day series compare the local midnight.
        instant = _key(value, tz, False)
        assert isinstance(instant, datetime)
        return instant > until
    if isinstance(until, datetime):
        local = value if isinstance(value, datetime) else datetime.combine(value, time())
        return local.replace(tzinfo=None) > until
    day = value.date() if isinstance(value, datetime) else value
    return day > until
