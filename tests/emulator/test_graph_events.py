"""Graph event resources and reads (PROTOCOLS §2.3, §2.5): types, ids, iCalUId, times
without offset, people, online meetings, HTML body, /me/calendars, /me/events, 429."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx

from showup.emulator import World
from showup.emulator.graph import graph_event, graph_event_id
from tests.emulator.conftest import ALICE, BOB, timed
from tests.emulator.test_graph_support import GRAPH, NOVEMBER, graph_sign_in

TEAMS = "https://teams.microsoft.com/l/meetup-join/19%3ameeting_abc%40thread.v2/0"


def meeting(**extra: Any) -> dict[str, Any]:
    return {
        "summary": "Planning",
        "description": "Agenda:\n1. budget & plans",
        "location": "Room 1",
        **timed("2026-11-04T10:00:00", "2026-11-04T11:00:00"),
        "attendees": [
            {"email": BOB, "responseStatus": "tentative"},
            {"email": "carol@else.example", "optional": True},
            {"email": "room@example.com", "resource": True, "responseStatus": "accepted"},
        ],
        "conferenceData": {"entryPoints": [{"entryPointType": "video", "uri": TEAMS}]},
        **extra,
    }


async def test_single_event_resource(world: World, http: httpx.AsyncClient) -> None:
    await graph_sign_in(world, http)
    created = world.create_event(ALICE, meeting(visibility="private", id="planning01"))
    gid = graph_event_id(world, ALICE, created["id"])
    r = await http.get(f"{GRAPH}/me/events/{gid}")
    assert r.status_code == 200, r.text
    ev = r.json()
    assert ev == graph_event(world, ALICE, gid)
    assert ev["type"] == "singleInstance" and ev["seriesMasterId"] is None
    assert ev["iCalUId"] == "planning01@google.com"
    assert ev["start"] == {"dateTime": "2026-11-04T09:00:00.0000000", "timeZone": "UTC"}
    assert ev["end"] == {"dateTime": "2026-11-04T10:00:00.0000000", "timeZone": "UTC"}
    assert ev["originalStartTimeZone"] == "Europe/Berlin"
    assert ev["organizer"] == {"emailAddress": {"name": "Alice", "address": ALICE}}
    assert ev["isOrganizer"] is True and ev["responseStatus"]["response"] == "organizer"
    people = {a["emailAddress"]["address"]: a for a in ev["attendees"]}
    assert ALICE not in people  # the organizer is not an attendee on Graph
    assert people[BOB]["type"] == "required"
    assert people[BOB]["status"]["response"] == "tentativelyAccepted"
    assert people["carol@else.example"]["type"] == "optional"
    assert people["carol@else.example"]["status"]["response"] == "none"
    assert people["room@example.com"]["type"] == "resource"
    assert ev["isOnlineMeeting"] is True and ev["onlineMeetingProvider"] == "teamsForBusiness"
    assert ev["onlineMeeting"] == {"joinUrl": TEAMS}
    assert ev["body"]["contentType"] == "html"
    assert "Agenda:<br>\r\n1. budget &amp; plans" in ev["body"]["content"]
    assert TEAMS in ev["body"]["content"]
    assert ev["bodyPreview"].startswith("Agenda: 1. budget & plans")
    assert ev["sensitivity"] == "private" and ev["showAs"] == "busy"
    assert ev["location"]["displayName"] == "Room 1" and ev["isCancelled"] is False
    assert ev["@odata.etag"] == f'W/"{ev["changeKey"]}"'

    text = await http.get(
        f"{GRAPH}/me/events/{gid}", headers={"Prefer": 'outlook.body-content-type="text"'}
    )
    assert text.json()["body"]["contentType"] == "text"
    assert f"Join the meeting now<{TEAMS}>" in text.json()["body"]["content"]

    # Bob's copy: another id, his own response, not the organizer.
    bob = graph_event(world, BOB, created["id"])
    assert bob["id"] != gid and bob["iCalUId"] == ev["iCalUId"]
    assert bob["isOrganizer"] is False
    assert bob["responseStatus"]["response"] == "tentativelyAccepted"
    # The world accepts Graph ids, and the change key moves on every edit.
    world.respond(BOB, bob["id"], "accepted")
    assert graph_event(world, BOB, bob["id"])["responseStatus"]["response"] == "accepted"
    assert graph_event(world, ALICE, gid)["changeKey"] != ev["changeKey"]
    # Another user's ids are not hers.
    assert (await http.get(f"{GRAPH}/me/events/{bob['id']}")).status_code == 404


async def test_occurrences_exceptions_and_masters(world: World, http: httpx.AsyncClient) -> None:
    await graph_sign_in(world, http)
    series = world.create_event(
        ALICE,
        {
            "summary": "Weekly",
            **timed("2026-11-03T10:00:00", "2026-11-03T10:30:00"),
            "recurrence": ["RRULE:FREQ=WEEKLY;BYDAY=TU,TH;UNTIL=20261130T000000Z"],
            "transparency": "transparent",
            "graph": {"sensitivity": "personal"},
        },
    )["id"]
    assert "graph" not in world.get_event(ALICE, series)  # Google renderings omit it
    world.update_event(ALICE, f"{series}_20261105T090000Z", {"summary": "Moved"})
    view = (await http.get(f"{GRAPH}/me/calendarView", params=NOVEMBER)).json()["value"]
    assert [e["type"] for e in view].count("exception") == 1
    assert {e["type"] for e in view} == {"occurrence", "exception"}  # no masters here
    occurrence = view[0]
    assert occurrence["subject"] == "Weekly" and occurrence["showAs"] == "free"
    assert occurrence["sensitivity"] == "personal"
    assert occurrence["iCalUId"] == f"{series}@google.com_20261103T090000Z"
    assert len({e["iCalUId"] for e in view}) == len(view) == 8
    master = graph_event(world, ALICE, occurrence["seriesMasterId"])
    assert master["type"] == "seriesMaster"
    assert master["recurrence"]["pattern"]["type"] == "weekly"
    assert master["recurrence"]["pattern"]["daysOfWeek"] == ["tuesday", "thursday"]
    assert master["recurrence"]["range"] == {
        "type": "endDate",
        "startDate": "2026-11-03",
        "endDate": "2026-11-30",
        "recurrenceTimeZone": "Europe/Berlin",
        "numberOfOccurrences": 0,
    }
    listed = (await http.get(f"{GRAPH}/me/events")).json()["value"]
    assert [e["type"] for e in listed] == ["seriesMaster"]
    instances = await http.get(
        f"{GRAPH}/me/events/{master['id']}/instances",
        params={"startDateTime": "2026-11-01T00:00:00", "endDateTime": "2026-11-08T00:00:00"},
    )
    assert [e["subject"] for e in instances.json()["value"]] == ["Weekly", "Moved"]


async def test_all_day_events_and_paging(world: World, http: httpx.AsyncClient) -> None:
    await graph_sign_in(world, http)
    world.create_event(ALICE, {"summary": "Holiday", "start": {"date": "2026-11-11"}})
    for n in range(12):
        world.create_event(
            ALICE, {"summary": f"e{n}", "start": {"dateTime": f"2026-11-20T{n + 8:02d}:00:00Z"}}
        )
    r = await http.get(f"{GRAPH}/me/calendarView", params=NOVEMBER)
    body = r.json()
    assert len(body["value"]) == 10 and body["@odata.nextLink"].startswith("http://emu/graph/v1.0/")
    holiday = body["value"][0]
    assert holiday["isAllDay"] is True
    assert holiday["start"] == {"dateTime": "2026-11-11T00:00:00.0000000", "timeZone": "UTC"}
    assert holiday["end"]["dateTime"] == "2026-11-12T00:00:00.0000000"
    rest = (await http.get(body["@odata.nextLink"])).json()
    assert len(rest["value"]) == 3 and "@odata.nextLink" not in rest


async def test_calendars(world: World, http: httpx.AsyncClient) -> None:
    await graph_sign_in(world, http)
    world.add_calendar(ALICE, "Side project")
    calendars = (await http.get(f"{GRAPH}/me/calendars")).json()["value"]
    assert [(c["name"], c["isDefaultCalendar"]) for c in calendars] == [
        ("Calendar", True),
        ("Side project", False),
    ]
    assert calendars[0]["owner"] == {"name": "Alice", "address": ALICE}
    one = await http.get(f"{GRAPH}/me/calendars/{calendars[1]['id']}")
    assert one.json()["name"] == "Side project"
    assert (await http.get(f"{GRAPH}/me/calendar")).json()["id"] == calendars[0]["id"]
    assert (await http.get(f"{GRAPH}/me/calendars/AAMkAGCnope")).status_code == 404


async def test_faults_answer_in_graph_shape(world: World, http: httpx.AsyncClient) -> None:
    await graph_sign_in(world, http)
    world.faults.add(429, path_contains="/calendarView/delta", retry_after=7)
    r = await http.get(f"{GRAPH}/me/calendarView/delta", params=NOVEMBER)
    assert r.status_code == 429 and r.headers["retry-after"] == "7"
    assert r.json()["error"]["code"] == "ApplicationThrottled"
    assert (await http.get(f"{GRAPH}/me/calendarView/delta", params=NOVEMBER)).status_code == 200
    world.faults.add(503, path_contains="/oauth2/v2.0/token")
    r = await http.post("/login/common/oauth2/v2.0/token", data={})
    assert r.status_code == 503 and r.json()["error"] == "temporarily_unavailable"
    assert r.json()["error_codes"]


async def test_world_methods_take_graph_ids(world: World) -> None:
    created = world.create_event(ALICE, meeting())
    gid = graph_event_id(world, ALICE, created["id"])
    world.move_event(ALICE, gid, datetime(2026, 11, 6, 9, tzinfo=UTC))
    assert graph_event(world, ALICE, gid)["start"]["dateTime"] == "2026-11-06T09:00:00.0000000"
    world.cancel_event(ALICE, gid)
    assert world.get_event(ALICE, created["id"])["status"] == "cancelled"
