"""calendarView/delta (PROTOCOLS §2.2, §5): whole-URL next and delta links, page sizes,
empty pages, replays, @removed for deletions and out-of-range changes, 410."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from showup.clock import FakeClock
from showup.emulator import World
from showup.emulator.graph import graph_calendar_id, graph_event_id
from tests.emulator.conftest import ALICE, BOB, timed
from tests.emulator.test_graph_support import (
    DELTA,
    GRAPH,
    NOVEMBER,
    by_id,
    delta_round,
    graph_sign_in,
)


@pytest.fixture
def plain(world: World) -> World:
    """No quirky pages and no replays: exact page sizes."""
    world.settings.quirky_pages = False
    world.settings.graph_replays = False
    return world


def day(n: int, hour: int = 10) -> dict[str, object]:
    return timed(f"2026-11-{n:02d}T{hour:02d}:00:00", f"2026-11-{n:02d}T{hour + 1:02d}:00:00")


async def test_first_round_pages_to_a_delta_link(plain: World, http: httpx.AsyncClient) -> None:
    await graph_sign_in(plain, http)
    singles = [plain.create_event(ALICE, {"summary": f"s{n}", **day(n)})["id"] for n in (3, 4, 5)]
    plain.create_event(
        ALICE, {"summary": "december", **timed("2026-12-03T10:00:00", "2026-12-03T11:00:00")}
    )
    series = plain.create_event(
        ALICE, {"summary": "daily", **day(10, 8), "recurrence": ["RRULE:FREQ=DAILY;COUNT=3"]}
    )["id"]

    r = await http.get(DELTA, params=NOVEMBER, headers={"Prefer": "odata.maxpagesize=2"})
    assert r.headers["preference-applied"] == "odata.track-changes, odata.maxpagesize=2"
    items, link, sizes = await delta_round(http, params=NOVEMBER, prefer="odata.maxpagesize=2")
    assert sizes == [2, 2, 2, 1]
    assert link.startswith(f"http://emu{DELTA}?$deltatoken=")
    types = [i["type"] for i in items]
    assert types == ["singleInstance"] * 3 + ["seriesMaster"] + ["occurrence"] * 3
    assert [i["id"] for i in items[:3]] == [graph_event_id(plain, ALICE, s) for s in singles]
    master, occurrences = items[3], items[4:]
    assert master["id"] == graph_event_id(plain, ALICE, series)
    assert master["recurrence"]["range"]["numberOfOccurrences"] == 3
    # Real calendarView/delta sends occurrences sparse; the rest is on the master.
    assert set(occurrences[0]) == {
        "@odata.type",
        "@odata.etag",
        "id",
        "seriesMasterId",
        "type",
        "start",
        "end",
    }
    assert {o["seriesMasterId"] for o in occurrences} == {master["id"]}
    assert occurrences[0]["start"] == {"dateTime": "2026-11-10T07:00:00.0000000", "timeZone": "UTC"}
    assert len({o["id"] for o in occurrences}) == 3

    # Nothing changed: an empty page with a deltaLink.
    again, link2, sizes2 = await delta_round(http, link)
    assert again == [] and sizes2 == [0] and link2.startswith("http://emu")


async def test_default_page_size_quirky_pages_and_replays(
    world: World, http: httpx.AsyncClient
) -> None:
    await graph_sign_in(world, http)
    ids = {world.create_event(ALICE, {"summary": f"e{n}", **day(n)})["id"] for n in range(1, 26)}
    items, _, sizes = await delta_round(http, params=NOVEMBER)
    assert sizes[0] == world.settings.graph_page_size == 10
    assert 0 in sizes[:-1]  # empty pages that still carry a nextLink (§2.2)
    seen = [i["id"] for i in items]
    assert len(seen) > len(set(seen))  # replays within a round
    assert set(seen) == {graph_event_id(world, ALICE, i) for i in ids}


async def test_incremental_round_reports_changes_and_removals(
    plain: World, http: httpx.AsyncClient
) -> None:
    await graph_sign_in(plain, http)
    keep = plain.create_event(ALICE, {"summary": "keep", **day(3)})["id"]
    edit = plain.create_event(ALICE, {"summary": "edit", **day(4)})["id"]
    gone = plain.create_event(ALICE, {"summary": "gone", **day(5)})["id"]
    away = plain.create_event(ALICE, {"summary": "away", **day(6)})["id"]
    _, link, _ = await delta_round(http, params=NOVEMBER)

    plain.update_event(ALICE, edit, {"summary": "edited"})
    plain.cancel_event(ALICE, gone)
    plain.move_event(ALICE, away, datetime(2027, 1, 5, 9, tzinfo=UTC))
    outside = plain.create_event(
        ALICE, {"summary": "later", **timed("2027-02-01T10:00:00", "2027-02-01T11:00:00")}
    )["id"]
    new = plain.create_event(ALICE, {"summary": "new", **day(20)})["id"]

    items, link2, _ = await delta_round(http, link)
    got = by_id(items)
    gid = {
        k: graph_event_id(plain, ALICE, v)
        for k, v in {
            "keep": keep,
            "edit": edit,
            "gone": gone,
            "away": away,
            "outside": outside,
            "new": new,
        }.items()
    }
    assert gid["keep"] not in got
    assert got[gid["edit"]]["subject"] == "edited"
    assert got[gid["new"]]["subject"] == "new"
    removed = {"@odata.type": "#microsoft.graph.event", "@removed": {"reason": "deleted"}}
    for name in ("gone", "away", "outside"):  # deleted, moved out, created outside the range
        assert got[gid[name]] == {**removed, "id": gid[name]}
    # Delta tokens are stateless: following the old link again replays the same changes.
    replay, _, _ = await delta_round(http, link)
    assert by_id(replay) == got
    assert (await delta_round(http, link2))[0] == []


async def test_series_changes(plain: World, http: httpx.AsyncClient) -> None:
    await graph_sign_in(plain, http)
    series = plain.create_event(
        ALICE, {"summary": "daily", **day(10, 8), "recurrence": ["RRULE:FREQ=DAILY;COUNT=4"]}
    )["id"]
    first, link, _ = await delta_round(http, params=NOVEMBER)
    occurrence_ids = [i["id"] for i in first if i["type"] == "occurrence"]
    assert len(occurrence_ids) == 4

    second = f"{series}_20261111T070000Z"
    third = f"{series}_20261112T070000Z"
    plain.cancel_event(ALICE, second)
    plain.update_event(ALICE, third, {"summary": "special"})
    items, link, _ = await delta_round(http, link)
    got = by_id(items)
    assert got[graph_event_id(plain, ALICE, second)]["@removed"] == {"reason": "deleted"}
    exception = got[graph_event_id(plain, ALICE, third)]
    assert exception["type"] == "exception" and exception["subject"] == "special"
    assert exception["seriesMasterId"] == graph_event_id(plain, ALICE, series)
    assert exception["originalStart"] == "2026-11-12T07:00:00Z"

    # Re-timing the whole series re-keys its occurrences: the old ids are removed.
    plain.move_event(ALICE, series, datetime(2026, 11, 10, 9, tzinfo=UTC))
    items, _, _ = await delta_round(http, link)
    removed = {i["id"] for i in items if "@removed" in i}
    assert set(occurrence_ids) <= removed
    live = [i for i in items if "@removed" not in i]
    assert [i["type"] for i in live] == ["seriesMaster"] + ["occurrence"] * 4
    assert live[1]["start"]["dateTime"] == "2026-11-10T09:00:00.0000000"


async def test_cancelled_meeting_stays_on_attendee_calendars(
    plain: World, http: httpx.AsyncClient
) -> None:
    meeting = plain.create_event(
        ALICE, {"summary": "Sync", **day(5), "attendees": [{"email": BOB}]}
    )["id"]
    alice = await graph_sign_in(plain, http, ALICE)
    _, alice_link, _ = await delta_round(http, params=NOVEMBER)
    await graph_sign_in(plain, http, BOB)
    (bob_item,), bob_link, _ = await delta_round(http, params=NOVEMBER)
    assert bob_item["responseStatus"]["response"] == "none"
    assert bob_item["id"] != graph_event_id(plain, ALICE, meeting)  # ids are per mailbox

    plain.cancel_event(ALICE, meeting)
    (bob_item,), _, _ = await delta_round(http, bob_link)
    assert bob_item["isCancelled"] is True and bob_item["subject"] == "Canceled: Sync"
    plain.settings.graph_attendee_cancellations = False
    (bob_item,), _, _ = await delta_round(http, bob_link)
    assert bob_item["@removed"] == {"reason": "deleted"}
    http.headers["Authorization"] = f"Bearer {alice.access_token}"
    (alice_item,), _, _ = await delta_round(http, alice_link)
    assert alice_item["@removed"] == {"reason": "deleted"}


async def test_changes_while_paging_come_next_round(plain: World, http: httpx.AsyncClient) -> None:
    await graph_sign_in(plain, http)
    for n in range(1, 5):
        plain.create_event(ALICE, {"summary": f"e{n}", **day(n)})
    r = await http.get(DELTA, params=NOVEMBER, headers={"Prefer": "odata.maxpagesize=2"})
    late = plain.create_event(ALICE, {"summary": "late", **day(1, 7)})["id"]
    rest, link, _ = await delta_round(http, r.json()["@odata.nextLink"])
    assert len(r.json()["value"]) + len(rest) == 4  # the snapshot does not shift
    items, _, _ = await delta_round(http, link)
    assert [i["id"] for i in items] == [graph_event_id(plain, ALICE, late)]


async def test_sync_state_not_found_and_bad_requests(
    plain: World, http: httpx.AsyncClient, clock: FakeClock
) -> None:
    await graph_sign_in(plain, http)
    for n in range(1, 4):
        plain.create_event(ALICE, {"summary": f"e{n}", **day(n)})
    first = await http.get(DELTA, params=NOVEMBER, headers={"Prefer": "odata.maxpagesize=1"})
    next_link = first.json()["@odata.nextLink"]
    _, link, _ = await delta_round(http, params=NOVEMBER)

    assert (await http.get(DELTA)).status_code == 400  # the range is required
    r = await http.get(link + "&startDateTime=2026-11-01T00:00:00Z")
    assert r.status_code == 400  # the link already encodes it
    for bad in (f"{DELTA}?$deltatoken=garbage", f"{DELTA}?$skiptoken=garbage"):
        r = await http.get(bad)
        assert r.status_code == 410 and r.json()["error"]["code"] == "SyncStateNotFound"

    plain.expire_sync_tokens()
    for stale in (link, next_link):
        r = await http.get(stale)
        assert r.status_code == 410, r.text
        assert r.json()["error"]["code"] == "SyncStateNotFound"
        assert r.json()["error"]["innerError"]["request-id"]

    _, link, _ = await delta_round(http, params=NOVEMBER)
    plain.settings.sync_token_ttl = timedelta(hours=1)
    clock.advance(timedelta(hours=2))
    assert (await http.get(link)).status_code == 401  # the access token expired too
    await graph_sign_in(plain, http)
    assert (await http.get(link)).status_code == 410


async def test_time_zone_preference_and_secondary_calendars(
    plain: World, http: httpx.AsyncClient
) -> None:
    await graph_sign_in(plain, http)
    side = plain.add_calendar(ALICE, "Side")
    plain.create_event(ALICE, {"summary": "side", **day(3)}, calendar_id=side)
    plain.create_event(ALICE, {"summary": "main", **day(4)})
    url = f"{GRAPH}/me/calendars/{graph_calendar_id(plain, ALICE, side)}/calendarView/delta"
    items, link, _ = await delta_round(
        http, url, params=NOVEMBER, prefer='outlook.timezone="W. Europe Standard Time"'
    )
    assert [i["subject"] for i in items] == ["side"]
    assert items[0]["start"] == {
        "dateTime": "2026-11-03T10:00:00.0000000",
        "timeZone": "W. Europe Standard Time",
    }
    assert link.startswith(f"http://emu{url}?$deltatoken=")
    r = await http.get(DELTA, params=NOVEMBER, headers={"Prefer": 'outlook.timezone="Mars/Base"'})
    assert r.status_code == 400
    lower = await http.get(
        f"{GRAPH}/me/calendarview/delta",
        params={"startdatetime": "2026-11-01T00:00:00+01:00", "enddatetime": "2026-12-01"},
    )
    assert "main" in [i["subject"] for i in lower.json()["value"]]
