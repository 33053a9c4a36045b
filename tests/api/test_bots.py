"""The bot API: Recall-compatible scheduling, the bots resource, tenant settings.

Runs on Google and Outlook calendars (the ``platform`` fixture, through ``cal`` and
``connect``), on SQLite and PostgreSQL. Bad input gets a 4xx with a machine code and writes
nothing; concurrent duplicates make one bot. Events are named to the world by their
``platform_id``: the emulator takes Graph ids as well as its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from showup.db.bot_models import Bot, BotEvent
from showup.db.webhook_models import WebhookMessage
from tests.bots.support import (
    MEET,
    Receiver,
    all_bots,
    connect,
    event_of,
    get_bot,
    meeting,
    receiver,
    runtime,
    schedule,
    secret,
    settings,
)
from tests.support.helpers import listening

__all__ = ["receiver", "runtime", "secret", "settings"]  # fixtures for this module

ALICE = "alice@example.com"
BOB = "bob@example.com"
ZOOM = "https://acme.zoom.us/j/123456789?pwd=abc"


@pytest.fixture
async def cal(api: httpx.AsyncClient, world: Any, worker: Any, platform: str) -> str:
    world.add_user(ALICE, name="Alice")
    world.create_event(ALICE, meeting("Review", "2026-11-02T15:00:00Z", "2026-11-02T16:00:00Z"))
    world.create_event(
        ALICE, meeting("No link", "2026-11-02T12:00:00Z", "2026-11-02T13:00:00Z", link=None)
    )
    world.create_event(ALICE, meeting("Earlier", "2026-11-02T08:00:00Z", "2026-11-02T08:30:00Z"))
    [cid] = await connect(api, world, ALICE, platform=platform)
    await worker.drain()
    return cid


async def counts(runtime: Any) -> tuple[int, int, int]:
    async with runtime.sessions() as session:
        bots = await session.scalar(select(func.count()).select_from(Bot))
        links = await session.scalar(select(func.count()).select_from(BotEvent))
        messages = await session.scalar(select(func.count()).select_from(WebhookMessage))
    return int(bots or 0), int(links or 0), int(messages or 0)


@pytest.fixture
async def other_api(runtime: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a second tenant."""
    from showup.api.app import create_app
    from showup.tenants import create_tenant

    async with runtime.sessions() as session:
        other = await create_tenant(session, runtime.clock, "Other Co")
        await session.commit()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(runtime)),
        base_url="http://showup.test",
        headers={"Authorization": f"Token {other.api_key}"},
    ) as client:
        yield client


# --- refusals: a 4xx with a code, and nothing written ---------------------------------------


# The body is checked the same whatever the event's provider: Google only, to keep the
# suite's time (the refusals that depend on the synced event run on both, below).
@pytest.mark.parametrize("platform", ["google_calendar"], ids=["google"])
@pytest.mark.parametrize(
    ("title", "body", "status", "code"),
    [
        ("Review", {"deduplication_key": "k"}, 400, "invalid_request"),
        ("Review", {"bot_config": {}}, 400, "invalid_request"),
        ("Review", {"deduplication_key": "", "bot_config": {}}, 400, "invalid_request"),
        ("Review", {"deduplication_key": "k", "bot_config": []}, 400, "invalid_request"),
        (
            "Review",
            {"deduplication_key": "k", "bot_config": {"meeting_url": "not a url"}},
            400,
            "invalid_meeting_url",
        ),
        (
            "Review",
            {"deduplication_key": "k", "bot_config": {"meeting_url": "https://example.com/x"}},
            400,
            "invalid_meeting_url",
        ),
        (
            "Review",
            {"deduplication_key": "k", "bot_config": {"join_at": "2026-11-02T14:00"}},
            400,
            "invalid_join_at",
        ),
        (
            "Review",
            {"deduplication_key": "k", "bot_config": {"join_at": "soon"}},
            400,
            "invalid_join_at",
        ),
        (
            "Review",
            {"deduplication_key": "k", "bot_config": {"join_at": "2026-11-02T17:00:00Z"}},
            400,
            "invalid_join_at",
        ),
        (
            "Review",
            {"deduplication_key": "k", "bot_config": {"lead_time_seconds": -1}},
            400,
            "invalid_lead_time",
        ),
        (
            "Review",
            {"deduplication_key": "k", "bot_config": {"lead_time_seconds": True}},
            400,
            "invalid_lead_time",
        ),
    ],
)
async def test_bad_requests_write_nothing(
    api: httpx.AsyncClient,
    runtime: Any,
    cal: str,
    title: str,
    body: Any,
    status: int,
    code: str,
) -> None:
    ev = await event_of(api, cal, title)
    r = await api.post(f"/api/v2/calendar-events/{ev['id']}/bot/", json=body)
    assert (r.status_code, r.json()["code"]) == (status, code), r.text
    assert r.json()["detail"]
    assert await counts(runtime) == (0, 0, 0)


@pytest.mark.parametrize(
    ("title", "code"), [("Earlier", "event_ended"), ("No link", "no_meeting_url")]
)
async def test_unschedulable_events_write_nothing(
    api: httpx.AsyncClient, runtime: Any, cal: str, title: str, code: str
) -> None:
    ev = await event_of(api, cal, title)
    r = await schedule(api, ev["id"], "k")
    assert (r.status_code, r.json()["code"]) == (400, code), r.text
    assert r.json()["detail"]
    assert await counts(runtime) == (0, 0, 0)


async def test_unknown_and_foreign_ids_are_not_found(
    api: httpx.AsyncClient, other_api: httpx.AsyncClient, runtime: Any, cal: str, secret: str
) -> None:
    r = await api.post(
        "/api/v2/calendar-events/nope/bot/", json={"deduplication_key": "k", "bot_config": {}}
    )
    assert (r.status_code, r.json()["code"]) == (404, "not_found")
    assert (await api.delete("/api/v2/calendar-events/nope/bot/")).status_code == 404
    assert (await api.get("/api/v2/bots/nope/")).status_code == 404

    ev = await event_of(api, cal, "Review")
    bot_id = (await schedule(api, ev["id"], "k")).json()["bots"][0]["bot_id"]
    before = await counts(runtime)
    for r in (
        await other_api.post(
            f"/api/v2/calendar-events/{ev['id']}/bot/",
            json={"deduplication_key": "k", "bot_config": {}},
        ),
        await other_api.delete(f"/api/v2/calendar-events/{ev['id']}/bot/"),
        await other_api.get(f"/api/v2/bots/{bot_id}/"),
        await other_api.patch(f"/api/v2/bots/{bot_id}/", json={"join_at": None}),
        await other_api.delete(f"/api/v2/bots/{bot_id}/"),
    ):
        assert (r.status_code, r.json()["code"]) == (404, "not_found"), r.text
    assert (await other_api.get("/api/v2/bots/")).json()["results"] == []
    assert await counts(runtime) == before
    assert (await get_bot(api, bot_id))["status"] == "scheduled"


async def test_deleted_event_refuses_post_and_accepts_delete(
    api: httpx.AsyncClient, world: Any, worker: Any, clock: Any, cal: str
) -> None:
    ev = await event_of(api, cal, "Review")
    world.cancel_event(ALICE, ev["platform_id"])
    clock.advance(timedelta(minutes=5))
    await worker.drain()
    r = await schedule(api, ev["id"], "k")
    assert (r.status_code, r.json()["code"]) == (400, "event_deleted")
    r = await api.delete(f"/api/v2/calendar-events/{ev['id']}/bot/")
    assert r.status_code == 200 and r.json()["is_deleted"] is True


# --- Recall semantics ------------------------------------------------------------------


async def test_repeat_post_is_idempotent_and_replaces_the_config(
    api: httpx.AsyncClient, runtime: Any, worker: Any, cal: str, receiver: Receiver, secret: str
) -> None:
    ev = await event_of(api, cal, "Review")
    first = await schedule(api, ev["id"], "k", {"bot_name": "A", "lead_time_seconds": 300})
    bot_id = first.json()["bots"][0]["bot_id"]
    assert first.json()["bots"][0]["start_time"] == "2026-11-02T14:55:00Z"
    again = await schedule(api, ev["id"], "k", {"bot_name": "A", "lead_time_seconds": 300})
    assert again.json()["bots"] == first.json()["bots"]
    replaced = await schedule(api, ev["id"], "k", {})  # empty config: defaults again
    assert replaced.json()["bots"][0]["bot_id"] == bot_id
    assert replaced.json()["bots"][0]["start_time"] == "2026-11-02T14:58:00Z"
    assert (await get_bot(api, bot_id))["bot_config"] == {}
    await worker.drain()
    assert sorted(receiver.types()) == ["bot.scheduled", "bot.updated"]  # the repeat: nothing
    assert len(await all_bots(runtime)) == 1


async def test_meeting_url_override_for_an_event_without_a_link(
    api: httpx.AsyncClient, cal: str
) -> None:
    ev = await event_of(api, cal, "No link")
    r = await schedule(api, ev["id"], "k", {"meeting_url": "acme.zoom.us/j/123456789?pwd=abc"})
    assert r.status_code == 200, r.text
    bot = await get_bot(api, r.json()["bots"][0]["bot_id"])
    assert bot["meeting_url"] == ZOOM and bot["meeting_platform"] == "zoom"


async def test_a_new_key_renames_the_events_own_bot(api: httpx.AsyncClient, cal: str) -> None:
    ev = await event_of(api, cal, "Review")
    bot_id = (await schedule(api, ev["id"], "old")).json()["bots"][0]["bot_id"]
    r = await schedule(api, ev["id"], "new")
    assert r.json()["bots"][0] == {
        **r.json()["bots"][0],
        "bot_id": bot_id,
        "deduplication_key": "new",
    }


async def test_delete_then_delete_again(api: httpx.AsyncClient, runtime: Any, cal: str) -> None:
    ev = await event_of(api, cal, "Review")
    bot_id = (await schedule(api, ev["id"], "k")).json()["bots"][0]["bot_id"]
    for _ in range(2):
        r = await api.delete(f"/api/v2/calendar-events/{ev['id']}/bot/")
        assert r.status_code == 200 and r.json()["bots"] == [] and r.json()["raw"]
    bot = await get_bot(api, bot_id)
    assert (bot["status"], bot["status_reason"], bot["events"]) == ("cancelled", "unscheduled", [])
    no_bot = await event_of(api, cal, "No link")
    assert (await api.delete(f"/api/v2/calendar-events/{no_bot['id']}/bot/")).status_code == 200
    past = await event_of(api, cal, "Earlier")
    assert (await api.delete(f"/api/v2/calendar-events/{past['id']}/bot/")).status_code == 200


async def test_concurrent_duplicate_posts_make_one_bot(
    api: httpx.AsyncClient, world: Any, worker: Any, runtime: Any, platform: str
) -> None:
    world.add_user(ALICE, name="Alice")
    world.add_user(BOB, name="Bob")
    world.create_event(
        ALICE, meeting("Board", "2026-11-02T15:00:00Z", "2026-11-02T16:00:00Z", attendees=[BOB])
    )
    cal_a, cal_b = await connect(api, world, ALICE, BOB, platform=platform)
    await worker.drain()
    ev_a = await event_of(api, cal_a, "Board")
    ev_b = await event_of(api, cal_b, "Board")
    responses = await asyncio.gather(
        *(schedule(api, e["id"], "board", {"bot_name": "N"}) for e in [ev_a, ev_b] * 4)
    )
    assert [r.status_code for r in responses] == [200] * 8, [r.text for r in responses]
    assert len({r.json()["bots"][0]["bot_id"] for r in responses}) == 1
    [bot] = await all_bots(runtime)
    assert bot.status == "scheduled"
    assert sorted((await get_bot(api, bot.id))["events"]) == sorted([ev_a["id"], ev_b["id"]])


# --- /api/v2/bots/ -----------------------------------------------------------------------


async def test_list_filters_and_pages(
    api: httpx.AsyncClient, world: Any, worker: Any, clock: Any, platform: str
) -> None:
    world.add_user(ALICE, name="Alice")
    world.add_user(BOB, name="Bob")
    for i in range(5):
        world.create_event(
            ALICE, meeting(f"A{i}", f"2026-11-0{3 + i}T10:00:00Z", f"2026-11-0{3 + i}T11:00:00Z")
        )
    world.create_event(BOB, meeting("B0", "2026-11-03T12:00:00Z", "2026-11-03T13:00:00Z"))
    cal_a, cal_b = await connect(api, world, ALICE, BOB, platform=platform)
    await worker.drain()
    ids = {}
    for title, cal in [(f"A{i}", cal_a) for i in range(5)] + [("B0", cal_b)]:
        ev = await event_of(api, cal, title)
        clock.advance(timedelta(seconds=1))
        ids[title] = (await schedule(api, ev["id"], title)).json()["bots"][0]["bot_id"]
    await api.delete(f"/api/v2/bots/{ids['A4']}/")

    async def listed(**params: Any) -> list[str]:
        out: list[str] = []
        r = await api.get("/api/v2/bots/", params={"page_size": 2, **params})
        while True:
            assert r.status_code == 200, r.text
            out += [b["id"] for b in r.json()["results"]]
            if not r.json()["next"]:
                return out
            r = await api.get(r.json()["next"])

    assert await listed() == [ids[k] for k in ("A0", "A1", "A2", "A3", "A4", "B0")]
    assert await listed(status="cancelled") == [ids["A4"]]
    assert await listed(calendar_id=cal_b) == [ids["B0"]]
    assert await listed(external_user_id=BOB) == [ids["B0"]]
    assert await listed(
        join_at__gte="2026-11-04T00:00:00Z", join_at__lte="2026-11-05T23:00:00Z"
    ) == [ids["A1"], ids["A2"]]
    r = await api.get("/api/v2/bots/", params={"status": "sleeping"})
    assert (r.status_code, r.json()["code"]) == (400, "invalid_request")
    r = await api.get("/api/v2/bots/", params={"cursor": "garbage"})
    assert (r.status_code, r.json()["code"]) == (400, "invalid_cursor")


async def test_patch_join_at_pins_until_cleared(
    api: httpx.AsyncClient, world: Any, worker: Any, clock: Any, cal: str
) -> None:
    ev = await event_of(api, cal, "Review")
    bot_id = (await schedule(api, ev["id"], "k")).json()["bots"][0]["bot_id"]
    r = await api.patch(f"/api/v2/bots/{bot_id}/", json={"join_at": "2026-11-02T14:45:00+00:00"})
    assert r.status_code == 200, r.text
    assert (r.json()["join_at"], r.json()["join_at_override"]) == (
        "2026-11-02T14:45:00Z",
        "2026-11-02T14:45:00Z",
    )
    assert r.json()["next_attempt_at"] == "2026-11-02T14:45:00Z"

    world.move_event(ALICE, ev["platform_id"], datetime(2026, 11, 2, 15, 30, tzinfo=UTC))
    clock.advance(timedelta(minutes=5))
    await worker.drain()
    assert (await get_bot(api, bot_id))["join_at"] == "2026-11-02T14:45:00Z"  # pinned

    r = await api.patch(f"/api/v2/bots/{bot_id}/", json={"join_at": None})
    assert (r.json()["join_at"], r.json()["join_at_override"]) == ("2026-11-02T15:28:00Z", None)

    for body, code in [
        ({"join_at": "2026-11-02T14:45:00"}, "invalid_join_at"),
        ({"join_at": "2026-11-02T18:00:00Z"}, "invalid_join_at"),
        ({"bot_config": {"meeting_url": "ftp://x"}}, "invalid_meeting_url"),
    ]:
        r = await api.patch(f"/api/v2/bots/{bot_id}/", json=body)
        assert (r.status_code, r.json()["code"]) == (400, code)
    r = await api.patch(f"/api/v2/bots/{bot_id}/", json={"bot_config": {"bot_name": "X"}})
    assert r.json()["bot_config"] == {"bot_name": "X"}


async def test_delete_bot_is_final_and_repeatable(
    api: httpx.AsyncClient, world: Any, worker: Any, clock: Any, cal: str
) -> None:
    ev = await event_of(api, cal, "Review")
    bot_id = (await schedule(api, ev["id"], "k")).json()["bots"][0]["bot_id"]
    for _ in range(2):
        r = await api.delete(f"/api/v2/bots/{bot_id}/")
        assert r.status_code == 200 and r.json()["status"] == "cancelled"
    r = await api.patch(f"/api/v2/bots/{bot_id}/", json={"join_at": None})
    assert (r.status_code, r.json()["code"]) == (409, "bot_not_editable")
    # A later change to the event does not bring it back: the event no longer wants it.
    world.move_event(ALICE, ev["platform_id"], datetime(2026, 11, 2, 15, 30, tzinfo=UTC))
    clock.advance(timedelta(minutes=5))
    await worker.drain()
    assert (await get_bot(api, bot_id))["status"] == "cancelled"
    assert (await api.get(f"/api/v2/calendar-events/{ev['id']}/")).json()["bots"] == []


async def test_dispatched_bot_cannot_be_cancelled_or_edited(
    api: httpx.AsyncClient, worker: Any, clock: Any, cal: str, secret: str
) -> None:
    ev = await event_of(api, cal, "Review")
    bot_id = (await schedule(api, ev["id"], "k")).json()["bots"][0]["bot_id"]
    clock.set(datetime(2026, 11, 2, 14, 58, tzinfo=UTC))
    await worker.drain()
    r = await api.delete(f"/api/v2/bots/{bot_id}/")
    assert (r.status_code, r.json()["code"]) == (409, "bot_not_cancellable")
    r = await api.patch(f"/api/v2/bots/{bot_id}/", json={"join_at": None})
    assert (r.status_code, r.json()["code"]) == (409, "bot_not_editable")
    # Unscheduling the event afterwards is fine; the launched bot stays as history.
    r = await api.delete(f"/api/v2/calendar-events/{ev['id']}/bot/")
    assert r.status_code == 200 and r.json()["bots"] == []
    assert (await get_bot(api, bot_id))["status"] == "dispatched"


# --- tenant settings --------------------------------------------------------------------


async def test_tenant_lead_time_moves_following_bots(api: httpx.AsyncClient, cal: str) -> None:
    assert (await api.get("/api/v2/tenant/settings/")).json() == {
        "bot_lead_time_seconds": 120,
        "bot_lead_time_is_default": True,
    }
    ev = await event_of(api, cal, "Review")
    no_link = await event_of(api, cal, "No link")
    follows = (await schedule(api, ev["id"], "a")).json()["bots"][0]["bot_id"]
    own = (
        await schedule(api, no_link["id"], "b", {"meeting_url": MEET, "lead_time_seconds": 60})
    ).json()["bots"][0]["bot_id"]
    r = await api.patch("/api/v2/tenant/settings/", json={"bot_lead_time_seconds": 600})
    assert r.json() == {"bot_lead_time_seconds": 600, "bot_lead_time_is_default": False}
    assert (await get_bot(api, follows))["join_at"] == "2026-11-02T14:50:00Z"
    assert (await get_bot(api, own))["join_at"] == "2026-11-02T11:59:00Z"
    r = await api.patch("/api/v2/tenant/settings/", json={"bot_lead_time_seconds": 7200})
    assert (r.status_code, r.json()["code"]) == (400, "invalid_request")
    r = await api.patch("/api/v2/tenant/settings/", json={"bot_lead_time_seconds": None})
    assert r.json()["bot_lead_time_is_default"] is True
    assert (await get_bot(api, follows))["join_at"] == "2026-11-02T14:58:00Z"


# --- event JSON -------------------------------------------------------------------------


async def test_event_lists_show_bots_with_one_query_per_page(
    api: httpx.AsyncClient, runtime: Any, world: Any, worker: Any, platform: str
) -> None:
    world.add_user(ALICE, name="Alice")
    for i in range(12):
        world.create_event(
            ALICE, meeting(f"M{i}", f"2026-11-{10 + i}T10:00:00Z", f"2026-11-{10 + i}T11:00:00Z")
        )
    await connect(api, world, ALICE, platform=platform)
    await worker.drain()
    events = (await api.get("/api/v2/calendar-events/", params={"page_size": 100})).json()
    for ev in events["results"]:
        await schedule(api, ev["id"], ev["id"])

    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    with listening(runtime.engine, "before_cursor_execute", count):
        small = await api.get("/api/v2/calendar-events/", params={"page_size": 2})
        n_small = len(statements)
        statements.clear()
        big = await api.get("/api/v2/calendar-events/", params={"page_size": 12})
        n_big = len(statements)
    assert n_small == n_big  # the bots of a page cost one query, whatever its size
    assert all(len(e["bots"]) == 1 for e in big.json()["results"])
    assert all(e["bots"][0]["status"] == "scheduled" for e in small.json()["results"])
