"""A bot follows its meeting on a push notification alone (PROTOCOLS §1.5, DESIGN
invariant 1): the organizer moves the meeting in the emulator, Google's ping reaches our
receiver, the worker syncs, the bot moves and ``bot.updated`` goes out, and the clock
never moves by a poll interval. SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from showup.config import Settings
from tests.bots.support import Receiver, connect, event_of, get_bot, meeting, schedule, verify
from tests.conftest import make_settings

ALICE = "alice@example.com"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, allow_http_loopback_webhooks=True, push_allow_http=True)


@pytest.fixture
async def google(runtime: Any) -> AsyncIterator[httpx.AsyncClient]:
    """What Google's push delivery reaches: our app (another instance, like another
    API process behind the load balancer)."""
    from showup.api.app import create_app

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(runtime))) as c:
        yield c


# Google only: it drives Google's push channel and ping headers (Graph change
# notifications are a different protocol, tested on their own).
async def test_a_moved_meeting_moves_its_bot_on_the_ping(
    api: httpx.AsyncClient,
    world: Any,
    worker: Any,
    clock: Any,
    receiver: Receiver,
    secret: str,
    google: httpx.AsyncClient,
) -> None:
    world.add_user(ALICE, name="Alice")
    gid = world.create_event(
        ALICE, meeting("Design review", "2026-11-02T15:00:00Z", "2026-11-02T16:00:00Z")
    )["id"]
    [cid] = await connect(api, world, ALICE)
    await worker.drain()  # first sync, and the channel opens
    await world.outbox.deliver(google)  # its sync message
    ev = await event_of(api, cid, "Design review")
    bot_id = (await schedule(api, ev["id"], "design-review")).json()["bots"][0]["bot_id"]
    clock.advance(timedelta(minutes=5))
    await worker.drain()  # bot.scheduled out; the calendar is on the 24 h schedule now
    cal = (await api.get(f"/api/v2/calendars/{cid}/")).json()
    assert cal["push"]["status"] == "active"
    start = clock.now()
    assert cal["sync"]["next_sync_at"] == (start + timedelta(hours=24)).isoformat().replace(
        "+00:00", "Z"
    )

    world.move_event(
        ALICE,
        gid,
        datetime(2026, 11, 2, 17, 0, tzinfo=UTC),
        datetime(2026, 11, 2, 18, 0, tzinfo=UTC),
    )
    [ping] = await world.outbox.deliver(google)
    assert (ping.headers["X-Goog-Resource-State"], ping.statuses) == ("exists", [200])
    await worker.drain()

    assert clock.now() == start
    bot = await get_bot(api, bot_id)
    assert (bot["status"], bot["join_at"]) == ("scheduled", "2026-11-02T16:58:00Z")
    [moved] = receiver.of_type("bot.updated")
    assert verify(secret, moved)["data"]["join_at"] == "2026-11-02T16:58:00Z"
    assert moved.at == start
