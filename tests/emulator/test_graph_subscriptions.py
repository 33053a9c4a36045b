"""Graph subscriptions (PROTOCOLS §2.4, §5): the validationToken handshake, batched
change notifications with clientState, lifecycle events, renew/delete, expiry by the
world clock, and outbox chaos (drop, duplicate, reorder)."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from showup.clock import FakeClock
from showup.emulator import World
from showup.emulator.graph import graph_event_id, graph_user_id, subscriptions
from tests.emulator.conftest import ALICE, BOB, timed
from tests.emulator.test_graph_support import GRAPH, GraphSession, graph_sign_in, refresh

SUBS = f"{GRAPH}/subscriptions"


class Receiver:
    """The tenant side: echoes validation tokens, records notifications, answers statuses."""

    def __init__(self) -> None:
        self.validations: list[tuple[str, str]] = []  # (path, token)
        self.posts: list[tuple[str, dict[str, Any]]] = []  # (path, body)
        self.statuses: list[int] = []
        self.echo: str | None = None  # set: answer this instead of the token

        async def hook(request: Request) -> Response:
            token = request.query_params.get("validationToken")
            if token is not None:
                assert request.headers["content-type"].startswith("text/plain")
                self.validations.append((request.url.path, token))
                return PlainTextResponse(self.echo if self.echo is not None else token)
            self.posts.append((request.url.path, json.loads(await request.body())))
            return Response(status_code=self.statuses.pop(0) if self.statuses else 202)

        self.app = Starlette(
            routes=[Route("/hook", hook, methods=["POST"]), Route("/life", hook, methods=["POST"])]
        )

    def values(self, path: str = "/hook") -> list[dict[str, Any]]:
        return [item for p, body in self.posts if p == path for item in body["value"]]


@pytest.fixture
async def receiver(world: World) -> AsyncIterator[Receiver]:
    target = Receiver()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=target.app)) as client:
        world.outbox.client = client
        yield target
        world.outbox.client = None


def sub_body(world: World, **extra: Any) -> dict[str, Any]:
    expires = world.clock.now() + timedelta(days=2)
    return {
        "changeType": "created,updated,deleted",
        "notificationUrl": "https://showup.example/hook?tenant=t1",
        "lifecycleNotificationUrl": "https://showup.example/life",
        "resource": "me/events",
        "expirationDateTime": expires.isoformat().replace("+00:00", "Z"),
        "clientState": "s3cret",
        **extra,
    }


async def subscribe(world: World, session: GraphSession, **extra: Any) -> dict[str, Any]:
    r = await session.http.post(SUBS, json=sub_body(world, **extra))
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def test_handshake_then_batched_notifications(
    world: World, http: httpx.AsyncClient, receiver: Receiver
) -> None:
    session = await graph_sign_in(world, http)
    sub = await subscribe(world, session)
    assert sub["clientState"] == "s3cret" and sub["changeType"] == "created,updated,deleted"
    assert sub["applicationId"] == session.client_id
    assert sub["creatorId"] == graph_user_id(ALICE)
    # Both URLs were validated; the token arrives URL-decoded, spaces and all.
    assert [p for p, _ in receiver.validations] == ["/hook", "/life"]
    assert receiver.validations[0][1].startswith("Validation: Testing client")
    assert world.outbox.pending == []

    ev = world.create_event(ALICE, timed("2026-11-04T10:00:00", "2026-11-04T11:00:00"))["id"]
    world.update_event(ALICE, ev, {"summary": "renamed"})
    world.cancel_event(ALICE, ev)
    assert len(world.outbox.pending) == 1  # batched until delivered
    await world.outbox.deliver()
    ((path, body),) = receiver.posts
    assert path == "/hook"
    items = body["value"]
    assert [i["changeType"] for i in items] == ["created", "updated", "deleted"]
    gid = graph_event_id(world, ALICE, ev)
    for item in items:
        assert item["subscriptionId"] == sub["id"] and item["clientState"] == "s3cret"
        assert item["resource"] == f"Users/{graph_user_id(ALICE)}/Events/{gid}"
        assert item["resourceData"]["id"] == gid
        assert item["resourceData"]["@odata.type"] == "#Microsoft.Graph.Event"
        assert item["subscriptionExpirationDateTime"] == sub["expirationDateTime"]


async def test_change_type_filter_and_attendee_calendars(
    world: World, http: httpx.AsyncClient, receiver: Receiver
) -> None:
    bob = await graph_sign_in(world, http, BOB)
    await subscribe(world, bob, changeType="updated", resource=f"/users/{BOB}/events")
    ev = world.create_event(
        ALICE,
        {**timed("2026-11-04T10:00:00", "2026-11-04T11:00:00"), "attendees": [{"email": BOB}]},
    )["id"]
    world.create_event(ALICE, timed("2026-11-05T10:00:00", "2026-11-05T11:00:00"))  # not Bob's
    world.update_event(ALICE, ev, {"summary": "moved"})
    await world.outbox.deliver()
    items = receiver.values()
    assert [i["changeType"] for i in items] == ["updated"]
    assert items[0]["resourceData"]["id"] == graph_event_id(world, BOB, ev)


async def test_failed_validation_and_bad_bodies_are_400(
    world: World, http: httpx.AsyncClient, receiver: Receiver
) -> None:
    session = await graph_sign_in(world, http)
    receiver.echo = "not the token"
    r = await http.post(SUBS, json=sub_body(world))
    assert r.status_code == 400 and "validation" in r.json()["error"]["message"].lower()
    receiver.echo = None
    far = (world.clock.now() + timedelta(minutes=10081)).isoformat()
    for bad in (
        {"expirationDateTime": far},
        {"expirationDateTime": "2020-01-01T00:00:00Z"},
        {"changeType": "moved"},
        {"notificationUrl": "http://showup.example/hook"},  # not HTTPS, not a test host
        {"clientState": "x" * 129},
        {"resource": "me/messages"},
        {"lifecycleNotificationUrl": "https://unreachable.example/nope"},
    ):
        r = await http.post(SUBS, json=sub_body(world, **bad))
        assert r.status_code == 400, (bad, r.text)
    assert subscriptions(world).subscriptions == {}
    # A short expiry is raised to 45 minutes.
    soon = (world.clock.now() + timedelta(minutes=5)).isoformat()
    sub = await subscribe(world, session, expirationDateTime=soon)
    assert sub["expirationDateTime"] == "2026-11-02T09:45:00.0000000Z"


async def test_renew_delete_and_expiry_by_the_clock(
    world: World, http: httpx.AsyncClient, receiver: Receiver, clock: FakeClock
) -> None:
    session = await graph_sign_in(world, http)
    sub = await subscribe(world, session, lifecycleNotificationUrl=None)
    url = f"{SUBS}/{sub['id']}"
    later = (clock.now() + timedelta(minutes=10080)).isoformat()
    r = await http.patch(url, json={"expirationDateTime": later})
    assert r.status_code == 200 and r.json()["expirationDateTime"].startswith("2026-11-09T09:00")
    too_far = (clock.now() + timedelta(minutes=10081)).isoformat()
    assert (await http.patch(url, json={"expirationDateTime": too_far})).status_code == 400
    assert [s["id"] for s in (await http.get(SUBS)).json()["value"]] == [sub["id"]]

    clock.advance(timedelta(minutes=10080))
    world.create_event(ALICE, timed("2026-11-10T10:00:00", "2026-11-10T11:00:00"))
    assert world.outbox.pending == []  # expired: no notifications
    assert (await http.get(url)).status_code == 401  # (the access token expired as well)
    await refresh_session(session)
    r = await http.get(url)
    assert r.status_code == 404 and r.json()["error"]["code"] == "ResourceNotFound"

    second = await subscribe(world, session)
    assert (await http.delete(f"{SUBS}/{second['id']}")).status_code == 204
    assert (await http.delete(f"{SUBS}/{second['id']}")).status_code == 404
    world.create_event(ALICE, timed("2026-11-11T10:00:00", "2026-11-11T11:00:00"))
    assert world.outbox.pending == []


async def refresh_session(session: GraphSession) -> None:
    r = await refresh(session.http, session.client_id, session.client_secret, session.refresh_token)
    session.refresh_token = r.json()["refresh_token"]
    session.http.headers["Authorization"] = f"Bearer {r.json()['access_token']}"


async def test_lifecycle_events(
    world: World, http: httpx.AsyncClient, receiver: Receiver, clock: FakeClock
) -> None:
    session = await graph_sign_in(world, http)
    sub = await subscribe(world, session)
    hub = subscriptions(world)

    clock.advance(timedelta(days=2) - timedelta(minutes=59))
    await world.outbox.deliver()  # delivery rounds apply the clock first
    await world.outbox.deliver()
    (event,) = receiver.values("/life")
    assert event["lifecycleEvent"] == "reauthorizationRequired"
    assert event["clientState"] == "s3cret" and event["subscriptionId"] == sub["id"]
    await refresh_session(session)
    later = (clock.now() + timedelta(days=3)).isoformat()
    assert (
        await http.patch(f"{SUBS}/{sub['id']}", json={"expirationDateTime": later})
    ).status_code == 200

    # A notification the endpoint refuses is given up, and Graph says "missed".
    receiver.statuses = [400]
    world.create_event(ALICE, timed("2026-11-04T10:00:00", "2026-11-04T11:00:00"))
    await world.outbox.deliver()
    await world.outbox.deliver()
    assert [e["lifecycleEvent"] for e in receiver.values("/life")][-1] == "missed"

    hub.lifecycle(sub["id"], "missed")
    world.revoke(session.refresh_token)
    await world.outbox.deliver()
    events = [e["lifecycleEvent"] for e in receiver.values("/life")]
    assert events[-2:] == ["missed", "subscriptionRemoved"]
    assert hub.subscriptions == {}


async def test_outbox_drop_duplicate_reorder(
    world: World, http: httpx.AsyncClient, receiver: Receiver
) -> None:
    alice = await graph_sign_in(world, http)
    await subscribe(world, alice, lifecycleNotificationUrl=None)
    await subscribe(world, alice, lifecycleNotificationUrl=None, clientState="second")

    def change(n: int) -> None:
        world.create_event(ALICE, timed(f"2026-11-{n:02d}T10:00:00", f"2026-11-{n:02d}T11:00:00"))

    world.outbox.drop(1, label="graph")
    change(4)
    await world.outbox.deliver()
    assert len(receiver.posts) == 1 and len(world.outbox.dropped) == 1

    world.outbox.duplicate(1, label="graph-notification")
    change(5)
    await world.outbox.deliver()
    states = [body["value"][0]["clientState"] for _, body in receiver.posts[1:]]
    assert states == ["s3cret", "s3cret", "second"]

    world.outbox.reorder(True)
    change(6)
    await world.outbox.deliver()
    states = [body["value"][0]["clientState"] for _, body in receiver.posts[4:]]
    assert states == ["second", "s3cret"]
    assert world.outbox.state()["reorder"] is True


@pytest.fixture
def loopback() -> Iterator[tuple[str, Receiver]]:
    """A receiver on a real loopback port (uvicorn in a thread)."""
    target = Receiver()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(target.app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(500):
        if server.started:
            break
        threading.Event().wait(0.01)
    yield f"http://127.0.0.1:{port}", target
    server.should_exit = True
    thread.join(5)
    sock.close()


async def test_real_http_handshake_and_delivery(
    world: World, http: httpx.AsyncClient, loopback: tuple[str, Receiver]
) -> None:
    base, target = loopback
    session = await graph_sign_in(world, http)
    body = sub_body(world, notificationUrl=f"{base}/hook", lifecycleNotificationUrl=f"{base}/life")
    r = await session.http.post(SUBS, json=body)
    assert r.status_code == 201, r.text
    world.create_event(ALICE, timed("2026-11-04T10:00:00", "2026-11-04T11:00:00"))
    await world.outbox.deliver()  # no client given: real HTTP
    await asyncio.sleep(0)
    assert [i["changeType"] for i in target.values()] == ["created"]
