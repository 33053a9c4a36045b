"""from_google_event / from_graph_event: field precedence, on corpus payloads and by hand.

Corpus payloads are read in place from ../shared/corpus/provider_payloads (skipped, with the
path, when absent).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from showup.meetings import MeetingLink, from_google_event, from_graph_event

PAYLOADS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus" / "provider_payloads"

MEET = "https://meet.google.com/abc-defg-hij"
ZOOM = "https://us02web.zoom.us/j/85001833920?pwd=cWY6TnhHRkdKZXcwSVk5aGE1VXpqUT09"
TEAMS_RAW = (
    "https://teams.microsoft.com/l/meetup-join/19%3ameeting_NzIyNzhlMGEtM2YyZC00ZmY0LTlhNzUtZmZj"
    "NWFmZGNlNzE2%40thread.v2/0?context=%7b%22Tid%22%3a%2272f988bf-86f1-41af-91ab-2d7cd011db47"
    "%22%2c%22Oid%22%3a%22bc55b173-cff6-457d-b7a1-64bda7d7581a%22%7d"
)
TEAMS = (
    "https://teams.microsoft.com/l/meetup-join/19:meeting_NzIyNzhlMGEtM2YyZC00ZmY0LTlhNzUtZmZj"
    "NWFmZGNlNzE2@thread.v2/0?context=%7B%22Tid%22%3A%2272f988bf-86f1-41af-91ab-2d7cd011db47"
    "%22%2C%22Oid%22%3A%22bc55b173-cff6-457d-b7a1-64bda7d7581a%22%7D"
)


def _load(*parts: str) -> Any:
    path = PAYLOADS.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"corpus not found at {path.resolve()} (read in place, never copied)")
    return json.loads(path.read_text(encoding="utf-8"))


# --- corpus payloads ---------------------------------------------------------------------------


def test_attendee_sync_payloads() -> None:
    items = _load("attendee_sync_calendar_test_events.json")["items"]
    by_test = {item["test"]: item for item in items}

    google = by_test["GoogleCalendarSyncHandler test_remote_event_to_calendar_event_data"]
    # Its conference uri "meet.google.com/abc-def-ghi" is not a Meet code (3-3-3 letters; real
    # codes are 3-4-3), and nothing else in the event is a link: no join link, by our policy.
    assert from_google_event(google["payload"]) is None

    graph = by_test["MicrosoftCalendarSyncHandler test_remote_event_to_calendar_event_data"]
    assert from_graph_event(graph["payload"]) == MeetingLink(
        "https://teams.microsoft.com/meet/123123213?p=3333333", "microsoft_teams"
    )
    for name in (
        "test_extract_meeting_url_from_online_meeting",
        "test_extract_meeting_url_from_legacy_field",
        "test_extract_meeting_url_from_subject_and_body",
    ):
        item = by_test[name]
        link = from_graph_event(item["payload"])
        assert link is not None and link.url == item["asserts"]["meeting_url"], name

    page = by_test["test_list_events_with_pagination (first page)"]["payload"]
    assert from_graph_event(page) is None  # a list page, not an event: no crash, no link


def test_meetingbar_google_payloads() -> None:
    items = _load("google_calendar", "meetingbar_google_parser_test_events.json")["items"]
    by_test = {item["test"]: item for item in items}

    timed = by_test["testTimedEventParses"]
    # MeetingBar appends ?authuser=<calendar email> for its own browser; we never add it.
    assert from_google_event(timed["payload"]) == MeetingLink(
        timed["asserts"]["conference_url"], "google_meet"
    )

    fallback = by_test["testConferenceDataWithoutUsableVideoURLFallsBackToNotesLink"]
    assert from_google_event(fallback["payload"]) == MeetingLink(
        fallback["asserts"]["meeting_link_url"], "zoom"
    )

    for name in ("testHtmlLinkBecomesCalendarOpenURL", "testAllDayEventParses",
                 "testCancelledRecurringEventParsesAttendeeStatuses"):  # fmt: skip
        assert from_google_event(by_test[name]["payload"]) is None, name
    for payload in by_test["testMalformedEventReturnsNil"]["payloads_rejected"]:
        assert from_google_event(payload) is None


@pytest.mark.parametrize(
    "name", ["gcsa_test_event_payloads.json", "nylas_test_google_events_payloads.json"]
)
def test_google_payloads_without_join_links(name: str) -> None:
    # gcsa's conference uri is "https://video.com" (not a platform); nylas events have no links.
    for item in _load("google_calendar", name)["items"]:
        assert from_google_event(item["payload"]) is None, item["test"]


def test_graph_online_meeting_response() -> None:
    event = _load("microsoft_graph", "calendar-post-events_online-meeting_response.json")
    assert event["onlineMeeting"]["joinUrl"] == TEAMS_RAW
    assert from_graph_event(event) == MeetingLink(TEAMS, "microsoft_teams")


def test_graph_payloads_without_join_links() -> None:
    instances = _load("microsoft_graph", "event-list-instances_response.json")["value"]
    delta = _load("microsoft_graph", "calendarview-delta_sync-round.json")["steps"]
    events = instances + [event for step in delta for event in step["response"]["value"]]
    assert events
    for event in events:  # includes an "@removed" tombstone
        assert from_graph_event(event) is None, event["id"]


# --- hand-written: precedence --------------------------------------------------------------


def _google(**fields: Any) -> dict[str, Any]:
    return {"id": "e1", "summary": "Sync", **fields}


def _video(uri: str | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"entryPointType": "video"}
    if uri is not None:
        entry["uri"] = uri
    return {"entryPoints": [{"entryPointType": "phone", "uri": "tel:+1-555-0100"}, entry]}


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"conferenceData": _video(MEET), "description": ZOOM}, MEET),
        ({"conferenceData": _video(None), "description": f"Join: {ZOOM}"}, ZOOM),
        ({"hangoutLink": MEET, "location": ZOOM}, MEET),
        ({"location": ZOOM, "description": MEET}, ZOOM),
        ({"location": "Room 4", "description": f"<p>Join <a href='{MEET}'>here</a></p>"}, MEET),
        ({"description": "no link", "summary": f"Standup {ZOOM}"}, ZOOM),
        # a non-meeting URL in an earlier field does not stop the search
        ({"location": "https://maps.example.com/x", "description": MEET}, MEET),
    ],
)
def test_google_precedence(fields: dict[str, Any], expected: str) -> None:
    link = from_google_event(_google(**fields))
    assert link is not None and link.url == expected


def test_teams_invite_in_google_description_only() -> None:
    # What a Google user sees for an Outlook-organised Teams meeting: no conferenceData,
    # the link only in the (HTML) description, wrapped by Google's redirector.
    description = (
        "<p>________________</p><b>Microsoft Teams meeting</b><br>Join on your computer: "
        f'<a href="https://www.google.com/url?q={quote(TEAMS_RAW, safe="")}&amp;sa=D&amp;'
        'source=calendar&amp;usg=AOvVaw0">Click here to join the meeting</a><br>'
        "Meeting ID: 229 531 741 012<br>Passcode: Zx3Ab9<br>"
        '<a href="https://aka.ms/JoinTeamsMeeting">Learn more</a>'
    )
    link = from_google_event(_google(location="Microsoft Teams Meeting", description=description))
    assert link == MeetingLink(TEAMS, "microsoft_teams")


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"onlineMeeting": {"joinUrl": TEAMS_RAW}, "body": {"content": ZOOM}}, TEAMS),
        ({"onlineMeeting": None, "onlineMeetingUrl": TEAMS_RAW, "location": {"displayName": ZOOM}},
         TEAMS),
        ({"location": {"displayName": "Room 1"}, "locations": [{"displayName": ZOOM}],
          "body": {"content": MEET}}, ZOOM),
        ({"location": {"displayName": ZOOM}, "body": {"content": MEET}}, ZOOM),
        ({"body": {"contentType": "html", "content": f"<a href=\"{MEET}\">x</a>"},
          "subject": ZOOM}, MEET),
        # joinUrl not populated yet (Graph fills it in after a delay): the body is used
        ({"onlineMeeting": {"joinUrl": None}, "isOnlineMeeting": True,
          "body": {"content": f"<a href=\"{TEAMS_RAW}\">Join</a>"}}, TEAMS),
    ],
)  # fmt: skip
def test_graph_precedence(fields: dict[str, Any], expected: str) -> None:
    link = from_graph_event({"id": "AAMk", "subject": "Sync", **fields})
    assert link is not None and link.url == expected


def test_safe_links_wrapped_teams_link_in_graph_body() -> None:
    wrapped = (
        "https://nam12.safelinks.protection.outlook.com/ap/t-59584e83/?url="
        + quote(TEAMS_RAW, safe="")
        + "&amp;data=05%7C02%7Cuser%40contoso.com%7C&amp;sdata=abc%3D&amp;reserved=0"
    )
    body = (
        '<html><head><meta http-equiv="Content-Type" content="text/html; charset=utf-8">'
        "<!-- converted from text --></head><body><div>"
        f'<a href="{wrapped}" target="_blank"><span>Join the meeting now</span></a></div>'
        '<div>Need help? <a href="https://aka.ms/JoinTeamsMeeting?omkt=en-US">Join</a></div>'
        "</body></html>"
    )
    event = {"subject": "Quarterly", "body": {"contentType": "html", "content": body}}
    assert from_graph_event(event) == MeetingLink(TEAMS, "microsoft_teams")


@pytest.mark.parametrize(
    "event",
    [
        _google(location="tel:+1-555-0100", description="Dial in: +1 555 010 0199,,123456789#"),
        _google(description="Meeting ID: 852 1234 5678\nPasscode: 123456\nOne tap: "
                            "+16465588656,,85212345678# US (New York)"),
        _google(conferenceData={"entryPoints": [{"entryPointType": "phone",
                                                 "uri": "tel:+1-555-0100"}]}),
    ],
)  # fmt: skip
def test_phone_only_google_events(event: dict[str, Any]) -> None:
    assert from_google_event(event) is None


def test_phone_only_graph_event() -> None:
    event = {
        "subject": "Call",
        "location": {"displayName": "+1 425 555 0123", "locationUri": "tel:+14255550123"},
        "body": {"content": "<p>Conference ID: 177513992#</p><p>+1 425 555 0123</p>"},
    }
    assert from_graph_event(event) is None


@pytest.mark.parametrize(
    "url",
    [
        "https://zoom.us.evil.com/j/85001833920",
        "https://evilzoom.us/j/85001833920",
        "https://zoom.us@evil.com/j/85001833920",
        "https://meet.google.com.evil.com/abc-defg-hij",
        "https://teams.microsoft.com.evil.com/meet/123456789?p=x",
        "https://evil.com/teams.microsoft.com/l/meetup-join/19:meeting_x@thread.v2/0",
    ],
)
def test_look_alike_hosts_in_events(url: str) -> None:
    assert from_google_event(_google(location=url, description=f"Join: {url}")) is None
    assert from_graph_event({"body": {"content": f'<a href="{url}">Join</a>'}}) is None
    # A real link after the look-alike is still found.
    link = from_google_event(_google(description=f"Join {url} or {MEET}"))
    assert link is not None and link.url == MEET


@pytest.mark.parametrize(
    "event",
    [
        {"conferenceData": "broken", "location": 7, "description": ["x"]},
        {"conferenceData": {"entryPoints": "x"}},
        {"conferenceData": {"entryPoints": [None, 3, {"entryPointType": "video", "uri": 5}]}},
        {},
    ],
)
def test_wrong_types_are_ignored(event: dict[str, Any]) -> None:
    assert from_google_event(event) is None
    assert from_graph_event({"onlineMeeting": "x", "locations": "y", "body": 3, **event}) is None
