"""A bot follows its Outlook meeting on a Graph change notification alone (PROTOCOLS §2.4,
DESIGN invariant 1): the organizer moves the meeting in the emulator, Graph's notification
reaches our receiver over HTTP (ASGI) and is answered 202, the worker syncs, the bot moves
and ``bot.updated`` goes out, and the clock never moves by a poll interval. The
subscription itself was validated by our app during its creation. SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from showup.config import Settings
from showup.emulator.graph import subscriptions
from tests.bots.support import Receiver, event_of, get_bot, schedule, verify
from tests.conftest import make_settings
from tests.sync.helpers import Connector

ALICE = "alice@example.com"
TEAMS = "https://teams.microsoft.com/l/meetup-join/19%3ameeting_Zm9vYmFy%40thread.v2/0"


def teams_meeting(summary: str, start: str, end: str) -> dict[str, Any]:
    return {
        "summary": summary,
        "start": {"dateTime": start},
        "end": {"dateTime": end},
        "conferenceData": {"entryPoints": [{"entryPointType": "video", "uri": TEAMS}]},
    }


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, allow_http_loopback_webhooks=True, push_allow_http=True)


@pytest.fixture
async def microsoft(runtime: Any, world: Any) -> AsyncIterator[httpx.AsyncClient]:
    """What Graph's deliveries and validation requests reach: our app (another instance,
    like another API process behind the load balancer)."""
    from showup.api.app import create_app

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(runtime))) as c:
        world.outbox.client = c
        yield c


async def test_a_moved_outlook_meeting_moves_its_bot_on_the_notification(
    api: httpx.AsyncClient,
    world: Any,
    worker: Any,
    clock: Any,
    receiver: Receiver,
    secret: str,
    microsoft: httpx.AsyncClient,
) -> None:
    world.add_user(ALICE, name="Alice")
    wid = world.create_event(
        ALICE, teams_meeting("Design review", "2026-11-02T15:00:00Z", "2026-11-02T16:00:00Z")
    )["id"]
    cid = await Connector(api, world, "microsoft_outlook").connect(ALICE)
    await worker.drain()  # first sync, and the subscription opens (validated by our app)
    assert len(subscriptions(world).subscriptions) == 1
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
        wid,
        datetime(2026, 11, 2, 17, 0, tzinfo=UTC),
        datetime(2026, 11, 2, 18, 0, tzinfo=UTC),
    )
    [note] = await world.outbox.deliver(microsoft)
    assert (note.label, note.statuses) == ("graph-notification", [202])
    await worker.drain()

    assert clock.now() == start
    bot = await get_bot(api, bot_id)
    assert (bot["status"], bot["join_at"]) == ("scheduled", "2026-11-02T16:58:00Z")
    [moved] = receiver.of_type("bot.updated")
    assert verify(secret, moved)["data"]["join_at"] == "2026-11-02T16:58:00Z"
    assert moved.at == start
