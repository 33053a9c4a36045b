"""Push channels (PROTOCOLS §1.5, §5): watch, the sync message, gapped exists pings,
channel token and expiration headers, stop, and delivery through the world's outbox."""

from __future__ import annotations

from datetime import timedelta

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from showup.clock import FakeClock
from showup.emulator import World
from tests.emulator.conftest import ALICE, Session, timed

WATCH = "/calendar/v3/calendars/primary/events/watch"


def receiver(statuses: list[int]) -> tuple[Starlette, list[dict[str, str]]]:
    """A tenant-side endpoint that records pings and answers the given statuses in turn."""
    seen: list[dict[str, str]] = []

    async def hook(request: Request) -> Response:
        assert await request.body() == b""
        seen.append(dict(request.headers))
        return Response(status_code=statuses.pop(0) if statuses else 200)

    return Starlette(routes=[Route("/hook", hook, methods=["POST"])]), seen


async def test_watch_sync_then_exists_pings(world: World, alice: Session) -> None:
    r = await alice.http.post(
        WATCH,
        json={
            "id": "chan-1",
            "type": "web_hook",
            "address": "https://showup.example/hook",
            "token": "t0k",
        },
    )
    assert r.status_code == 200, r.text
    channel = r.json()
    assert channel["kind"] == "api#channel" and channel["id"] == "chan-1"
    assert channel["token"] == "t0k" and int(channel["expiration"]) > 0

    world.create_event(ALICE, timed("2026-11-04T10:00:00", "2026-11-04T11:00:00"))
    world.create_event(ALICE, timed("2026-11-05T10:00:00", "2026-11-05T11:00:00"))

    target, seen = receiver([503])  # first delivery fails: Google retries 5xx
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=target)) as client:
        await world.outbox.deliver(client)
        assert len(world.outbox.pending) == 1  # the sync message, kept for a retry
        await world.outbox.deliver(client)
    assert world.outbox.pending == []
    states = [h["x-goog-resource-state"] for h in seen]
    numbers = [int(h["x-goog-message-number"]) for h in seen]
    assert states == ["sync", "exists", "exists", "sync"]  # the retried sync comes last
    assert numbers[0] == 1 and numbers[1] < numbers[2] and numbers[2] - numbers[1] > 1
    first = seen[0]
    assert first["x-goog-channel-id"] == "chan-1"
    assert first["x-goog-channel-token"] == "t0k"
    assert first["x-goog-resource-id"] == channel["resourceId"]
    assert first["x-goog-channel-expiration"].endswith(" GMT")
    assert first["user-agent"] == "APIs-Google"
    assert first["content-length"] == "0"


async def test_watch_validation(alice: Session) -> None:
    bad = [
        {"id": "x" * 65, "type": "web_hook", "address": "https://a.example/h"},
        {"id": "ok", "type": "email", "address": "https://a.example/h"},
        {"id": "ok", "type": "web_hook", "address": "http://a.example/h"},  # not HTTPS
        {"id": "ok", "type": "web_hook", "address": "https://a.example/h", "token": "t" * 257},
    ]
    for body in bad:
        assert (await alice.http.post(WATCH, json=body)).status_code == 400
    # Reserved test hosts may use plain HTTP (§5 "Test mode").
    ok = {"id": "ok", "type": "web_hook", "address": "http://showup.test/h"}
    assert (await alice.http.post(WATCH, json=ok)).status_code == 200
    assert (await alice.http.post(WATCH, json=ok)).status_code == 400  # id not unique


async def test_stop_and_expiry_end_pings(world: World, alice: Session, clock: FakeClock) -> None:
    one = (
        await alice.http.post(
            WATCH, json={"id": "a", "type": "web_hook", "address": "https://h.example/1"}
        )
    ).json()
    await alice.http.post(
        WATCH,
        json={
            "id": "b",
            "type": "web_hook",
            "address": "https://h.example/2",
            "params": {"ttl": "3600"},
        },
    )
    world.outbox.clear()

    r = await alice.http.post(
        "/calendar/v3/channels/stop", json={"id": "a", "resourceId": one["resourceId"]}
    )
    assert r.status_code == 204
    r = await alice.http.post("/calendar/v3/channels/stop", json={"id": "a", "resourceId": "nope"})
    assert r.status_code == 404

    world.create_event(ALICE, timed("2026-11-04T10:00:00", "2026-11-04T11:00:00"))
    assert [m.url for m in world.outbox.pending] == ["https://h.example/2"]
    clock.advance(timedelta(hours=1))
    world.create_event(ALICE, timed("2026-11-05T10:00:00", "2026-11-05T11:00:00"))
    assert len(world.outbox.pending) == 1  # channel b expired after its ttl


async def test_transport_errors_are_retried(world: World, alice: Session) -> None:
    await alice.http.post(
        WATCH, json={"id": "c", "type": "web_hook", "address": "https://down.example/"}
    )

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as client:
        await world.outbox.deliver(client)
    assert len(world.outbox.pending) == 1 and world.outbox.pending[0].statuses == [None]
