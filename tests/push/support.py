"""Test kit for push: deliver the emulator's pings, look at channels on both sides.

Pings queue in ``world.outbox`` and are POSTed to our receiver only when a test says so;
tests drop, duplicate or reorder them by editing ``world.outbox.pending`` first.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import httpx
from sqlalchemy import event, select

from showup.db.channel_models import PushChannel
from showup.db.models import Calendar
from showup.emulator.google.push import Channel, hub_for
from showup.emulator.outbox import Outbound
from tests.sync.helpers import Connector

ALICE = "alice@example.com"


class Pings:
    def __init__(self, world: Any, client: httpx.AsyncClient) -> None:
        self.world = world
        self.client = client

    @property
    def pending(self) -> list[Outbound]:
        pending: list[Outbound] = self.world.outbox.pending
        return pending

    async def deliver(self) -> list[tuple[str, int | None]]:
        """Send every queued ping once; ``(resource state, our status)`` for each."""
        sent = await self.world.outbox.deliver(self.client)
        return [(m.headers["X-Goog-Resource-State"], m.statuses[-1]) for m in sent]

    def drop(self) -> int:
        n = len(self.world.outbox.pending)
        self.world.outbox.pending.clear()
        return n

    def duplicate(self, times: int = 2) -> None:
        self.world.outbox.pending[:] = [
            replace(m, statuses=[]) for m in self.world.outbox.pending for _ in range(times)
        ]

    def reverse(self) -> None:
        self.world.outbox.pending.reverse()


def live_channels(world: Any) -> list[Channel]:
    """Channels the emulator would ping now (not stopped, not expired)."""
    now = world.clock.now()
    return [c for c in hub_for(world).channels.values() if not c.stopped and now < c.expiration]


async def connect(api: httpx.AsyncClient, world: Any, email: str = ALICE) -> str:
    return await Connector(api, world).connect(email)


async def channels(runtime: Any, calendar_id: str | None = None) -> list[PushChannel]:
    async with runtime.sessions() as session:
        q = select(PushChannel).order_by(PushChannel.created_at, PushChannel.id)
        if calendar_id is not None:
            q = q.where(PushChannel.calendar_id == calendar_id)
        return list(await session.scalars(q))


async def calendar(runtime: Any, calendar_id: str) -> Calendar:
    async with runtime.sessions() as session:
        cal: Calendar | None = await session.get(Calendar, calendar_id)
        assert cal is not None
        return cal


def ping_headers(
    channel_id: str, token: str | None, *, state: str = "exists", number: int = 10
) -> dict[str, str]:
    headers = {
        "X-Goog-Channel-ID": channel_id,
        "X-Goog-Message-Number": str(number),
        "X-Goog-Resource-ID": "res-1",
        "X-Goog-Resource-State": state,
        "X-Goog-Resource-URI": "https://www.googleapis.com/calendar/v3/calendars/x/events",
        "User-Agent": "APIs-Google",
    }
    if token is not None:
        headers["X-Goog-Channel-Token"] = token
    return headers


@contextmanager
def counting_sql(runtime: Any) -> Iterator[dict[str, int]]:
    """Transactions begun and data statements (SELECT/INSERT/UPDATE/DELETE) run."""
    seen = {"transactions": 0, "statements": 0}

    def on_begin(conn: Any) -> None:
        seen["transactions"] += 1

    def on_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().split(" ", 1)[0].upper() in ("SELECT", "INSERT", "UPDATE", "DELETE"):
            seen["statements"] += 1

    engine = runtime.engine.sync_engine
    event.listen(engine, "begin", on_begin)
    event.listen(engine, "before_cursor_execute", on_execute)
    try:
        yield seen
    finally:
        event.remove(engine, "begin", on_begin)
        event.remove(engine, "before_cursor_execute", on_execute)
