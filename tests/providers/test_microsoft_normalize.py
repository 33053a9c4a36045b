"""Graph event JSON → RemoteEvent / RemoteDeletion (PROTOCOLS §2.2, §2.3).

Documented payloads are read in place from ../shared/corpus (a visible skip when absent).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

import pytest

from showup.providers.base import RemoteDeletion, RemoteEvent
from showup.providers.microsoft_normalize import (
    MalformedEvent,
    normalize_item,
    normalize_items,
    parse_time,
)
from showup.providers.microsoft_zones import iana_name
from tests.conftest import corpus_path

OWNER = "ada@contoso.com"


def corpus(name: str) -> Any:
    path = corpus_path("provider_payloads", "microsoft_graph", name)
    return json.loads(path.read_text(encoding="utf-8"))


def event(**extra: Any) -> dict[str, Any]:
    return {
        "id": "AAMk1",
        "subject": "Review",
        "type": "singleInstance",
        "start": {"dateTime": "2026-11-03T14:00:00.0000000", "timeZone": "UTC"},
        "end": {"dateTime": "2026-11-03T15:00:00.0000000", "timeZone": "UTC"},
        **extra,
    }


def live(item: dict[str, Any], owner: str | None = OWNER) -> RemoteEvent:
    result = normalize_item(item, owner)
    assert isinstance(result, RemoteEvent)
    return result


# -- documented payloads -----------------------------------------------------------------------


def test_documented_online_meeting_event() -> None:
    raw = corpus("calendar-post-events_online-meeting_response.json")
    ev = live(raw, owner="meganb@contoso.onmicrosoft.com")
    # 12:00 Pacific Standard Time on 2019-03-10 is after the DST switch (02:00): PDT, UTC-7.
    assert ev.start_time == datetime(2019, 3, 10, 19, 0, tzinfo=UTC)
    assert ev.end_time == datetime(2019, 3, 10, 21, 0, tzinfo=UTC)
    assert ev.platform_id == raw["id"]
    assert ev.ical_uid == raw["iCalUId"]
    assert ev.recurring_event_id is None
    assert ev.title == "Let's go for lunch"
    assert not ev.is_all_day
    assert ev.organizer_email == "MeganB@contoso.OnMicrosoft.com"
    assert ev.meeting_platform == "microsoft_teams"
    assert ev.meeting_url is not None and "teams.microsoft.com" in ev.meeting_url
    (adele,) = ev.attendees
    assert adele.email == "AdeleV@contoso.OnMicrosoft.com"
    assert adele.name == "Adele Vance"
    assert adele.response_status == "needs_action"
    assert not adele.is_self and not adele.is_organizer and not adele.is_resource
    assert ev.raw is raw


def test_documented_instances_carry_their_series() -> None:
    items = corpus("event-list-instances_response.json")["value"]
    upserts, deletions = normalize_items(items, OWNER)
    assert deletions == []
    assert len(upserts) == 4
    assert {e.recurring_event_id for e in upserts} == {"AAMkAGUzYRgWAAA="}
    exception = next(e for e in upserts if e.raw["type"] == "exception")
    assert exception.start_time == datetime(2019, 4, 16, 20, 30, tzinfo=UTC)


def test_attendee_sync_corpus_items() -> None:
    path = corpus_path("provider_payloads", "attendee_sync_calendar_test_events.json")
    items = json.loads(path.read_text(encoding="utf-8"))["items"]
    for case in items:
        if case["provider"] != "microsoft_graph":
            continue
        payload = case["payload"]
        expected_url = case.get("asserts", {}).get("meeting_url")
        if "start" in payload:
            ev = live(payload)
            assert ev.platform_id == case["asserts"]["platform_uuid"]
            assert ev.meeting_url is not None and "teams.microsoft.com" in ev.meeting_url
            assert ev.ical_uid == "ical_uid_123"
        elif expected_url is not None:
            ev = live(event(**payload))
            assert ev.meeting_url is not None
            assert ev.meeting_url.split("?")[0] in expected_url


# -- deletions and skips -----------------------------------------------------------------------


def test_removed_and_cancelled_are_deletions() -> None:
    tomb = {"@odata.type": "#microsoft.graph.event", "id": "x", "@removed": {"reason": "deleted"}}
    gone = normalize_item(tomb, OWNER)
    assert isinstance(gone, RemoteDeletion) and gone.platform_id == "x" and gone.raw is tomb
    cancelled = normalize_item(event(isCancelled=True), OWNER)
    assert isinstance(cancelled, RemoteDeletion) and cancelled.platform_id == "AAMk1"


def test_series_masters_are_not_occurrences() -> None:
    assert normalize_item(event(type="seriesMaster"), OWNER) is None
    upserts, deletions = normalize_items([event(type="seriesMaster"), event(id="b")], OWNER)
    assert [e.platform_id for e in upserts] == ["b"] and deletions == []


def test_malformed_items_are_skipped_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    items = [
        "nope",
        {"subject": "no id"},
        event(id="bad-start", start={"dateTime": "tomorrow", "timeZone": "UTC"}),
        event(id="bad-zone", start={"dateTime": "2026-11-03T14:00:00", "timeZone": "Mars/Olympus"}),
        event(id="ok"),
    ]
    with caplog.at_level(logging.WARNING):
        upserts, _ = normalize_items(items, OWNER)
    assert [e.platform_id for e in upserts] == ["ok"]
    assert "bad-zone" in caplog.text and "Review" not in caplog.text
    assert normalize_items(None, OWNER) == ([], [])
    assert normalize_items({"not": "a list"}, OWNER) == ([], [])


# -- times -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("node", "expected"),
    [
        ({"dateTime": "2026-11-03T14:00:00.0000000", "timeZone": "UTC"}, datetime(2026, 11, 3, 14)),
        (
            {"dateTime": "2026-11-03T14:00:00.1234567", "timeZone": "UTC"},
            datetime(2026, 11, 3, 14, 0, 0, 123456),
        ),
        (
            {"dateTime": "2026-11-03T14:00:00", "timeZone": "W. Europe Standard Time"},
            datetime(2026, 11, 3, 13),
        ),
        (
            {"dateTime": "2026-07-03T14:00:00", "timeZone": "Eastern Standard Time"},
            datetime(2026, 7, 3, 18),
        ),
        (
            {"dateTime": "2026-11-03T14:00:00", "timeZone": "Asia/Kolkata"},
            datetime(2026, 11, 3, 8, 30),
        ),
        ({"dateTime": "2026-11-03T14:00:00+01:00", "timeZone": "UTC"}, datetime(2026, 11, 3, 13)),
        ({"dateTime": "2026-11-03T14:00:00"}, datetime(2026, 11, 3, 14)),
    ],
)
def test_parse_time(node: dict[str, str], expected: datetime) -> None:
    value = parse_time(node)
    assert value == expected.replace(tzinfo=UTC)
    assert value.utcoffset() is not None and value.utcoffset().total_seconds() == 0  # type: ignore[union-attr]


@pytest.mark.parametrize("node", [None, {}, {"dateTime": 5}, {"dateTime": "x", "timeZone": "UTC"}])
def test_parse_time_rejects(node: Any) -> None:
    with pytest.raises(MalformedEvent):
        parse_time(node)


def test_windows_zone_names() -> None:
    assert iana_name("Pacific Standard Time") == "America/Los_Angeles"
    assert iana_name("Europe/Berlin") == "Europe/Berlin"
    assert iana_name("tzone://Microsoft/Custom") is None
    assert iana_name(None) is None


def test_all_day_event() -> None:
    ev = live(
        event(
            isAllDay=True,
            start={"dateTime": "2026-11-04T23:00:00.0000000", "timeZone": "UTC"},
            end={"dateTime": "2026-11-05T23:00:00.0000000", "timeZone": "UTC"},
        )
    )
    assert ev.is_all_day
    assert ev.start_time == datetime(2026, 11, 4, 23, tzinfo=UTC)
    assert ev.end_time == datetime(2026, 11, 5, 23, tzinfo=UTC)


def test_negative_span_is_clamped() -> None:
    ev = live(event(end={"dateTime": "2026-11-03T13:00:00", "timeZone": "UTC"}))
    assert ev.end_time == ev.start_time


# -- people ------------------------------------------------------------------------------------


def person(address: str, response: str = "none", kind: str = "required") -> dict[str, Any]:
    return {
        "type": kind,
        "status": {"response": response, "time": "0001-01-01T00:00:00Z"},
        "emailAddress": {"name": address.split("@")[0].title(), "address": address},
    }


def test_attendee_statuses_self_organizer_and_resources() -> None:
    ev = live(
        event(
            organizer={"emailAddress": {"name": "Bob", "address": "Bob@partner.test"}},
            responseStatus={"response": "tentativelyAccepted", "time": "2026-11-01T10:00:00Z"},
            attendees=[
                person("ADA@contoso.com", "none"),  # the owner: their own reply wins
                person("bob@partner.test", "accepted"),
                person("carol@partner.test", "declined"),
                person("dan@partner.test", "tentativelyAccepted"),
                person("erin@partner.test", "notResponded"),
                person("room1@contoso.com", "accepted", kind="resource"),
                person("fay@partner.test", "somethingNew"),
                {"status": "garbage"},
            ],
        )
    )
    people = {a.email: a for a in ev.attendees}
    ada = people["ADA@contoso.com"]
    assert ada.is_self and ada.response_status == "tentative" and not ada.is_organizer
    bob = people["bob@partner.test"]
    assert bob.is_organizer and bob.response_status == "accepted" and not bob.is_self
    assert bob.name == "Bob"
    assert people["carol@partner.test"].response_status == "declined"
    assert people["dan@partner.test"].response_status == "tentative"
    assert people["erin@partner.test"].response_status == "needs_action"
    assert people["room1@contoso.com"].is_resource
    assert people["fay@partner.test"].response_status == "needs_action"
    assert people[None].response_status == "needs_action"
    assert sum(a.is_self for a in ev.attendees) == 1


def test_organizer_reply_reads_as_accepted_for_self() -> None:
    ev = live(
        event(
            organizer={"emailAddress": {"address": OWNER}},
            responseStatus={"response": "organizer"},
            attendees=[person(OWNER), person("bob@partner.test")],
        )
    )
    (me,) = [a for a in ev.attendees if a.is_self]
    assert me.is_organizer and me.response_status == "accepted"


def test_without_an_owner_nobody_is_self() -> None:
    ev = live(event(attendees=[person(OWNER)]), owner=None)
    assert not any(a.is_self for a in ev.attendees)


# -- join links (Recall precedence, PEERS §1b) -------------------------------------------------


def test_teams_join_url_beats_the_body() -> None:
    ev = live(
        event(
            onlineMeeting={
                "joinUrl": "https://teams.microsoft.com/l/meetup-join/19%3ameeting_abc%40thread.v2/0"
            },
            body={"contentType": "html", "content": "<a href='https://zoom.us/j/1234567890'>z</a>"},
        )
    )
    assert ev.meeting_url is not None and "teams.microsoft.com" in ev.meeting_url


def test_link_from_the_body_when_no_online_meeting() -> None:
    ev = live(
        event(
            onlineMeeting=None,
            body={"contentType": "html", "content": "<p>Join: https://zoom.us/j/1234567890</p>"},
        )
    )
    assert ev.meeting_url is not None and "zoom.us/j/1234567890" in ev.meeting_url
    assert ev.meeting_platform


def test_no_link() -> None:
    ev = live(event(body={"contentType": "text", "content": "lunch"}))
    assert ev.meeting_url is None and ev.meeting_platform is None


# -- sparse occurrences and all-day dates ------------------------------------------------------

MASTER = event(
    id="M1",
    type="seriesMaster",
    subject="Weekly",
    iCalUId="uid-1",
    changeKey="ck-master",
    originalStartTimeZone="Europe/Berlin",
    organizer={"emailAddress": {"address": "bob@partner.test"}},
    attendees=[person(OWNER, "accepted")],
    onlineMeeting={
        "joinUrl": "https://teams.microsoft.com/l/meetup-join/19%3ameeting_x%40thread.v2/0"
    },
    recurrence={"pattern": {"type": "weekly"}},
)


def sparse(event_id: str, day: int) -> dict[str, Any]:
    return {
        "@odata.type": "#microsoft.graph.event",
        "@odata.etag": f'W/"{event_id}"',
        "id": event_id,
        "seriesMasterId": "M1",
        "type": "occurrence",
        "start": {"dateTime": f"2026-11-{day:02d}T14:00:00.0000000", "timeZone": "UTC"},
        "end": {"dateTime": f"2026-11-{day:02d}T15:00:00.0000000", "timeZone": "UTC"},
    }


def test_sparse_occurrences_take_their_masters_fields() -> None:
    masters: dict[str, dict[str, Any]] = {}
    upserts, _ = normalize_items([MASTER, sparse("O1", 4)], OWNER, masters)
    (o1,) = upserts
    assert o1.platform_id == "O1" and o1.title == "Weekly"
    assert o1.recurring_event_id == "M1"
    assert o1.start_time == datetime(2026, 11, 4, 14, tzinfo=UTC)
    assert o1.organizer_email == "bob@partner.test"
    assert o1.meeting_url is not None and "teams.microsoft.com" in o1.meeting_url
    assert [a.is_self for a in o1.attendees] == [True]
    assert o1.raw["id"] == "O1" and "recurrence" not in o1.raw
    assert "changeKey" not in o1.raw  # the master's bookkeeping is not the occurrence's
    # The next page of the same round: the master is remembered.
    (o2,), _ = normalize_items([sparse("O2", 11)], OWNER, masters)
    assert o2.title == "Weekly"
    # A full occurrence keeps its own fields.
    (o3,), _ = normalize_items([{**sparse("O3", 18), "subject": "Own"}], OWNER, masters)
    assert o3.title == "Own" and o3.attendees == ()


def test_cancelled_master_cancels_its_sparse_occurrences() -> None:
    upserts, deletions = normalize_items(
        [{**MASTER, "isCancelled": True}, sparse("O1", 4)], OWNER, {}
    )
    assert upserts == [] and [d.platform_id for d in deletions] == ["O1"]


def test_all_day_midnights_are_read_in_the_original_zone() -> None:
    ev = live(
        event(
            isAllDay=True,
            originalStartTimeZone="Europe/Berlin",
            originalEndTimeZone="W. Europe Standard Time",
            start={"dateTime": "2026-11-05T00:00:00.0000000", "timeZone": "UTC"},
            end={"dateTime": "2026-11-06T00:00:00.0000000", "timeZone": "UTC"},
        )
    )
    assert ev.start_time == datetime(2026, 11, 4, 23, tzinfo=UTC)
    assert ev.end_time == datetime(2026, 11, 5, 23, tzinfo=UTC)
    custom = live(
        event(
            isAllDay=True,
            originalStartTimeZone="tzone://Microsoft/Custom",
            start={"dateTime": "2026-11-05T00:00:00.0000000", "timeZone": "UTC"},
            end={"dateTime": "2026-11-06T00:00:00.0000000", "timeZone": "UTC"},
        )
    )
    assert custom.start_time == datetime(2026, 11, 5, tzinfo=UTC)
    # A timed event never uses the original zone: its dateTime is already UTC.
    timed = live(
        event(
            originalStartTimeZone="Europe/Berlin",
            start={"dateTime": "2026-11-05T00:00:00.0000000", "timeZone": "UTC"},
        )
    )
    assert timed.start_time == datetime(2026, 11, 5, tzinfo=UTC)
