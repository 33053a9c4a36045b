"""Non-ASCII text goes through a sync unchanged: provider JSON, the stored ``raw`` text
(UTF-8, not ``\\u`` escapes: Google's own text, orjson's for Microsoft), the API; and the
event's fingerprint is stable across the round trip through the database, on both
providers and both databases. Text holding NUL, which PostgreSQL cannot store, is stored
with U+FFFD in its place, and the calendar syncs."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import text

from tests.sync.helpers import all_events
from tests.sync.test_sync_e2e import ALICE, connect_alice

TITLE = "Caf\u00e9 \u00fcber \u4f1a\u8b70 \U0001f600 \u2013 na\u00efve"
DESCRIPTION = (
    "Agenda \u00e9t\u00e9: \u65e5\u672c\u8a9e, "
    "\u0440\u0443\u0441\u0441\u043a\u0438\u0439, \u2713 \U0001f389"
)


async def test_non_ascii_title_and_description_round_trip(
    api: httpx.AsyncClient, world: Any, worker: Any, clock: Any, runtime: Any, platform: str
) -> None:
    world.add_user(ALICE, name="Alice", time_zone="Europe/Berlin")
    world.create_event(
        ALICE,
        {
            "summary": TITLE,
            "description": DESCRIPTION,
            "start": {"dateTime": "2026-11-03T15:00:00Z"},
            "end": {"dateTime": "2026-11-03T16:00:00Z"},
        },
    )
    conn, cid = await connect_alice(api, world, platform)
    [outcome] = await worker.drain()
    assert outcome.result == "synced" and outcome.inserted == 1

    [ev] = await all_events(api, calendar_id=cid)
    assert ev["title"] == TITLE
    if conn.is_microsoft:
        assert ev["raw"]["subject"] == TITLE
        assert DESCRIPTION in ev["raw"]["body"]["content"]
    else:
        assert ev["raw"]["summary"] == TITLE
        assert ev["raw"]["description"] == DESCRIPTION

    async with runtime.sessions() as session:
        [stored] = (await session.execute(text("SELECT raw FROM events"))).scalars().all()
    stored_text = stored if isinstance(stored, str) else json.dumps(stored, ensure_ascii=False)
    assert TITLE in stored_text  # UTF-8, not \u escapes
    assert json.loads(stored_text) == ev["raw"]

    # The fingerprint made from the provider's JSON is the one stored: a full sync of the
    # unchanged event rewrites nothing.
    world.expire_sync_tokens()
    clock.advance(timedelta(minutes=5))
    [outcome] = await worker.drain()
    assert outcome.full and (outcome.inserted, outcome.updated, outcome.deleted) == (0, 0, 0)
    assert await all_events(api, calendar_id=cid) == [ev]


async def test_text_holding_nul_is_stored_with_the_replacement_character(
    api: httpx.AsyncClient, world: Any, worker: Any, clock: Any, runtime: Any, platform: str
) -> None:
    world.add_user(ALICE, name="Alice", time_zone="Europe/Berlin")
    world.create_event(
        ALICE,
        {
            "summary": "Review\x00 notes",
            "description": "line one\x00line two",
            "start": {"dateTime": "2026-11-03T15:00:00Z"},
            "end": {"dateTime": "2026-11-03T16:00:00Z"},
            "attendees": [{"email": "bob@example.com", "displayName": "Bob\x00"}],
        },
    )
    _, cid = await connect_alice(api, world, platform)
    [outcome] = await worker.drain()
    assert outcome.result == "synced" and outcome.inserted == 1

    [ev] = await all_events(api, calendar_id=cid)
    assert ev["title"] == "Review\ufffd notes"
    assert "Bob\ufffd" in [a["name"] for a in ev["attendees"]]
    raw = json.dumps(ev["raw"], ensure_ascii=False)
    assert "line one\ufffdline two" in raw and "\x00" not in raw

    # Stable: a full sync of the unchanged event rewrites nothing.
    world.expire_sync_tokens()
    clock.advance(timedelta(minutes=5))
    [outcome] = await worker.drain()
    assert outcome.full and (outcome.inserted, outcome.updated, outcome.deleted) == (0, 0, 0)
