"""OAuth (PROTOCOLS §1.1) and API authentication (§1.6 401 authError)."""

from __future__ import annotations

from datetime import timedelta

import httpx

from showup.clock import FakeClock
from showup.emulator import World
from tests.emulator.conftest import ALICE, Session

CAL_LIST = "/calendar/v3/users/me/calendarList"


def refresh_form(s: Session, **overrides: str) -> dict[str, str]:
    form = {
        "grant_type": "refresh_token",
        "refresh_token": s.refresh_token,
        "client_id": s.client_id,
        "client_secret": s.client_secret,
    }
    form.update(overrides)
    return form


async def test_refresh_answers_a_bearer_token(alice: Session) -> None:
    body = (await alice.http.post("/token", data=refresh_form(alice))).json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3599
    assert "calendar" in body["scope"] and body["access_token"].startswith("ya29.")
    assert "refresh_token" not in body  # Google does not rotate on refresh


async def test_wrong_secret_is_invalid_client(alice: Session) -> None:
    r = await alice.http.post("/token", data=refresh_form(alice, client_secret="nope"))
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"


async def test_client_credentials_may_come_as_basic_auth(alice: Session) -> None:
    form = refresh_form(alice)
    auth = httpx.BasicAuth(form.pop("client_id"), form.pop("client_secret"))
    r = await alice.http.post("/token", data=form, auth=auth)
    assert r.status_code == 200


async def test_revoked_grant_is_invalid_grant_and_kills_access_tokens(
    world: World, alice: Session
) -> None:
    assert (await alice.http.get(CAL_LIST)).status_code == 200
    world.revoke(alice.refresh_token)
    r = await alice.http.post("/token", data=refresh_form(alice))
    assert r.status_code == 400
    assert r.json() == {
        "error": "invalid_grant",
        "error_description": "Token has been expired or revoked.",
    }
    r = await alice.http.get(CAL_LIST)
    assert r.status_code == 401
    assert r.json()["error"]["errors"][0]["reason"] == "authError"


async def test_unknown_refresh_token_and_bad_grant_type(alice: Session) -> None:
    r = await alice.http.post("/token", data=refresh_form(alice, refresh_token="1//nope"))
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    r = await alice.http.post("/token", data=refresh_form(alice, grant_type="password"))
    assert r.status_code == 400 and r.json()["error"] == "unsupported_grant_type"


async def test_revoke_endpoint_revokes_the_grant(alice: Session) -> None:
    r = await alice.http.post("/revoke", params={"token": alice.access_token})
    assert r.status_code == 200
    assert (await alice.http.post("/token", data=refresh_form(alice))).status_code == 400
    r = await alice.http.post("/revoke", params={"token": "unknown"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_token"


async def test_access_token_expires_by_the_clock(
    world: World, alice: Session, clock: FakeClock
) -> None:
    clock.advance(timedelta(seconds=3598))
    assert (await alice.http.get(CAL_LIST)).status_code == 200
    clock.advance(timedelta(seconds=1))
    r = await alice.http.get(CAL_LIST)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert r.json()["error"]["code"] == 401
    # A refresh still works: only the access token aged out.
    assert (await alice.http.post("/token", data=refresh_form(alice))).status_code == 200


async def test_missing_credentials_are_401(http: httpx.AsyncClient) -> None:
    assert (await http.get(CAL_LIST)).status_code == 401
    r = await http.get(CAL_LIST, headers={"Authorization": "Bearer ya29.forged"})
    assert r.status_code == 401


async def test_a_grant_sees_only_its_users_calendars(world: World, alice: Session) -> None:
    body = (await alice.http.get(CAL_LIST)).json()
    assert [c["id"] for c in body["items"]] == [ALICE]
