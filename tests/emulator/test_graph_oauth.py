"""Microsoft identity v2.0 token endpoint (PROTOCOLS §2.1): a new refresh token on every
refresh, invalid_grant once revoked, provider separation, access-token expiry (401)."""

from __future__ import annotations

from datetime import timedelta

import httpx

from showup.clock import FakeClock
from showup.emulator import World
from tests.emulator.conftest import ALICE, sign_in
from tests.emulator.test_graph_support import GRAPH, graph_sign_in, refresh


async def test_every_refresh_rotates_the_refresh_token(
    world: World, http: httpx.AsyncClient
) -> None:
    cid, secret = world.add_oauth_client(provider="microsoft")
    assert world.clients[cid].provider == "microsoft"
    first = world.grant(cid, ALICE)
    r1 = await refresh(http, cid, secret, first, scope="offline_access Calendars.Read")
    assert r1.status_code == 200, r1.text
    body = r1.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3599
    assert "https://graph.microsoft.com/Calendars.Read" in body["scope"].split()
    second = body["refresh_token"]
    assert second and second != first
    r2 = await refresh(http, cid, secret, second)
    third = r2.json()["refresh_token"]
    assert len({first, second, third}) == 3
    # §2.1: the server does not revoke the old one; the emulator can be made strict.
    assert (await refresh(http, cid, secret, first)).status_code == 200
    world.settings.graph_old_refresh_tokens = False
    r = await refresh(http, cid, secret, second)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    assert r.json()["error_codes"] == [70008]


async def test_revoked_grant_is_invalid_grant_for_every_token(
    world: World, http: httpx.AsyncClient
) -> None:
    cid, secret = world.add_oauth_client(provider="microsoft")
    first = world.grant(cid, ALICE)
    second = (await refresh(http, cid, secret, first)).json()["refresh_token"]
    world.revoke(second)
    for token in (first, second):
        r = await refresh(http, cid, secret, token)
        assert r.status_code == 400
        body = r.json()
        assert body["error"] == "invalid_grant"
        assert body["error_description"].startswith("AADSTS70000:")
        assert {"trace_id", "correlation_id", "timestamp"} <= set(body)


async def test_client_and_request_errors(world: World, http: httpx.AsyncClient) -> None:
    cid, secret = world.add_oauth_client(provider="microsoft")
    token = world.grant(cid, ALICE)
    r = await refresh(http, cid, "wrong", token)
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    google_id, google_secret = world.add_oauth_client()
    google_token = world.grant(google_id, ALICE)
    r = await refresh(http, google_id, google_secret, google_token)
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    r = await http.post(
        "/login/common/oauth2/v2.0/token", data={"grant_type": "authorization_code", "code": "x"}
    )
    assert r.status_code == 400 and r.json()["error"] == "unsupported_grant_type"
    r = await refresh(http, cid, secret, token, scope="Calendars.ReadWrite")
    assert r.status_code == 400 and r.json()["error_codes"] == [65001]
    # Basic auth and a tenant id in the path work too.
    r = await http.post(
        "/login/9188040d-6c67-4c5b-b112-36a304b66dad/oauth2/v2.0/token",
        data={"grant_type": "refresh_token", "refresh_token": token},
        auth=(cid, secret),
    )
    assert r.status_code == 200, r.text


async def test_graph_rejects_expired_revoked_and_google_tokens(
    world: World, http: httpx.AsyncClient, clock: FakeClock
) -> None:
    session = await graph_sign_in(world, http)
    assert (await http.get(f"{GRAPH}/me")).status_code == 200
    clock.advance(timedelta(seconds=3600))
    r = await http.get(f"{GRAPH}/me")
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "InvalidAuthenticationToken"
    assert "www-authenticate" in r.headers
    fresh = (
        await refresh(http, session.client_id, session.client_secret, session.refresh_token)
    ).json()
    http.headers["Authorization"] = f"Bearer {fresh['access_token']}"
    assert (await http.get(f"{GRAPH}/me")).status_code == 200
    world.revoke(fresh["refresh_token"])
    assert (await http.get(f"{GRAPH}/me")).status_code == 401
    # A Google access token is no Graph token, and vice versa.
    await sign_in(world, http)
    assert (await http.get(f"{GRAPH}/me")).status_code == 401


async def test_one_user_granted_to_both_providers(world: World, http: httpx.AsyncClient) -> None:
    world.create_event(ALICE, {"summary": "Both", "start": {"dateTime": "2026-11-04T10:00:00Z"}})
    google = await sign_in(world, http)
    items = (await http.get("/calendar/v3/calendars/primary/events")).json()["items"]
    assert [i["summary"] for i in items] == ["Both"]
    await graph_sign_in(world, http)
    me = (await http.get(f"{GRAPH}/me")).json()
    assert me["mail"] == ALICE and me["displayName"] == "Alice"
    view = await http.get(
        f"{GRAPH}/me/calendarView",
        params={"startDateTime": "2026-11-01T00:00:00", "endDateTime": "2026-12-01T00:00:00"},
    )
    assert [e["subject"] for e in view.json()["value"]] == ["Both"]
    # The Google grant is untouched by the Microsoft one.
    http.headers["Authorization"] = f"Bearer {google.access_token}"
    assert (await http.get("/calendar/v3/calendars/primary/events")).status_code == 200
