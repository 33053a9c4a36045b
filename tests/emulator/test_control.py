"""The /_emulator control API mirrors the Python world methods (docs/emulator.md)."""

from __future__ import annotations

import httpx

from showup.emulator import World
from tests.emulator.conftest import list_all

C = "/_emulator"


async def test_a_whole_scenario_over_the_control_api(http: httpx.AsyncClient, world: World) -> None:
    assert (await http.post(f"{C}/reset")).status_code == 200
    client = (await http.post(f"{C}/clients", json={})).json()
    user = (
        await http.post(f"{C}/users", json={"email": "dana@example.com", "time_zone": "Asia/Tokyo"})
    ).json()
    assert user == {"email": "dana@example.com", "calendars": ["dana@example.com"]}
    await http.post(f"{C}/users", json={"email": "eli@example.com"})
    side = (
        await http.post(f"{C}/users/dana@example.com/calendars", json={"summary": "Side"})
    ).json()
    assert side["id"].endswith("@group.calendar.google.com")
    grant = (
        await http.post(
            f"{C}/grants", json={"client_id": client["client_id"], "email": "dana@example.com"}
        )
    ).json()

    token = (
        await http.post(
            "/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": grant["refresh_token"],
                "client_id": client["client_id"],
                "client_secret": client["client_secret"],
            },
        )
    ).json()["access_token"]
    api = httpx.AsyncClient(
        transport=http._transport,
        base_url="http://emu",
        headers={"Authorization": f"Bearer {token}"},
    )

    series = (
        await http.post(
            f"{C}/users/dana@example.com/events",
            json={
                "summary": "Sync",
                "start": {"dateTime": "2026-11-03T09:00:00", "timeZone": "Asia/Tokyo"},
                "end": {"dateTime": "2026-11-03T09:30:00", "timeZone": "Asia/Tokyo"},
                "recurrence": ["RRULE:FREQ=DAILY;COUNT=3"],
                "attendees": [{"email": "eli@example.com"}],
            },
        )
    ).json()
    sid = series["id"]
    _, sync, _ = await list_all(api, singleEvents="true")

    ev = f"{C}/users/dana@example.com/events"
    assert (await http.patch(f"{ev}/{sid}", json={"summary": "Daily"})).json()["summary"] == "Daily"
    moved = (
        await http.post(f"{ev}/{sid}_20261104T000000Z/move", json={"start": "2026-11-04T03:00:00Z"})
    ).json()
    assert moved["start"]["dateTime"] == "2026-11-04T12:00:00+09:00"
    assert (await http.post(f"{ev}/{sid}_20261105T000000Z/cancel")).json()["status"] == "cancelled"
    r = await http.post(
        f"{C}/users/eli@example.com/events/{sid}/respond", json={"response": "tentative"}
    )
    assert {a["email"]: a["responseStatus"] for a in r.json()["attendees"]}[
        "eli@example.com"
    ] == "tentative"
    assert (await http.get(f"{ev}/{sid}")).json()["summary"] == "Daily"

    changed, _, _ = await list_all(api, singleEvents="true", syncToken=sync)
    assert {i["status"] for i in changed} == {"confirmed", "cancelled"} and len(changed) == 3

    await http.post(f"{C}/sync-tokens/expire", json={"email": "dana@example.com"})
    r = await api.get("/calendar/v3/calendars/primary/events", params={"syncToken": sync})
    assert r.status_code == 410

    fault = (
        await http.post(
            f"{C}/faults", json={"status": 429, "retry_after": 5, "path_contains": "/calendarList"}
        )
    ).json()
    assert fault["times"] == 1
    assert len((await http.get(f"{C}/faults")).json()["faults"]) == 1
    r = await api.get("/calendar/v3/users/me/calendarList")
    assert r.status_code == 429 and r.headers["Retry-After"] == "5"
    assert (await http.delete(f"{C}/faults/{fault['id']}")).status_code == 200
    assert (await http.delete(f"{C}/faults")).status_code == 200

    settings = (await http.patch(f"{C}/settings", json={"quirky_pages": False})).json()
    assert settings["quirky_pages"] is False and world.settings.quirky_pages is False

    assert (await http.post(f"{C}/clock/advance", json={"seconds": 4000})).status_code == 200
    assert (await api.get("/calendar/v3/users/me/calendarList")).status_code == 401

    assert (await http.delete(f"{ev}/{sid}")).json()["status"] == "cancelled"
    assert (
        await http.post(f"{C}/revoke", json={"token": grant["refresh_token"]})
    ).status_code == 200
    await api.aclose()


async def test_control_errors(http: httpx.AsyncClient) -> None:
    r = await http.get(f"{C}/users/nobody@example.com/events/abcde")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = await http.post(f"{C}/users", json={"name": "no email"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid"
    r = await http.post(f"{C}/users/alice@example.com/events", json={"start": {"dateTime": "bad"}})
    assert r.status_code == 400
    r = await http.post(f"{C}/users", content=b"[1]")
    assert r.status_code == 400
