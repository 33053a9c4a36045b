"""Fixtures for the emulator's own tests: a world on a FakeClock, its app, and a
signed-in client for alice (most tests go through httpx.ASGITransport)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from showup.clock import FakeClock
from showup.emulator import World, create_app

ALICE = "alice@example.com"
BOB = "bob@example.com"
START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@dataclass
class Session:
    """An OAuth client, alice's refresh token, and an HTTP client holding her access token."""

    http: httpx.AsyncClient
    client_id: str
    client_secret: str
    refresh_token: str
    access_token: str


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def world(clock: FakeClock) -> World:
    w = World(clock)
    w.add_user(ALICE, name="Alice", time_zone="Europe/Berlin")
    w.add_user(BOB, name="Bob", time_zone="America/New_York")
    return w


@pytest.fixture
def app(world: World) -> Starlette:
    return create_app(world)


@pytest.fixture
async def http(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://emu"
    ) as client:
        yield client


async def sign_in(world: World, http: httpx.AsyncClient, email: str = ALICE) -> Session:
    client_id, secret = world.add_oauth_client()
    refresh = world.grant(client_id, email)
    r = await http.post(
        "/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": refresh,
            "client_id": client_id,
            "client_secret": secret,
        },
    )
    assert r.status_code == 200, r.text
    token = r.json()["access_token"]
    http.headers["Authorization"] = f"Bearer {token}"
    return Session(http, client_id, secret, refresh, token)


@pytest.fixture
async def alice(world: World, http: httpx.AsyncClient) -> Session:
    return await sign_in(world, http)


def timed(start: str, end: str, tz: str = "Europe/Berlin", **extra: Any) -> dict[str, Any]:
    """An event body with local wall times in ``tz``."""
    return {
        "start": {"dateTime": start, "timeZone": tz},
        "end": {"dateTime": end, "timeZone": tz},
        **extra,
    }


async def list_all(
    http: httpx.AsyncClient, calendar: str = "primary", **params: str | int
) -> tuple[list[dict[str, Any]], str, list[int]]:
    """Page through events.list; returns items, the sync token, and each page's size."""
    query: dict[str, str | int] = dict(params)
    items: list[dict[str, Any]] = []
    sizes: list[int] = []
    for _ in range(1000):
        r = await http.get(f"/calendar/v3/calendars/{calendar}/events", params=query)
        assert r.status_code == 200, r.text
        body = r.json()
        items.extend(body["items"])
        sizes.append(len(body["items"]))
        assert ("nextPageToken" in body) != ("nextSyncToken" in body)
        if "nextSyncToken" in body:
            return items, body["nextSyncToken"], sizes
        query["pageToken"] = body["nextPageToken"]
    raise AssertionError("paging did not end")
