"""Shared helpers for the Graph emulator tests (no tests here): sign-in through the
v2.0 token endpoint and a delta pager that follows whole nextLink/deltaLink URLs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from showup.emulator import World
from tests.emulator.conftest import ALICE

GRAPH = "/graph/v1.0"
TOKEN = "/login/common/oauth2/v2.0/token"
DELTA = f"{GRAPH}/me/calendarView/delta"
NOVEMBER = {"startDateTime": "2026-11-01T00:00:00Z", "endDateTime": "2026-12-01T00:00:00Z"}


@dataclass
class GraphSession:
    http: httpx.AsyncClient
    client_id: str
    client_secret: str
    refresh_token: str
    access_token: str


async def refresh(
    http: httpx.AsyncClient, client_id: str, secret: str, token: str, **extra: str
) -> httpx.Response:
    data = {
        "grant_type": "refresh_token",
        "refresh_token": token,
        "client_id": client_id,
        "client_secret": secret,
        **extra,
    }
    return await http.post(TOKEN, data=data)


async def graph_sign_in(world: World, http: httpx.AsyncClient, email: str = ALICE) -> GraphSession:
    client_id, secret = world.add_oauth_client(provider="microsoft")
    first = world.grant(client_id, email)
    r = await refresh(http, client_id, secret, first)
    assert r.status_code == 200, r.text
    body = r.json()
    http.headers["Authorization"] = f"Bearer {body['access_token']}"
    return GraphSession(http, client_id, secret, body["refresh_token"], body["access_token"])


async def delta_round(
    http: httpx.AsyncClient,
    url: str = DELTA,
    params: dict[str, str] | None = None,
    prefer: str | None = None,
) -> tuple[list[dict[str, Any]], str, list[int]]:
    """Follow a round to its deltaLink: items, the deltaLink, and each page's size."""
    headers = {"Prefer": prefer} if prefer else {}
    items: list[dict[str, Any]] = []
    sizes: list[int] = []
    next_params = params
    for _ in range(1000):
        r = await http.get(url, params=next_params, headers=headers)
        assert r.status_code == 200, r.text
        body = r.json()
        items.extend(body["value"])
        sizes.append(len(body["value"]))
        assert ("@odata.nextLink" in body) != ("@odata.deltaLink" in body)
        if "@odata.deltaLink" in body:
            return items, body["@odata.deltaLink"], sizes
        url, next_params = body["@odata.nextLink"], None
    raise AssertionError("paging did not end")


def by_id(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["id"]: item for item in items}
