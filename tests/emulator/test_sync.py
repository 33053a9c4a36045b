"""Incremental sync (PROTOCOLS §1.2 "Sync", §1.3 "status", §5): changes since a token,
once each in latest state, cancelled stubs, moved and cancelled instances, and 410."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from showup.clock import FakeClock
from showup.emulator import World
from tests.emulator.conftest import ALICE, BOB, Session, list_all, sign_in, timed

EVENTS = "/calendar/v3/calendars/primary/events"


def standup(world: World) -> str:
    return str(
        world.create_event(
            ALICE,
            timed(
                "2026-11-03T09:00:00",
                "2026-11-03T09:15:00",
                summary="standup",
                recurrence=["RRULE:FREQ=DAILY;COUNT=5"],
            ),
        )["id"]
    )


async def test_no_changes_returns_the_same_token(world: World, alice: Session) -> None:
    standup(world)
    _, token, _ = await list_all(alice.http, singleEvents="true")
    items, again, _ = await list_all(alice.http, singleEvents="true", syncToken=token)
    assert items == [] and again == token


async def test_changes_come_once_in_latest_state(world: World, alice: Session) -> None:
    ev = world.create_event(ALICE, timed("2026-11-04T10:00:00", "2026-11-04T11:00:00", summary="a"))
    gone = world.create_event(ALICE, timed("2026-11-05T10:00:00", "2026-11-05T11:00:00"))
    _, token, _ = await list_all(alice.http)

    world.update_event(ALICE, ev["id"], {"summary": "b"})
    world.update_event(ALICE, ev["id"], {"summary": "c"})
    world.delete_event(ALICE, gone["id"])
    new = world.create_event(ALICE, timed("2031-01-01T10:00:00", "2031-01-01T11:00:00"))

    items, token2, _ = await list_all(alice.http, syncToken=token)
    by_id = {i["id"]: i for i in items}
    assert len(items) == 3
    assert by_id[ev["id"]]["summary"] == "c"
    assert by_id[gone["id"]] == {
        "kind": "calendar#event",
        "etag": by_id[gone["id"]]["etag"],
        "id": gone["id"],
        "status": "cancelled",
    }
    assert new["id"] in by_id  # outside any earlier window: still reported
    assert token2 != token
    assert (await list_all(alice.http, syncToken=token2))[0] == []


async def test_cancelled_and_moved_instances(world: World, alice: Session) -> None:
    sid = standup(world)
    _, token, _ = await list_all(alice.http, singleEvents="true")

    world.cancel_event(ALICE, f"{sid}_20261104T080000Z")
    world.move_event(ALICE, f"{sid}_20261105T080000Z", datetime(2026, 11, 5, 14, 0, tzinfo=UTC))

    items, token2, _ = await list_all(alice.http, singleEvents="true", syncToken=token)
    by_id = {i["id"]: i for i in items}
    assert set(by_id) == {f"{sid}_20261104T080000Z", f"{sid}_20261105T080000Z"}
    cancelled = by_id[f"{sid}_20261104T080000Z"]
    assert cancelled["status"] == "cancelled" and cancelled["recurringEventId"] == sid
    assert cancelled["originalStartTime"]["dateTime"] == "2026-11-04T09:00:00+01:00"
    assert set(cancelled) == {
        "kind",
        "etag",
        "id",
        "status",
        "recurringEventId",
        "originalStartTime",
    }
    moved = by_id[f"{sid}_20261105T080000Z"]
    assert moved["start"] == {"dateTime": "2026-11-05T15:00:00+01:00", "timeZone": "Europe/Berlin"}
    assert moved["end"]["dateTime"] == "2026-11-05T15:15:00+01:00"
    assert moved["originalStartTime"]["dateTime"] == "2026-11-05T09:00:00+01:00"

    # The same changes seen by a singleEvents=false client: exceptions, not instances.
    _, _, _ = await list_all(alice.http)
    masters, _, _ = await list_all(alice.http, syncToken=token)
    assert {i["id"] for i in masters} == set(by_id)

    world.cancel_event(ALICE, sid)  # the whole series
    items, _, _ = await list_all(alice.http, singleEvents="true", syncToken=token2)
    assert len(items) == 5 and all(i["status"] == "cancelled" for i in items)
    masters, _, _ = await list_all(alice.http, syncToken=token2)
    assert [(i["id"], i["status"]) for i in masters] == [(sid, "cancelled")]


async def test_series_edit_reports_every_instance(world: World, alice: Session) -> None:
    sid = standup(world)
    _, token, _ = await list_all(alice.http, singleEvents="true")
    world.update_event(ALICE, sid, {"summary": "daily sync"})
    items, _, _ = await list_all(alice.http, singleEvents="true", syncToken=token)
    assert len(items) == 5 and {i["summary"] for i in items} == {"daily sync"}


async def test_moving_a_whole_series_retires_old_instance_ids(world: World, alice: Session) -> None:
    sid = standup(world)
    _, token, _ = await list_all(alice.http, singleEvents="true")
    world.move_event(ALICE, sid, datetime(2026, 11, 3, 12, 0, tzinfo=UTC))
    items, _, _ = await list_all(alice.http, singleEvents="true", syncToken=token)
    live = sorted(i["id"] for i in items if i["status"] != "cancelled")
    dead = sorted(i["id"] for i in items if i["status"] == "cancelled")
    assert live == [f"{sid}_202611{d:02d}T120000Z" for d in range(3, 8)]
    assert dead == [f"{sid}_202611{d:02d}T080000Z" for d in range(3, 8)]


async def test_uninvited_attendee_sees_a_cancellation(world: World, alice: Session) -> None:
    ev = world.create_event(
        ALICE,
        timed("2026-11-04T10:00:00", "2026-11-04T11:00:00", attendees=[{"email": BOB}]),
    )
    bob = await sign_in(world, alice.http, BOB)
    _, token, _ = await list_all(bob.http)
    world.update_event(ALICE, ev["id"], {"attendees": []})
    items, _, _ = await list_all(bob.http, syncToken=token)
    assert [(i["id"], i["status"]) for i in items] == [(ev["id"], "cancelled")]


async def test_expired_tokens_answer_410_full_sync_required(
    world: World, alice: Session, clock: FakeClock
) -> None:
    standup(world)
    _, token, _ = await list_all(alice.http)
    world.expire_sync_tokens(ALICE)
    r = await alice.http.get(EVENTS, params={"syncToken": token})
    assert r.status_code == 410
    error = r.json()["error"]["errors"][0]
    assert error["reason"] == "fullSyncRequired" and error["location"] == "syncToken"

    # A fresh full sync gives a working token again.
    _, fresh, _ = await list_all(alice.http)
    assert (await alice.http.get(EVENTS, params={"syncToken": fresh})).status_code == 200

    # Tokens can also age out by the clock when the world is told to.
    world.settings.sync_token_ttl = timedelta(days=7)
    _, aging, _ = await list_all(alice.http)
    clock.advance(timedelta(days=7))
    await sign_in(world, alice.http)  # the access token aged out too
    assert (await alice.http.get(EVENTS, params={"syncToken": aging})).status_code == 410


async def test_garbage_and_foreign_tokens_answer_410(world: World, alice: Session) -> None:
    world.add_calendar(ALICE, "Other", calendar_id="other@group.calendar.google.com")
    _, token, _ = await list_all(alice.http, calendar="other@group.calendar.google.com")
    assert (await alice.http.get(EVENTS, params={"syncToken": token})).status_code == 410
    assert (await alice.http.get(EVENTS, params={"syncToken": "Cgarbage"})).status_code == 410


async def test_changes_during_paging_arrive_in_the_next_sync(world: World, alice: Session) -> None:
    ids = [
        world.create_event(ALICE, timed(f"2026-11-{d:02d}T10:00:00", f"2026-11-{d:02d}T11:00:00"))[
            "id"
        ]
        for d in range(3, 9)
    ]
    first = (await alice.http.get(EVENTS, params={"maxResults": 2})).json()
    world.update_event(ALICE, ids[5], {"summary": "edited mid-listing"})
    _, token, _ = await list_all(alice.http, maxResults=2, pageToken=first["nextPageToken"])
    items, _, _ = await list_all(alice.http, syncToken=token)
    assert [(i["id"], i["summary"]) for i in items] == [(ids[5], "edited mid-listing")]


async def test_incremental_results_page_too(world: World, alice: Session) -> None:
    _, token, _ = await list_all(alice.http)
    for d in range(3, 10):
        world.create_event(ALICE, timed(f"2026-11-{d:02d}T10:00:00", f"2026-11-{d:02d}T11:00:00"))
    items, _, sizes = await list_all(alice.http, syncToken=token, maxResults=3)
    assert len(items) == 7 and 0 in sizes


async def test_tokens_from_before_a_reset_are_gone(world: World, alice: Session) -> None:
    standup(world)
    first = (await alice.http.get(EVENTS, params={"maxResults": 1, "singleEvents": "true"})).json()
    _, token, _ = await list_all(alice.http)
    world.reset()
    world.add_user(ALICE, name="Alice", time_zone="Europe/Berlin")
    await sign_in(world, alice.http)
    assert (await alice.http.get(EVENTS, params={"syncToken": token})).status_code == 410
    page = {"maxResults": 1, "singleEvents": "true", "pageToken": first["nextPageToken"]}
    r = await alice.http.get(EVENTS, params=page)
    assert r.status_code == 400
