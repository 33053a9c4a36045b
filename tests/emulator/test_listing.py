"""events.list full listings (PROTOCOLS §1.2): paging, windows, masters vs instances,
showDeleted, ordering, filters, and the 400s for misuse."""

from __future__ import annotations

import pytest

from showup.emulator import World
from tests.emulator.conftest import ALICE, Session, list_all, timed

EVENTS = "/calendar/v3/calendars/primary/events"


def seed_singles(world: World, n: int) -> list[str]:
    return [
        world.create_event(
            ALICE,
            timed(
                f"2026-11-{3 + i:02d}T10:00:00", f"2026-11-{3 + i:02d}T11:00:00", summary=f"e{i}"
            ),
        )["id"]
        for i in range(n)
    ]


async def test_pages_include_empty_and_short_ones_and_end_with_a_sync_token(
    world: World, alice: Session
) -> None:
    ids = seed_singles(world, 10)
    items, token, sizes = await list_all(alice.http, maxResults=3)
    assert [i["id"] for i in items] == ids  # by start time, nothing lost or repeated
    assert sizes == [3, 0, 1, 3, 0, 1, 2]  # full, empty, short, ... deterministic
    assert token.startswith("C")


async def test_quirky_pages_can_be_switched_off(world: World, alice: Session) -> None:
    world.settings.quirky_pages = False
    seed_singles(world, 7)
    _, _, sizes = await list_all(alice.http, maxResults=3)
    assert sizes == [3, 3, 1]


async def test_snapshot_is_stable_while_paging(world: World, alice: Session) -> None:
    ids = seed_singles(world, 4)
    first = (await alice.http.get(EVENTS, params={"maxResults": 2})).json()
    world.cancel_event(ALICE, ids[0])
    world.create_event(ALICE, timed("2026-11-01T08:00:00", "2026-11-01T09:00:00"))
    rest, _, _ = await list_all(alice.http, maxResults=2, pageToken=first["nextPageToken"])
    assert [i["id"] for i in first["items"] + rest] == ids


async def test_max_results_defaults_to_250_and_caps_at_2500(world: World, alice: Session) -> None:
    seed_singles(world, 3)
    body = (await alice.http.get(EVENTS, params={"maxResults": 99999})).json()
    assert len(body["items"]) == 3 and "nextSyncToken" in body


async def test_window_bounds_are_exclusive_on_end_and_start(world: World, alice: Session) -> None:
    # 10:00-11:00 Berlin = 09:00-10:00Z
    world.create_event(ALICE, timed("2026-11-03T10:00:00", "2026-11-03T11:00:00", summary="x"))

    async def count(**params: str) -> int:
        items, _, _ = await list_all(alice.http, **params)
        return len(items)

    assert await count(timeMin="2026-11-03T10:00:00Z") == 0  # end == timeMin: out
    assert await count(timeMin="2026-11-03T09:59:59Z") == 1
    assert await count(timeMax="2026-11-03T09:00:00Z") == 0  # start == timeMax: out
    assert await count(timeMax="2026-11-03T09:00:00.900Z") == 0  # milliseconds ignored
    assert await count(timeMax="2026-11-03T09:00:01Z") == 1


async def test_series_masters_with_exceptions_or_expanded_instances(
    world: World, alice: Session
) -> None:
    series = world.create_event(
        ALICE,
        timed(
            "2026-11-03T09:00:00",
            "2026-11-03T09:15:00",
            summary="standup",
            recurrence=["RRULE:FREQ=DAILY;COUNT=4"],
        ),
    )
    sid = series["id"]
    world.update_event(ALICE, f"{sid}_20261104T080000Z", {"summary": "special"})
    world.cancel_event(ALICE, f"{sid}_20261105T080000Z")

    masters, _, _ = await list_all(alice.http)
    by_id = {i["id"]: i for i in masters}
    assert by_id[sid]["recurrence"] == ["RRULE:FREQ=DAILY;COUNT=4"]
    assert by_id[f"{sid}_20261104T080000Z"]["summary"] == "special"
    # §1.2: cancelled instances come back even without showDeleted when singleEvents=false.
    assert by_id[f"{sid}_20261105T080000Z"] == {
        "kind": "calendar#event",
        "etag": by_id[f"{sid}_20261105T080000Z"]["etag"],
        "id": f"{sid}_20261105T080000Z",
        "status": "cancelled",
        "recurringEventId": sid,
        "originalStartTime": {"dateTime": "2026-11-05T09:00:00+01:00", "timeZone": "Europe/Berlin"},
    }
    assert len(masters) == 3

    singles, _, _ = await list_all(alice.http, singleEvents="true", orderBy="startTime")
    assert [i["id"] for i in singles] == [
        f"{sid}_20261103T080000Z",
        f"{sid}_20261104T080000Z",
        f"{sid}_20261106T080000Z",
    ]
    assert all(i["recurringEventId"] == sid and "recurrence" not in i for i in singles)
    assert singles[1]["summary"] == "special"
    assert singles[0]["iCalUID"] == series["iCalUID"]

    deleted, _, _ = await list_all(alice.http, singleEvents="true", showDeleted="true")
    assert [i["status"] for i in deleted].count("cancelled") == 1


async def test_cancelled_events_only_with_show_deleted(world: World, alice: Session) -> None:
    ids = seed_singles(world, 2)
    world.delete_event(ALICE, ids[0])
    live, _, _ = await list_all(alice.http)
    assert [i["id"] for i in live] == [ids[1]]
    everything, _, _ = await list_all(alice.http, showDeleted="true")
    assert everything[0] == {
        "kind": "calendar#event",
        "etag": everything[0]["etag"],
        "id": ids[0],
        "status": "cancelled",
    }


async def test_filters_ical_uid_q_updated_min_and_event_types(world: World, alice: Session) -> None:
    a = world.create_event(
        ALICE, timed("2026-11-03T10:00:00", "2026-11-03T11:00:00", summary="Board review")
    )
    world.create_event(
        ALICE,
        timed(
            "2026-11-04T10:00:00",
            "2026-11-04T11:00:00",
            summary="Heads down",
            eventType="focusTime",
        ),
    )
    by_uid, _, _ = await list_all(alice.http, iCalUID=a["iCalUID"])
    assert [i["id"] for i in by_uid] == [a["id"]]
    by_q, _, _ = await list_all(alice.http, q="board")
    assert [i["id"] for i in by_q] == [a["id"]]
    focus, _, _ = await list_all(alice.http, eventTypes="focusTime")
    assert [i["summary"] for i in focus] == ["Heads down"]
    recent, _, _ = await list_all(alice.http, updatedMin="2030-01-01T00:00:00Z")
    assert recent == []


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"syncToken": "x", "timeMin": "2026-11-01T00:00:00Z"}, "syncTokenWithRequestRestrictions"),
        ({"syncToken": "x", "timeMax": "2026-11-01T00:00:00Z"}, "syncTokenWithRequestRestrictions"),
        ({"syncToken": "x", "iCalUID": "u"}, "syncTokenWithRequestRestrictions"),
        ({"syncToken": "x", "orderBy": "updated"}, "syncTokenWithRequestRestrictions"),
        ({"syncToken": "x", "q": "a"}, "syncTokenWithRequestRestrictions"),
        (
            {"syncToken": "x", "updatedMin": "2026-11-01T00:00:00Z"},
            "syncTokenWithRequestRestrictions",
        ),
        ({"syncToken": "x", "showDeleted": "false"}, "syncTokenWithRequestRestrictions"),
        ({"orderBy": "startTime"}, "badRequest"),
        ({"timeMin": "2026-11-02T00:00:00Z", "timeMax": "2026-11-01T00:00:00Z"}, "timeRangeEmpty"),
        ({"timeMin": "2026-11-02T00:00:00"}, "badRequest"),
        ({"pageToken": "nonsense"}, "invalid"),
    ],
)
async def test_misuse_is_a_400_in_googles_shape(
    alice: Session, params: dict[str, str], reason: str
) -> None:
    r = await alice.http.get(EVENTS, params=params)
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["code"] == 400 and error["errors"][0]["reason"] == reason


async def test_other_users_calendars_are_not_found(alice: Session) -> None:
    r = await alice.http.get("/calendar/v3/calendars/bob@example.com/events")
    assert r.status_code == 404
    assert r.json()["error"]["errors"][0]["reason"] == "notFound"


async def test_calendar_list_and_calendar_get(world: World, alice: Session) -> None:
    extra = world.add_calendar(ALICE, "Side project")
    body = (await alice.http.get("/calendar/v3/users/me/calendarList")).json()
    assert [(c["id"], c.get("primary", False)) for c in body["items"]] == [
        (ALICE, True),
        (extra, False),
    ]
    assert "nextSyncToken" in body
    entry = (await alice.http.get("/calendar/v3/users/me/calendarList/primary")).json()
    assert entry["id"] == ALICE and entry["timeZone"] == "Europe/Berlin"
    cal = (await alice.http.get(f"/calendar/v3/calendars/{extra}")).json()
    assert cal["summary"] == "Side project"
    r = await alice.http.get(
        "/calendar/v3/users/me/calendarList", params={"syncToken": "L1", "minAccessRole": "owner"}
    )
    assert r.status_code == 400


async def test_event_get_and_instances(world: World, alice: Session) -> None:
    series = world.create_event(
        ALICE,
        timed(
            "2026-11-03T09:00:00", "2026-11-03T09:15:00", recurrence=["RRULE:FREQ=WEEKLY;COUNT=3"]
        ),
    )
    got = (await alice.http.get(f"{EVENTS}/{series['id']}")).json()
    assert got["id"] == series["id"]
    inst = (await alice.http.get(f"{EVENTS}/{series['id']}_20261110T080000Z")).json()
    assert inst["recurringEventId"] == series["id"]
    listed = (await alice.http.get(f"{EVENTS}/{series['id']}/instances")).json()
    assert len(listed["items"]) == 3
    missing = await alice.http.get(f"{EVENTS}/{series['id']}_20261111T080000Z")
    assert missing.status_code == 404


async def test_crafted_tokens_are_client_errors(world: World, alice: Session) -> None:
    import base64

    def token(prefix: str, *parts: str) -> str:
        return prefix + base64.urlsafe_b64encode("\x1f".join(parts).encode()).decode()

    r = await alice.http.get(EVENTS, params={"syncToken": token("C", ALICE, "0", "x", "y")})
    assert r.status_code == 410
    r = await alice.http.get(EVENTS, params={"pageToken": token("P", "1", "a", "b")})
    assert r.status_code == 400


async def test_calendar_id_may_be_the_email_url_encoded(world: World, alice: Session) -> None:
    seed_singles(world, 1)
    r = await alice.http.get("/calendar/v3/calendars/alice%40example.com/events")
    assert r.status_code == 200 and len(r.json()["items"]) == 1


async def test_instances_moved_across_the_window_edges(world: World, alice: Session) -> None:
    from datetime import UTC, datetime

    series = world.create_event(
        ALICE,
        timed("2026-11-03T09:00:00", "2026-11-03T09:30:00", recurrence=["RRULE:FREQ=WEEKLY"]),
    )
    sid = series["id"]
    # From after the window into it, and from inside it to after it.
    world.move_event(ALICE, f"{sid}_20261208T080000Z", datetime(2026, 11, 5, 8, tzinfo=UTC))
    world.move_event(ALICE, f"{sid}_20261110T080000Z", datetime(2026, 12, 20, 8, tzinfo=UTC))
    window = {"timeMin": "2026-11-01T00:00:00Z", "timeMax": "2026-11-20T00:00:00Z"}
    items, _, _ = await list_all(alice.http, singleEvents="true", orderBy="startTime", **window)
    assert [i["id"].split("_")[1] for i in items] == [
        "20261103T080000Z",
        "20261208T080000Z",  # now on 5 Nov
        "20261117T080000Z",
    ]
    masters, _, _ = await list_all(alice.http, **window)
    assert sorted(i["id"] for i in masters) == sorted([sid, f"{sid}_20261208T080000Z"])
