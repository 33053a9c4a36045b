"""The Python world API: attendee copies, responses, edits and the input checks."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from showup.clock import FakeClock
from showup.emulator import InvalidEvent, NotFound, World
from tests.emulator.conftest import ALICE, BOB, timed

CAROL = "carol@example.com"


def meeting(world: World) -> dict[str, object]:
    return world.create_event(
        ALICE,
        timed(
            "2026-11-04T10:00:00",
            "2026-11-04T11:00:00",
            summary="Design review",
            attendees=[{"email": BOB}, {"email": "outsider@other.org", "displayName": "Out"}],
            conferenceData={
                "conferenceId": "abc-defg-hij",
                "conferenceSolution": {"key": {"type": "hangoutsMeet"}},
                "entryPoints": [
                    {"entryPointType": "video", "uri": "https://meet.google.com/abc-defg-hij"}
                ],
            },
            hangoutLink="https://meet.google.com/abc-defg-hij",
        ),
    )


def test_the_same_meeting_on_two_calendars(world: World) -> None:
    ev = meeting(world)
    mine = world.get_event(ALICE, str(ev["id"]))
    bobs = world.get_event(BOB, str(ev["id"]))
    assert mine["iCalUID"] == bobs["iCalUID"] and mine["id"] == bobs["id"]
    assert mine["organizer"] == {"email": ALICE, "displayName": "Alice", "self": True}
    assert bobs["organizer"] == {"email": ALICE, "displayName": "Alice"}
    people = {a["email"]: a for a in bobs["attendees"]}
    assert people[ALICE] == {
        "email": ALICE,
        "displayName": "Alice",
        "organizer": True,
        "responseStatus": "accepted",
    }
    assert people[BOB]["self"] is True and people[BOB]["responseStatus"] == "needsAction"
    assert "self" not in {a["email"]: a for a in mine["attendees"]}[BOB]
    assert bobs["hangoutLink"] == "https://meet.google.com/abc-defg-hij"
    assert bobs["conferenceData"]["conferenceId"] == "abc-defg-hij"


def test_responses_and_edits_show_on_every_copy(world: World) -> None:
    ev = meeting(world)
    world.respond(BOB, str(ev["id"]), "declined")
    world.update_event(ALICE, str(ev["id"]), {"location": "Room 1"})
    for who in (ALICE, BOB):
        seen = world.get_event(who, str(ev["id"]))
        assert seen["location"] == "Room 1" and seen["sequence"] == 1
        assert {a["email"]: a["responseStatus"] for a in seen["attendees"]}[BOB] == "declined"
    with pytest.raises(InvalidEvent):
        world.respond(ALICE, str(ev["id"]), "maybe-later")
    solo = world.create_event(ALICE, timed("2026-11-05T10:00:00", "2026-11-05T11:00:00"))
    with pytest.raises(NotFound):
        world.respond(ALICE, str(solo["id"]), "declined")  # no guest list


def test_inviting_later_adds_a_copy(world: World) -> None:
    ev = meeting(world)
    world.add_user(CAROL, name="Carol")
    with pytest.raises(NotFound):
        world.get_event(CAROL, str(ev["id"]))
    attendees = world.get_event(ALICE, str(ev["id"]))["attendees"] + [{"email": CAROL}]
    world.update_event(ALICE, str(ev["id"]), {"attendees": attendees})
    assert world.get_event(CAROL, str(ev["id"]))["status"] == "confirmed"


def test_instance_edits_and_python_results_are_copies(world: World, clock: FakeClock) -> None:
    series = world.create_event(
        ALICE,
        timed(
            "2026-11-03T09:00:00", "2026-11-03T09:30:00", recurrence=["RRULE:FREQ=DAILY;COUNT=3"]
        ),
    )
    sid = str(series["id"])
    series["summary"] = "mutated by the caller"
    assert "summary" not in world.get_event(ALICE, sid)
    inst = world.move_event(ALICE, f"{sid}_20261104T080000Z", datetime(2026, 11, 4, 12, tzinfo=UTC))
    assert inst["start"]["dateTime"] == "2026-11-04T13:00:00+01:00"
    assert inst["end"]["dateTime"] == "2026-11-04T13:30:00+01:00"
    assert inst["originalStartTime"]["dateTime"] == "2026-11-04T09:00:00+01:00"
    again = world.update_event(ALICE, f"{sid}_20261104T080000Z", {"summary": "moved one"})
    assert again["start"] == inst["start"] and again["summary"] == "moved one"
    assert world.cancel_event(ALICE, f"{sid}_20261105T080000Z")["status"] == "cancelled"


def test_input_checks(world: World) -> None:
    with pytest.raises(InvalidEvent):
        world.create_event(ALICE, {"start": {"dateTime": "2026-11-03T09:00:00"}})  # no offset
    with pytest.raises(InvalidEvent):
        world.create_event(ALICE, timed("2026-11-03T09:00:00", "2026-11-03T08:00:00"))
    with pytest.raises(InvalidEvent):
        world.create_event(
            ALICE, {**timed("2026-11-03T09:00:00", "2026-11-03T10:00:00"), "id": "UPPER"}
        )
    ev = world.create_event(
        ALICE, {**timed("2026-11-03T09:00:00", "2026-11-03T10:00:00"), "id": "abc123"}
    )
    with pytest.raises(InvalidEvent):
        world.create_event(
            ALICE, {**timed("2026-11-03T09:00:00", "2026-11-03T10:00:00"), "id": "abc123"}
        )
    with pytest.raises(InvalidEvent):
        world.update_event(ALICE, str(ev["id"]), {"eventType": "focusTime"})
    with pytest.raises(NotFound):
        world.update_event(ALICE, "nope1", {"summary": "x"})
    with pytest.raises(NotFound):
        world.calendar(ALICE, BOB)  # someone else's calendar
    with pytest.raises(InvalidEvent):
        world.add_user(ALICE)


def test_all_day_and_passthrough_fields(world: World) -> None:
    ev = world.create_event(
        ALICE,
        {
            "start": {"date": "2026-11-05"},
            "summary": "Off",
            "eventType": "outOfOffice",
            "extendedProperties": {"private": {"k": "v"}},
        },
    )
    assert ev["end"] == {"date": "2026-11-06"}
    assert ev["eventType"] == "outOfOffice"
    assert ev["extendedProperties"] == {"private": {"k": "v"}}
    moved = world.move_event(ALICE, str(ev["id"]), datetime(2026, 11, 9, tzinfo=UTC))
    assert (moved["start"], moved["end"]) == ({"date": "2026-11-09"}, {"date": "2026-11-10"})


def test_reset_forgets_everything(world: World) -> None:
    meeting(world)
    world.faults.add(status=500)
    world.reset()
    assert world.users == {} and world.faults.list() == []
