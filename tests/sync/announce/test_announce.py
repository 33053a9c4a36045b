"""Calendar webhooks from sync: ``calendar.sync_events`` and ``calendar.update``, as Recall
sends them, in the same transaction as the change, never before the create call answered."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx

from showup.calendars import service
from tests.bots.support import Receiver, add_endpoint, verify
from tests.sync.helpers import Connector, all_events

ALICE = "alice@example.com"


def seed(world: Any) -> str:
    world.add_user(ALICE, name="Alice", time_zone="UTC")
    ev = world.create_event(
        ALICE,
        {
            "summary": "Zoom call",
            "start": {"dateTime": "2026-11-03T15:00:00Z"},
            "end": {"dateTime": "2026-11-03T16:00:00Z"},
            "location": "https://acme.zoom.us/j/123456789",
        },
    )
    return str(ev["id"])


def calendar_messages(receiver: Receiver, secret: str) -> list[dict[str, Any]]:
    out = []
    for req in receiver.requests:
        body = verify(secret, req)
        if body["type"].startswith("calendar."):
            out.append(body)
    return out


async def test_first_sync_announces_events_then_connected(
    api: httpx.AsyncClient,
    world: Any,
    worker: Any,
    runtime: Any,
    tenant: Any,
    receiver: Receiver,
    clock: Any,
) -> None:
    secret = await add_endpoint(runtime, tenant.tenant_id)
    seed(world)
    cid = await Connector(api, world).connect(ALICE)
    await worker.drain()  # sync, then deliveries
    # Standard Webhooks promises no order between messages: match them by type.
    msgs = {m["event"]: m for m in calendar_messages(receiver, secret)}
    assert sorted(msgs) == ["calendar.sync_events", "calendar.update"]
    sync_msg = msgs["calendar.sync_events"]
    assert sync_msg["data"]["calendar_id"] == cid
    ts = sync_msg["data"]["last_updated_ts"]
    assert ts is not None
    # Fetching with the announced timestamp returns every announced event.
    events = await all_events(api, calendar_id=cid, updated_at__gte=ts)
    assert [e["title"] for e in events] == ["Zoom call"]
    assert all(e["updated_at"] >= ts for e in events)
    assert msgs["calendar.update"]["data"] == {"calendar_id": cid}

    # An incremental change is announced once more; a quiet sync announces nothing.
    receiver.requests.clear()
    clock.advance(timedelta(minutes=5))
    await worker.drain()
    assert calendar_messages(receiver, secret) == []


async def test_changes_and_disconnect_are_announced_to_endpoint_and_calendar_url(
    api: httpx.AsyncClient,
    world: Any,
    worker: Any,
    runtime: Any,
    tenant: Any,
    receiver: Receiver,
    clock: Any,
) -> None:
    secret = await add_endpoint(runtime, tenant.tenant_id)
    gid = seed(world)
    conn = Connector(api, world)
    cid = await conn.connect(ALICE)
    r = await api.patch(
        f"/api/v2/calendars/{cid}/", json={"webhook_url": "http://127.0.0.1:9/calendar-hook"}
    )
    assert r.status_code == 200
    await worker.drain()
    receiver.requests.clear()

    world.cancel_event(ALICE, gid)
    clock.advance(timedelta(minutes=5))
    await worker.drain()
    by_url: dict[str, list[str]] = {}
    for req in receiver.requests:
        by_url.setdefault(req.url, []).append(req.json["event"])
    assert by_url["http://127.0.0.1:9/hook"] == ["calendar.sync_events"]
    assert by_url["http://127.0.0.1:9/calendar-hook"] == ["calendar.sync_events"]
    tenant_secret = (await api.get("/api/v2/webhook-secret/")).json()["secret"]
    for req in receiver.requests:
        verify(secret if req.url.endswith("/hook") else tenant_secret, req)

    receiver.requests.clear()
    world.revoke(conn.refresh_tokens[ALICE])
    clock.advance(timedelta(minutes=5))
    await worker.drain()
    got = sorted(
        (req.url, verify(secret if req.url.endswith("/hook") else tenant_secret, req)["event"])
        for req in receiver.requests
    )
    assert got == [
        ("http://127.0.0.1:9/calendar-hook", "calendar.update"),
        ("http://127.0.0.1:9/hook", "calendar.update"),
    ]


async def test_first_sync_waits_for_the_create_call_to_answer(
    world: Any, worker: Any, runtime: Any, tenant: Any, clock: Any
) -> None:
    seed(world)
    client_id, client_secret = world.add_oauth_client()
    async with runtime.sessions() as session:
        cal = await service.create_calendar(
            session,
            clock,
            runtime.vault,
            tenant.tenant_id,
            service.NewCalendar(
                platform="google_calendar",
                oauth_client_id=client_id,
                oauth_client_secret=client_secret,
                oauth_refresh_token=world.grant(client_id, ALICE),
            ),
        )
        await session.commit()
    # Created but not yet answered: not due.
    assert await worker.drain() == []
    # The step run after the answer makes it due at once.
    async with runtime.sessions() as session:
        await service.release_first_sync(session, cal.id, clock.now())
        await session.commit()
    assert [getattr(o, "result", None) for o in await worker.drain()] == ["synced"]


async def test_lost_release_step_still_syncs_after_the_grace(
    world: Any, worker: Any, runtime: Any, tenant: Any, clock: Any
) -> None:
    seed(world)
    client_id, client_secret = world.add_oauth_client()
    async with runtime.sessions() as session:
        await service.create_calendar(
            session,
            clock,
            runtime.vault,
            tenant.tenant_id,
            service.NewCalendar(
                platform="google_calendar",
                oauth_client_id=client_id,
                oauth_client_secret=client_secret,
                oauth_refresh_token=world.grant(client_id, ALICE),
            ),
        )
        await session.commit()
    clock.advance(service.FIRST_SYNC_GRACE)
    assert [getattr(o, "result", None) for o in await worker.drain()] == ["synced"]
