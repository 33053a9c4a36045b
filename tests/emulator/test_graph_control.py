"""The control API's Graph additions: Microsoft clients, graph_* settings, the outbox
controls and subscription lifecycle triggers (docs/emulator.md "Control API additions")."""

from __future__ import annotations

import httpx

from showup.emulator import World
from showup.emulator.graph import graph_event_id
from tests.emulator.conftest import ALICE, timed
from tests.emulator.test_graph_support import GRAPH, refresh

C = "/_emulator"


async def test_control_api_graph_additions(world: World, http: httpx.AsyncClient) -> None:
    r = await http.post(f"{C}/clients", json={"provider": "microsoft"})
    client = r.json()
    assert world.clients[client["client_id"]].provider == "microsoft"
    assert (await http.post(f"{C}/clients", json={"provider": "yahoo"})).status_code == 400
    grant = await http.post(f"{C}/grants", json={"client_id": client["client_id"], "email": ALICE})
    token = grant.json()["refresh_token"]
    r = await refresh(http, client["client_id"], client["client_secret"], token)
    assert r.status_code == 200 and r.json()["refresh_token"] != token

    settings = (
        await http.patch(f"{C}/settings", json={"graph_page_size": 3, "graph_replays": False})
    ).json()
    assert settings["graph_page_size"] == 3 and settings["graph_replays"] is False
    assert world.settings.graph_page_size == 3

    state = (
        await http.post(f"{C}/outbox", json={"drop": 2, "label": "graph", "reorder": True})
    ).json()
    assert state["drop"] == 2 and state["reorder"] is True
    assert (await http.post(f"{C}/outbox/deliver")).json()["attempted"] == 0
    assert (await http.get(f"{C}/subscriptions")).status_code == 404
    assert (await http.get(f"{C}/graph/subscriptions")).json() == {"subscriptions": []}
    r = await http.post(f"{C}/graph/subscriptions/nope/lifecycle", json={"event": "missed"})
    assert r.status_code == 404

    # Control event routes take Graph ids.
    ev = world.create_event(ALICE, timed("2026-11-04T10:00:00", "2026-11-04T11:00:00"))
    gid = graph_event_id(world, ALICE, ev["id"])
    r = await http.patch(f"{C}/users/{ALICE}/events/{gid}", json={"summary": "via graph id"})
    assert r.status_code == 200 and r.json()["summary"] == "via graph id"
    http.headers["Authorization"] = "Bearer nope"
    assert (await http.get(f"{GRAPH}/me")).status_code == 401
