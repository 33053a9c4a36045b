"""Google pages read from their bytes (``events_page``): the typed fast path gives exactly
what decoding the page into dicts gives (``events_page_of``), whatever the JSON holds.

Only ``raw`` differs in form: the fast path keeps each item's own JSON text
(:class:`RawJSON`), which decodes to the item, and fingerprints it without its bookkeeping.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from showup.clock import FakeClock
from showup.emulator import World
from showup.emulator.google.listing import EventLister
from showup.providers.base import RawJSON, RemoteDeletion, RemoteEvent
from showup.providers.google_normalize import EventsPage, events_page, events_page_of
from showup.sync.plan import FINGERPRINT_VERSION_TEXT, encode, fingerprint_v3
from tests.conftest import corpus_path

NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)


def _page(items: list[Any], **extra: Any) -> dict[str, Any]:
    return {"kind": "calendar#events", "timeZone": "Europe/Berlin", "items": items, **extra}


def _raw_value(change: RemoteEvent | RemoteDeletion) -> Any:
    raw = change.raw
    return json.loads(raw.text) if isinstance(raw, RawJSON) else raw


def _same(fast: EventsPage, slow: EventsPage) -> None:
    """``fast`` (from bytes) is ``slow`` (from dicts), ``raw`` compared by value."""
    assert (fast.next_page_token, fast.next_sync_token) == (
        slow.next_page_token,
        slow.next_sync_token,
    )
    assert len(fast.upserts) == len(slow.upserts)
    assert len(fast.deletions) == len(slow.deletions)
    for a, b in zip(fast.upserts + fast.deletions, slow.upserts + slow.deletions, strict=True):  # type: ignore[operator]
        assert dataclasses.replace(a, raw={}) == dataclasses.replace(b, raw={})
        assert _raw_value(a) == _raw_value(b)


def _both(body: dict[str, Any], encoded: bytes | None = None) -> EventsPage:
    data = orjson.dumps(body) if encoded is None else encoded
    fast = events_page(data)
    _same(fast, events_page_of(json.loads(data)))
    return fast


def _seed_bodies() -> list[dict[str, Any]]:
    from bench.seed import seed_world, user_email, window_listing

    world = World(FakeClock(NOW))
    seed_world(world, users=12, events=60, seed=7, now=NOW)
    lister, query = EventLister(world), window_listing(NOW)
    return [lister.list_events(world.calendar(user_email(i)), query) for i in range(12)]


def test_emulator_pages_read_the_same_and_stay_text() -> None:
    bodies = _seed_bodies()
    links = 0
    for body in bodies:
        fast = _both(body)
        assert fast.next_sync_token and len(fast.upserts) == 60
        for ev in fast.upserts:
            assert isinstance(ev.raw, RawJSON)  # the fast path took every item
            assert encode(ev).fingerprint.startswith(FINGERPRINT_VERSION_TEXT + ":")
            links += ev.meeting_url is not None
    assert links > 400  # the seed's links were found (80 % of its events carry one)


@pytest.mark.parametrize(
    "name",
    [
        "gcsa_test_event_payloads.json",
        "meetingbar_google_parser_test_events.json",
        "nylas_test_google_events_payloads.json",
    ],
)
def test_corpus_payloads_read_the_same(name: str) -> None:
    cases = json.loads(corpus_path("provider_payloads", "google_calendar", name).read_text())
    items = [case["payload"] for case in cases["items"] if "payload" in case]
    items += [p for case in cases["items"] for p in case.get("payloads_rejected", [])]
    for i, item in enumerate(items):
        item.setdefault("id", f"corpus{i}")  # library fixtures omit what Google always sends
    _both(_page(items, nextSyncToken="s1"))


def test_indented_and_spaced_bodies_give_the_same_text_and_fingerprints() -> None:
    body = _seed_bodies()[0]
    compact = events_page(orjson.dumps(body))
    for encoded in (json.dumps(body, indent=2).encode(), json.dumps(body).encode()):
        other = _both(body, encoded)
        for a, b in zip(compact.upserts, other.upserts, strict=True):
            assert isinstance(a.raw, RawJSON) and isinstance(b.raw, RawJSON)
            assert a.raw.text == b.raw.text and "\n" not in a.raw.text
            assert encode(a).fingerprint == encode(b).fingerprint


def _meeting(**changes: Any) -> dict[str, Any]:
    item = {
        "kind": "calendar#event",
        "etag": '"3417000000000000"',
        "id": "ev1",
        "status": "confirmed",
        "created": "2026-11-01T10:00:00.000Z",
        "updated": "2026-11-20T10:00:00.000Z",
        "summary": "Design review",
        "start": {"dateTime": "2026-11-23T10:00:00+01:00", "timeZone": "Europe/Berlin"},
        "end": {"dateTime": "2026-11-23T11:00:00+01:00", "timeZone": "Europe/Berlin"},
        "hangoutLink": "https://meet.google.com/abc-defg-hij",
        "sequence": 0,
        "attendees": [{"email": "a@example.com", "responseStatus": "accepted", "self": True}],
    }
    item.update(changes)
    return item


def _event(item: dict[str, Any]) -> RemoteEvent:
    [ev] = _both(_page([item], nextSyncToken="s")).upserts
    return ev


def test_bookkeeping_alone_does_not_move_the_fingerprint() -> None:
    base = encode(_event(_meeting())).fingerprint
    bumped = _meeting(etag='"3418000000000000"', updated="2026-11-21T08:00:00.000Z", sequence=3)
    assert encode(_event(bumped)).fingerprint == base
    assert encode(_event(_meeting(summary="Design review (moved)"))).fingerprint != base
    assert encode(_event(_meeting(colorId="5"))).fingerprint != base  # raw is visible too
    # A nested member that looks like bookkeeping is content.
    props = {"private": {"etag": "mine"}}
    with_props = encode(_event(_meeting(extendedProperties=props))).fingerprint
    assert with_props != base
    assert (
        encode(
            _event(_meeting(extendedProperties={"private": {"etag": "other"}}, sequence=9))
        ).fingerprint
        != with_props
    )


def test_version_3_of_the_text_is_version_3_of_the_decoded_item() -> None:
    item = _meeting()
    ev = _event(item)
    decoded = dataclasses.replace(ev, raw=item)
    assert fingerprint_v3(ev) == encode(decoded).fingerprint
    assert fingerprint_v3(ev).startswith("3:")


def test_big_integers_and_unknown_members_are_stored_exactly() -> None:
    text = (
        b'{"items":[{"id":"e","start":{"date":"2026-11-23"},"end":{"date":"2026-11-24"},'
        b'"x-big":123456789012345678901234567890,"x-float":1.50}],"nextSyncToken":"s"}'
    )
    [ev] = events_page(text).upserts
    assert isinstance(ev.raw, RawJSON)
    assert '"x-big":123456789012345678901234567890' in ev.raw.text
    assert '"x-float":1.50' in ev.raw.text
    assert json.loads(ev.raw.text)["x-big"] == 123456789012345678901234567890


def test_items_of_other_types_take_the_general_path() -> None:
    odd = [
        _meeting(id="title-int", summary=5),
        _meeting(id="attendee-str", attendees=["someone"]),
        _meeting(id="conference-list", conferenceData=[1]),
        _meeting(id="surrogate", summary="bad \ud800 title"),
        _meeting(id="self-str", attendees=[{"email": "a@x.example", "self": "yes"}]),
    ]
    good = _meeting(id="fine")
    encoded = json.dumps(_page([*odd, good], nextSyncToken="s")).encode()  # ASCII escapes
    fast = events_page(encoded)
    _same(fast, events_page_of(json.loads(encoded)))
    kinds = {ev.platform_id: type(ev.raw) for ev in fast.upserts}
    # A lone surrogate anywhere sends the whole page the general way; else item by item.
    assert set(kinds.values()) == {dict}
    fast = _both(_page([*odd[:3], good], nextSyncToken="s"))
    kinds = {ev.platform_id: type(ev.raw) for ev in fast.upserts}
    assert kinds == {
        "title-int": dict,
        "attendee-str": dict,
        "conference-list": dict,
        "fine": RawJSON,
    }


def test_malformed_items_are_skipped_and_the_page_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    items = [
        _meeting(id=None),
        _meeting(id="no-start", start=None),
        _meeting(id="bad-zone", start={"dateTime": "2026-11-23T10:00:00", "timeZone": "Mars/X"}),
        _meeting(id="no-end", end=None),
        "not an object",
        _meeting(id="ok"),
    ]
    with caplog.at_level(logging.WARNING, logger="showup.providers.google_normalize"):
        fast = _both(_page(items, nextPageToken="p2"))
    assert [ev.platform_id for ev in fast.upserts] == ["ok"]
    assert fast.next_page_token == "p2" and fast.next_sync_token is None
    skipped = [r.getMessage() for r in caplog.records if "skipping" in r.getMessage()]
    assert len(skipped) == 2 * 5  # once per reading (fast, then the dict comparison)
    assert all("Design review" not in m for m in skipped)  # no titles in logs


def test_cancelled_stubs_and_no_end_time() -> None:
    items = [
        {"kind": "calendar#event", "etag": '"1"', "id": "gone", "status": "cancelled"},
        _meeting(id="instant", end=None, endTimeUnspecified=True),
    ]
    fast = _both(_page(items, nextSyncToken="s"))
    [gone] = fast.deletions
    assert gone.platform_id == "gone" and gone.raw == items[0]
    [instant] = fast.upserts
    assert instant.end_time == instant.start_time


@pytest.mark.parametrize(
    "body",
    [
        b"\xef\xbb\xbf" + orjson.dumps(_page([_meeting()], nextSyncToken="s")),  # BOM
        orjson.dumps(_page([_meeting()], nextSyncToken="s")).replace(b"Design", b"D\xffsign"),
        b'{"items": [], "nextSyncToken": "s", "x": NaN}',
    ],
    ids=["bom", "invalid-utf8", "nan"],
)
def test_bodies_the_fast_path_refuses_read_as_before(body: bytes) -> None:
    try:
        expected: EventsPage | type[Exception] = events_page_of(json.loads(body))
    except ValueError:
        expected = ValueError
    if expected is ValueError:
        with pytest.raises(ValueError):
            events_page(body)
    else:
        assert isinstance(expected, EventsPage)
        _same(events_page(body), expected)


@pytest.mark.parametrize("body", [b"[]", b'"page"', b"<html>", b""])
def test_what_is_not_a_json_object_is_refused(body: bytes) -> None:
    with pytest.raises(ValueError):
        events_page(body)


# Any JSON value where a member is expected: the two readings never differ.
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    st.sampled_from(
        [
            "2026-11-23T10:00:00Z",
            "2026-11-23",
            "Europe/Berlin",
            "cancelled",
            "tentative",
            "https://meet.google.com/abc-defg-hij",
            "video",
        ]
    ),
)
_json = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
_time = st.fixed_dictionaries(
    {},
    optional={"dateTime": _json, "date": _json, "timeZone": _json},
)
_item = st.fixed_dictionaries(
    {"id": st.one_of(st.just("e1"), _json)},
    optional={
        "status": _json,
        "start": st.one_of(_time, _json),
        "end": st.one_of(_time, _json),
        "endTimeUnspecified": _json,
        "summary": _json,
        "location": _json,
        "description": _json,
        "hangoutLink": _json,
        "conferenceData": st.one_of(
            st.fixed_dictionaries(
                {
                    "entryPoints": st.lists(
                        st.fixed_dictionaries({}, optional={"entryPointType": _json, "uri": _json})
                    )
                }
            ),
            _json,
        ),
        "attendees": st.one_of(
            st.lists(
                st.fixed_dictionaries(
                    {},
                    optional={
                        k: _json
                        for k in (
                            "email",
                            "displayName",
                            "responseStatus",
                            "organizer",
                            "self",
                            "resource",
                        )
                    },
                ),
                max_size=3,
            ),
            _json,
        ),
        "organizer": _json,
        "iCalUID": _json,
        "recurringEventId": _json,
        "etag": _json,
        "updated": _json,
        "sequence": _json,
        "extra": _json,
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=st.lists(_item, max_size=3), token=_json)
def test_any_items_read_the_same_both_ways(items: list[dict[str, Any]], token: Any) -> None:
    body = _page(items, nextSyncToken=token)
    try:
        encoded = json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogatepass")
    except ValueError:
        return
    try:
        expected = events_page_of(json.loads(encoded))
    except ValueError:
        with pytest.raises(ValueError):
            events_page(encoded)
        return
    _same(events_page(encoded), expected)
