"""Fault injection (PROTOCOLS §1.6, §5): rate limits with Retry-After, backend errors,
latency on the world's clock, token-endpoint failures; one use per matching request."""

from __future__ import annotations

from datetime import timedelta

import pytest

from showup.clock import FakeClock
from showup.emulator import World
from tests.emulator.conftest import Session

EVENTS = "/calendar/v3/calendars/primary/events"


@pytest.mark.parametrize(
    ("status", "reason", "domain"),
    [
        (429, "rateLimitExceeded", "usageLimits"),
        (403, "rateLimitExceeded", "usageLimits"),
        (403, "userRateLimitExceeded", "usageLimits"),
        (500, "backendError", "global"),
        (503, "backendError", "global"),
    ],
)
async def test_status_faults_in_googles_shape(
    world: World, alice: Session, status: int, reason: str, domain: str
) -> None:
    world.faults.add(status=status, times=1, path_contains="/events", retry_after=2, reason=reason)
    r = await alice.http.get(EVENTS)
    assert r.status_code == status
    assert r.headers["Retry-After"] == "2"
    err = r.json()["error"]
    assert err["code"] == status
    assert err["errors"][0]["reason"] == reason and err["errors"][0]["domain"] == domain
    assert (await alice.http.get(EVENTS)).status_code == 200  # consumed


async def test_default_reason_and_no_retry_after(world: World, alice: Session) -> None:
    world.faults.add(status=429)
    r = await alice.http.get(EVENTS)
    assert r.status_code == 429 and "Retry-After" not in r.headers
    assert r.json()["error"]["errors"][0]["reason"] == "rateLimitExceeded"


async def test_faults_match_by_path_and_count(world: World, alice: Session) -> None:
    fault = world.faults.add(status=503, times=2, path_contains="/events")
    assert (await alice.http.get("/calendar/v3/users/me/calendarList")).status_code == 200
    assert (await alice.http.get(EVENTS)).status_code == 503
    assert (await alice.http.get(EVENTS)).status_code == 503
    assert (await alice.http.get(EVENTS)).status_code == 200
    assert fault.hits == 2


async def test_forever_faults_until_cleared(world: World, alice: Session) -> None:
    world.faults.add(status=500, times=None)
    for _ in range(3):
        assert (await alice.http.get(EVENTS)).status_code == 500
    world.faults.clear()
    assert (await alice.http.get(EVENTS)).status_code == 200


async def test_latency_is_spent_on_the_fake_clock(
    world: World, alice: Session, clock: FakeClock
) -> None:
    before = clock.now()
    world.faults.add(latency=timedelta(seconds=30), path_contains="/events")
    assert (await alice.http.get(EVENTS)).status_code == 200
    assert clock.now() - before == timedelta(seconds=30)


async def test_token_endpoint_faults_use_oauth_bodies(world: World, alice: Session) -> None:
    world.faults.add(status=503, path_contains="/token", retry_after=1.5)
    form = {
        "grant_type": "refresh_token",
        "refresh_token": alice.refresh_token,
        "client_id": alice.client_id,
        "client_secret": alice.client_secret,
    }
    r = await alice.http.post("/token", data=form)
    assert r.status_code == 503 and r.headers["Retry-After"] == "1.5"
    assert r.json()["error"] == "server_error"
    assert (await alice.http.post("/token", data=form)).status_code == 200


async def test_control_api_is_never_faulted(world: World, alice: Session) -> None:
    world.faults.add(status=500, times=None)
    assert (await alice.http.get("/_emulator/health")).status_code == 200
