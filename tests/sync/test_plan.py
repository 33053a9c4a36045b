"""The planner's fingerprints: what moves them, the JSON texts they share with the row, and
the upgrade from version 1 (no prefix), 2 and (for payloads kept as text) 3 fingerprints
without moving ``updated_at``."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from showup.db.types import JSONText
from showup.providers.base import Attendee, ChangePage, RawJSON, RemoteEvent, SyncWindow
from showup.sync.plan import (
    FINGERPRINT_VERSION,
    FINGERPRINT_VERSION_TEXT,
    Insert,
    Refresh,
    Stored,
    Update,
    encode,
    encode_page,
    event_values,
    fingerprint,
    fingerprint_v1,
    fingerprint_v2,
    fingerprint_v3,
    plan_page,
)

T = datetime(2026, 11, 3, 15, 0, tzinfo=UTC)
WINDOW = SyncWindow(T - timedelta(days=1), T + timedelta(days=28))


def event(**changes: Any) -> RemoteEvent:
    ev = RemoteEvent(
        platform_id="evt1",
        start_time=T,
        end_time=T + timedelta(hours=1),
        raw={
            "id": "evt1",
            "etag": '"1"',
            "updated": "2026-11-01T10:00:00.000Z",
            "summary": "Zoom call \u00e9",
            "location": "https://acme.zoom.us/j/123456789?pwd=abc",
            "sequence": 2,
            "attendees": [{"email": "a@example.com", "responseStatus": "accepted"}],
        },
        ical_uid="evt1@google.com",
        title="Zoom call \u00e9",
        organizer_email="a@example.com",
        attendees=(Attendee("a@example.com", "A", "accepted", is_organizer=True, is_self=True),),
        meeting_url="https://acme.zoom.us/j/123456789?pwd=abc",
        meeting_platform="zoom",
    )
    return dataclasses.replace(ev, **changes)


def with_raw(**changes: Any) -> RemoteEvent:
    base = event()
    return dataclasses.replace(base, raw={**base.raw, **changes})


def test_fingerprint_v1_is_what_earlier_releases_stored() -> None:
    # Computed with the fingerprint function of releases before version 2 (commit e15b9bb).
    assert fingerprint_v1(event()) == "0beb60b743912033cefebe96fbffef01"


def nested(depth: int) -> list[Any]:
    value: list[Any] = ["\u00e9"]
    for _ in range(depth):
        value = [value]
    return value


def odd_event() -> RemoteEvent:
    # What orjson cannot encode: a lone surrogate, an integer beyond 64 bits.
    return with_raw(
        description="\u00e9\ud800 \U0001f600",
        big=2**70,
        f=1.5,
        nested={"b": [1, None, True], "a": "x"},
    )


def test_fingerprint_v2_is_what_earlier_releases_stored() -> None:
    # Computed with the fingerprint function of releases before version 3 (commit 1c8f16f).
    assert fingerprint_v2(event()) == "2:345076a0e7be54a58e78e0eb7108ab5a"
    assert fingerprint_v2(odd_event()) == "2:5aa854e6b184777260a027e458380cf9"


def test_fingerprint_carries_its_version() -> None:
    fp = fingerprint(event())
    assert fp.startswith(FINGERPRINT_VERSION + ":")
    assert len(fp) <= 64  # the column's width
    assert fp == fingerprint(event())  # deterministic


@pytest.mark.parametrize(
    "changed",
    [
        event(title="Renamed"),
        event(start_time=T + timedelta(minutes=30)),
        event(end_time=T + timedelta(hours=2)),
        event(is_all_day=True),
        event(status="tentative"),
        event(organizer_email="b@example.com"),
        event(attendees=(Attendee("a@example.com", "A", "declined", True, True),)),
        event(attendees=()),
        event(meeting_url=None, meeting_platform=None),
        event(ical_uid="other"),
        event(recurring_event_id="series"),
        with_raw(description="Agenda"),
        with_raw(attendees=[{"email": "a@example.com", "responseStatus": "declined"}]),
    ],
)
def test_what_a_user_can_see_moves_the_fingerprint(changed: RemoteEvent) -> None:
    assert fingerprint(changed) != fingerprint(event())


def test_provider_bookkeeping_and_key_order_do_not() -> None:
    same = [
        with_raw(etag='"2"', updated="2026-11-02T10:00:00.000Z", sequence=3),
        dataclasses.replace(event(), raw=dict(reversed(list(event().raw.items())))),
        dataclasses.replace(event(), raw={k: v for k, v in event().raw.items() if k != "etag"}),
        with_raw(**{"@odata.etag": "W/1", "changeKey": "x", "lastModifiedDateTime": "y"}),
    ]
    for ev in same:
        assert fingerprint(ev) == fingerprint(event())


@pytest.mark.parametrize(
    "raw",
    [
        {},
        {"etag": '"1"'},
        {"etag": '"1"', "updated": "u", "sequence": 0, "@odata.etag": 'W/"x"', "changeKey": "k"},
        {"id": "x", "nested": {"b": [1, 2.5, None, True], "a": "\u00e9\ud800"}},
        {"id": "x", "sequence": 1, "etag": {"odd": ["but", "json"]}, "summary": 'q"\\'},
        {"id": "x", "summary": "Caf\u00e9 \u4f1a\u8b70 \U0001f600", "n": -(2**63), "m": 2**64 - 1},
        {"id": "x", "big": 2**64, "etag": '"\ud800"', "updated": -(2**70), "f": [0.1, -0.0, 1e300]},
        {"id": "x", "sequence": 2**80, "summary": "\u00e9"},
        {"id": "x", "deep": nested(300)},  # deeper than orjson writes
    ],
)
def test_raw_text_is_the_payload(raw: dict[str, Any]) -> None:
    enc = encode(event(raw=raw))
    assert isinstance(enc.raw, JSONText)
    decoded = json.loads(enc.raw.text)
    assert decoded == raw
    assert json.dumps(decoded, sort_keys=True) == json.dumps(raw, sort_keys=True)  # int stays int
    enc.raw.text.encode("utf-8")  # storable: no lone surrogate in the text itself


def test_raw_text_keeps_non_ascii_as_utf8_when_it_can() -> None:
    enc = encode(event())
    assert "Zoom call \u00e9" in enc.raw.text  # UTF-8 text, no \u escape
    # What orjson refuses falls back to the stdlib's ASCII-escaped text, whole.
    odd = encode(odd_event())
    assert odd.raw.text.isascii() and "\\ud800" in odd.raw.text
    assert json.loads(odd.raw.text) == odd_event().raw
    assert odd.fingerprint == fingerprint(odd_event())  # the fallback is deterministic too
    assert odd.fingerprint != fingerprint(with_raw(description="\u00e9\ud801 \U0001f600"))


def test_attendees_text_is_the_attendees() -> None:
    people = (
        Attendee("a@example.com", "A", "accepted", is_organizer=True),
        Attendee(None, None, "needs_action", is_resource=True),
    )
    enc = encode(event(attendees=people))
    assert json.loads(enc.attendees.text) == [a.as_dict() for a in people]
    assert json.loads(encode(event(attendees=())).attendees.text) == []


def test_event_values_are_the_row() -> None:
    ev = event()
    values = event_values(ev)
    assert values["fingerprint"] == fingerprint(ev)
    assert json.loads(values["raw"].text) == ev.raw
    assert values["start_time"] == ev.start_time and values["is_deleted"] is False
    assert event_values(ev, "pinned")["fingerprint"] == "pinned"


def page(*events: RemoteEvent) -> ChangePage:
    return ChangePage(upserts=list(events), deletions=[])


def test_current_fingerprint_unchanged_is_nothing() -> None:
    stored = {"evt1": Stored("id1", fingerprint(event()), False)}
    assert plan_page(page(event()), stored, WINDOW) == []
    assert plan_page(page(with_raw(etag='"9"')), stored, WINDOW) == []


def test_current_fingerprint_changed_is_an_update() -> None:
    stored = {"evt1": Stored("id1", fingerprint(event()), False)}
    [action] = plan_page(page(event(title="Renamed")), stored, WINDOW)
    assert isinstance(action, Update) and action.id == "id1"
    assert action.values["title"] == "Renamed"


def test_version_1_fingerprint_of_the_same_content_is_only_refreshed() -> None:
    # A row stored by an earlier release: nothing visible changed, so no Update (which would
    # move updated_at); the row gets the current fingerprint, and the next sync is a no-op.
    stored = {"evt1": Stored("id1", fingerprint_v1(event()), False)}
    actions = plan_page(page(with_raw(etag='"2"', updated="later")), stored, WINDOW)
    assert actions == [Refresh("id1", fingerprint(event()))]
    stored = {"evt1": Stored("id1", actions[0].fingerprint, False)}  # type: ignore[union-attr]
    assert plan_page(page(event()), stored, WINDOW) == []


def test_version_1_fingerprint_of_changed_content_is_an_update() -> None:
    stored = {"evt1": Stored("id1", fingerprint_v1(event()), False)}
    [action] = plan_page(page(with_raw(description="new agenda")), stored, WINDOW)
    assert isinstance(action, Update)
    assert action.values["fingerprint"] == fingerprint(with_raw(description="new agenda"))


@pytest.mark.parametrize("ev", [event(), odd_event()])
def test_version_2_fingerprint_of_the_same_content_is_only_refreshed(ev: RemoteEvent) -> None:
    stored = {"evt1": Stored("id1", fingerprint_v2(ev), False)}
    assert fingerprint_v2(ev) != fingerprint(ev)
    bumped = dataclasses.replace(ev, raw={**ev.raw, "etag": '"2"', "updated": "later"})
    actions = plan_page(page(bumped), stored, WINDOW)
    assert actions == [Refresh("id1", fingerprint(ev))]
    stored = {"evt1": Stored("id1", actions[0].fingerprint, False)}  # type: ignore[union-attr]
    assert plan_page(page(ev), stored, WINDOW) == []


@pytest.mark.parametrize(
    "changed",
    [
        with_raw(description="new agenda"),
        event(title="Renamed"),
        event(attendees=(Attendee("a@example.com", "A", "declined", True, True),)),
    ],
)
def test_version_2_fingerprint_of_changed_content_is_an_update(changed: RemoteEvent) -> None:
    stored = {"evt1": Stored("id1", fingerprint_v2(event()), False)}
    [action] = plan_page(page(changed), stored, WINDOW)
    assert isinstance(action, Update) and action.values["fingerprint"] == fingerprint(changed)


def test_deleted_rows_come_back_whatever_their_fingerprint() -> None:
    for fp in (fingerprint_v1(event()), fingerprint_v2(event()), fingerprint(event())):
        [action] = plan_page(page(event()), {"evt1": Stored("id1", fp, True)}, WINDOW)
        assert isinstance(action, Update) and action.values["is_deleted"] is False


def test_an_unknown_fingerprint_version_is_rewritten() -> None:
    stored = {"evt1": Stored("id1", "9:" + "0" * 32, False)}
    [action] = plan_page(page(event()), stored, WINDOW)
    assert isinstance(action, Update)


def test_new_events_outside_the_window_are_skipped() -> None:
    late = event(start_time=WINDOW.end, end_time=WINDOW.end + timedelta(hours=1))
    assert plan_page(page(late), {}, WINDOW) == []
    [action] = plan_page(page(event()), {}, WINDOW)
    assert isinstance(action, Insert) and action.values["fingerprint"] == fingerprint(event())


def test_a_page_encoded_ahead_plans_as_one_encoded_on_the_way() -> None:
    # The runner encodes a page before its transaction opens; the plan must not change.
    # The same id twice: the last one wins, in the encodings as in the plan.
    stored = {"evt1": Stored("id1", fingerprint(event()), False)}
    renamed, moved = event(title="Renamed"), event(start_time=T + timedelta(hours=1))
    new = dataclasses.replace(event(), platform_id="evt2")
    for p in (page(renamed, moved, new), page(event(), new), page(moved, renamed)):
        encoded = encode_page(p)
        assert set(encoded) == {ev.platform_id for ev in p.upserts}
        assert plan_page(p, stored, WINDOW, encoded) == plan_page(p, stored, WINDOW)
    [action] = plan_page(page(renamed, moved), stored, WINDOW, encode_page(page(renamed, moved)))
    assert isinstance(action, Update) and action.values["start_time"] == T + timedelta(hours=1)


def test_attendee_texts_are_cached_per_instance_and_bounded() -> None:
    from showup.sync import plan

    one = Attendee("a@example.com", "A", "accepted")
    twin = Attendee("a@example.com", "A", "accepted")  # equal, another instance
    other = Attendee("a@example.com", "A", "declined")
    texts = [json.loads(plan._attendee_json(a)) for a in (one, twin, other, one)]
    assert texts[0] == texts[1] == texts[3] == one.as_dict()
    assert texts[2]["response_status"] == "declined"
    for i in range(plan._ATTENDEE_JSON_MAX + 5):
        plan._attendee_json(Attendee(f"p{i}@example.com", None, "needs_action"))
    assert len(plan._ATTENDEE_JSON) <= plan._ATTENDEE_JSON_MAX


def as_text(ev: RemoteEvent) -> RemoteEvent:
    """``ev`` as Google's fast path hands it over: its payload as the provider's text."""
    assert isinstance(ev.raw, dict)
    text = json.dumps(ev.raw, ensure_ascii=False, separators=(",", ":"))
    stable = json.loads(text)
    for key in ("etag", "updated", "sequence"):
        stable.pop(key, None)
    hashed = json.dumps(stable, ensure_ascii=False, separators=(",", ":")).encode()
    return dataclasses.replace(ev, raw=RawJSON(text, hashed))


def test_text_payloads_are_version_4_stored_as_sent() -> None:
    ev = as_text(event())
    enc = encode(ev)
    assert enc.fingerprint.startswith(FINGERPRINT_VERSION_TEXT + ":")
    assert isinstance(ev.raw, RawJSON) and enc.raw == JSONText(ev.raw.text)
    assert fingerprint_v3(ev) == fingerprint(event())  # the decoded payload's version 3


def test_version_3_fingerprint_of_a_text_payload_with_the_same_content_is_only_refreshed() -> None:
    # Rows a release before version 4 stored for Google events: nothing visible changed.
    stored = {"evt1": Stored("id1", fingerprint(event()), False)}
    actions = plan_page(page(as_text(with_raw(etag='"2"'))), stored, WINDOW)
    assert actions == [Refresh("id1", fingerprint(as_text(event())))]
    stored = {"evt1": Stored("id1", actions[0].fingerprint, False)}  # type: ignore[union-attr]
    assert plan_page(page(as_text(event())), stored, WINDOW) == []
    # Changed content is an update, from either version.
    for fp in (fingerprint(event()), fingerprint(as_text(event()))):
        stored = {"evt1": Stored("id1", fp, False)}
        [action] = plan_page(page(as_text(with_raw(description="agenda"))), stored, WINDOW)
        assert isinstance(action, Update)


def test_version_4_fingerprint_against_a_decoded_payload_is_rewritten() -> None:
    # Only when the fast path could not read an item: the row is rewritten, to be safe.
    stored = {"evt1": Stored("id1", fingerprint(as_text(event())), False)}
    [action] = plan_page(page(event()), stored, WINDOW)
    assert isinstance(action, Update) and action.values["fingerprint"] == fingerprint(event())
