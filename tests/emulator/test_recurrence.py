"""Recurrence expansion (PROTOCOLS §1.3 "Recurrence"): the RRULE subset, EXDATE/RDATE,
wall-clock stability across DST, and instance ids."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from showup.emulator import InvalidEvent, World
from showup.emulator.recurrence import expand
from tests.emulator.conftest import ALICE, BOB, Session, list_all, sign_in, timed

BERLIN = ZoneInfo("Europe/Berlin")
FAR = datetime(2030, 1, 1, tzinfo=UTC)


def local(values: list[datetime | date]) -> list[str]:
    return [v.isoformat() for v in values]


def test_weekly_byday_keeps_wall_time_across_dst() -> None:
    start = datetime(2026, 10, 20, 10, 0, tzinfo=BERLIN)
    got = expand(["RRULE:FREQ=WEEKLY;BYDAY=TU,TH;COUNT=4"], start, BERLIN, FAR)
    assert local(got) == [
        "2026-10-20T10:00:00+02:00",
        "2026-10-22T10:00:00+02:00",
        "2026-10-27T10:00:00+01:00",  # after the 25 Oct fall-back: same wall time
        "2026-10-29T10:00:00+01:00",
    ]


def test_spring_forward_gap_moves_later() -> None:
    start = datetime(2027, 3, 27, 2, 30, tzinfo=BERLIN)
    got = expand(["RRULE:FREQ=DAILY;COUNT=3"], start, BERLIN, FAR)
    assert [v.astimezone(UTC).isoformat() for v in got if isinstance(v, datetime)] == [
        "2027-03-27T01:30:00+00:00",
        "2027-03-28T01:30:00+00:00",  # 02:30 does not exist; shown as 03:30 CEST
        "2027-03-29T00:30:00+00:00",
    ]


def test_monthly_ordinals_bymonthday_interval_until() -> None:
    start = datetime(2026, 1, 13, 9, 0, tzinfo=BERLIN)
    second_tuesday = expand(["RRULE:FREQ=MONTHLY;BYDAY=2TU;COUNT=3"], start, BERLIN, FAR)
    assert [v.isoformat()[:10] for v in second_tuesday] == [
        "2026-01-13",
        "2026-02-10",
        "2026-03-10",
    ]
    last_friday = expand(["RRULE:FREQ=MONTHLY;BYDAY=-1FR;COUNT=2"], start, BERLIN, FAR)
    assert [v.isoformat()[:10] for v in last_friday] == ["2026-01-30", "2026-02-27"]
    day31 = expand(
        ["RRULE:FREQ=MONTHLY;BYMONTHDAY=31;UNTIL=20260601T000000Z"],
        datetime(2026, 1, 31, 9, tzinfo=BERLIN),
        BERLIN,
        FAR,
    )
    assert [v.isoformat()[:10] for v in day31] == ["2026-01-31", "2026-03-31", "2026-05-31"]
    every_other = expand(["RRULE:FREQ=WEEKLY;INTERVAL=2;UNTIL=20260301"], start, BERLIN, FAR)
    assert [v.isoformat()[:10] for v in every_other] == [
        "2026-01-13",
        "2026-01-27",
        "2026-02-10",
        "2026-02-24",
    ]


def test_exdate_rdate_and_all_day() -> None:
    start = datetime(2026, 11, 2, 9, 0, tzinfo=BERLIN)
    got = expand(
        [
            "RRULE:FREQ=DAILY;COUNT=4",
            "EXDATE;TZID=Europe/Berlin:20261103T090000",
            "EXDATE:20261104T080000Z",
            "RDATE;TZID=Europe/Berlin:20261110T090000",
        ],
        start,
        BERLIN,
        FAR,
    )
    assert [v.isoformat()[:10] for v in got] == ["2026-11-02", "2026-11-05", "2026-11-10"]
    days = expand(
        ["RRULE:FREQ=YEARLY;COUNT=2", "EXDATE;VALUE=DATE:20271224"],
        date(2026, 12, 24),
        BERLIN,
        FAR,
    )
    assert days == [date(2026, 12, 24)]


def test_unbounded_series_stop_at_the_horizon() -> None:
    start = datetime(2026, 11, 2, 9, 0, tzinfo=BERLIN)
    got = expand(["RRULE:FREQ=DAILY"], start, BERLIN, datetime(2026, 11, 5, 9, tzinfo=UTC))
    assert len(got) == 4


@pytest.mark.parametrize(
    "rule",
    [
        "RRULE:FREQ=HOURLY",
        "RRULE:FREQ=DAILY;BYSETPOS=1",
        "RRULE:FREQ=DAILY;COUNT=2;UNTIL=20270101",
        "X:1",
    ],
)
def test_unsupported_rules_are_rejected(world: World, rule: str) -> None:
    with pytest.raises(InvalidEvent):
        world.create_event(
            ALICE, timed("2026-11-03T09:00:00", "2026-11-03T10:00:00", recurrence=[rule])
        )


async def test_dst_series_over_http_in_two_zones(world: World, alice: Session) -> None:
    """One Berlin meeting seen by Bob in New York: zones change on different dates,
    the instant follows the organizer's wall clock, and ids are UTC."""
    series = world.create_event(
        ALICE,
        timed(
            "2026-10-19T16:00:00",
            "2026-10-19T17:00:00",
            recurrence=["RRULE:FREQ=WEEKLY;COUNT=4"],
            attendees=[{"email": BOB}],
        ),
    )
    items, _, _ = await list_all(alice.http, singleEvents="true")
    assert [i["id"].split("_")[1] for i in items] == [
        "20261019T140000Z",
        "20261026T150000Z",  # Berlin fell back on 25 Oct
        "20261102T150000Z",
        "20261109T150000Z",
    ]
    assert {i["start"]["dateTime"][11:] for i in items} == {"16:00:00+02:00", "16:00:00+01:00"}
    bob = await sign_in(world, alice.http, BOB)
    bobs, _, _ = await list_all(bob.http, singleEvents="true")
    assert [i["id"] for i in bobs] == [i["id"] for i in items]
    assert all(i["recurringEventId"] == series["id"] for i in bobs)


async def test_all_day_series_instance_ids(world: World, alice: Session) -> None:
    series = world.create_event(
        ALICE,
        {
            "start": {"date": "2026-11-03"},
            "end": {"date": "2026-11-04"},
            "recurrence": ["RRULE:FREQ=WEEKLY;COUNT=2"],
        },
    )
    items, _, _ = await list_all(alice.http, singleEvents="true")
    assert [(i["id"], i["start"], i["originalStartTime"]) for i in items] == [
        (f"{series['id']}_20261103", {"date": "2026-11-03"}, {"date": "2026-11-03"}),
        (f"{series['id']}_20261110", {"date": "2026-11-10"}, {"date": "2026-11-10"}),
    ]
