"""A series master's RRULE as Graph's ``patternedRecurrence`` (PROTOCOLS §2.3
"recurrence"; RFC 5545 §3.3.10 for the source).

Best effort over the world's RRULE subset: DAILY → daily, WEEKLY → weekly, MONTHLY →
absoluteMonthly (BYMONTHDAY or the start's day) or relativeMonthly (BYDAY with an
ordinal), YEARLY → absoluteYearly or relativeYearly. RDATE/EXDATE have no Graph form
(Graph lists them as exceptions and cancelled occurrences).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from showup.emulator.recurrence import parse_rule

_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_INDEX = {1: "first", 2: "second", 3: "third", 4: "fourth", -1: "last"}


def patterned(lines: list[str], first: date | datetime, tz: str) -> dict[str, Any] | None:
    """The ``recurrence`` value of a master, or None when it has no RRULE."""
    rrule = next((line for line in lines if line.upper().startswith("RRULE:")), None)
    if rrule is None:
        return None
    rule = parse_rule(rrule)
    local = first.astimezone(ZoneInfo(tz)) if isinstance(first, datetime) else first
    start = local.date() if isinstance(local, datetime) else local
    days = [_DAYS[d] for _, d in rule.byday]
    ordinal = next((o for o, _ in rule.byday if o is not None), None)
    pattern: dict[str, Any] = {
        "type": "daily",
        "interval": rule.interval,
        "month": 0,
        "dayOfMonth": 0,
        "firstDayOfWeek": _DAYS[rule.wkst],
        "index": "first",
    }
    if rule.freq == "WEEKLY":
        pattern.update(type="weekly", daysOfWeek=days or [_DAYS[start.weekday()]])
    elif rule.freq in ("MONTHLY", "YEARLY"):
        yearly = rule.freq == "YEARLY"
        if ordinal is not None:
            pattern.update(
                type="relativeYearly" if yearly else "relativeMonthly",
                daysOfWeek=days,
                index=_INDEX.get(ordinal, "first"),
            )
        else:
            day = rule.bymonthday[0] if rule.bymonthday else start.day
            pattern.update(type="absoluteYearly" if yearly else "absoluteMonthly", dayOfMonth=day)
        if yearly:
            pattern["month"] = rule.bymonth[0] if rule.bymonth else start.month
    pattern.setdefault("daysOfWeek", days)
    span: dict[str, Any] = {
        "type": "noEnd",
        "startDate": start.isoformat(),
        "endDate": "0001-01-01",
        "recurrenceTimeZone": tz,
        "numberOfOccurrences": 0,
    }
    if rule.count is not None:
        span.update(type="numbered", numberOfOccurrences=rule.count)
    elif rule.until is not None:
        until = rule.until
        if isinstance(until, datetime):
            until = (until.astimezone(ZoneInfo(tz)) if until.tzinfo else until).date()
        span.update(type="endDate", endDate=until.isoformat())
    return {"pattern": pattern, "range": span}
