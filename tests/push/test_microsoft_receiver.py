"""``POST /push/microsoft`` and ``/push/microsoft/lifecycle``: what is accepted, refused and
ignored (PROTOCOLS §2.4, DESIGN invariant 8). Requests are built by hand here, shaped as
Graph sends them; the emulator's own deliveries are used where the flow matters."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from showup.jobs.worker import Worker
from showup.push.secrets import channel_token, new_channel_id
from tests.push.graph_support import (
    ALICE,
    LIFECYCLE_URL,
    URL,
    Graph,
    change,
    connect_outlook,
    event,
    lifecycle_item,
    syncs,
)
from tests.push.support import calendar, channels, counting_sql


async def _open(
    api: httpx.AsyncClient, world: Any, worker: Worker, clock: Any, graph: Graph
) -> tuple[str, str, str, str]:
    """A connected calendar on the 24 h schedule: (calendar, channel, subscription, state)."""
    world.add_user(ALICE, name="Alice")
    cid = await connect_outlook(api, world)
    await worker.drain()
    clock.advance(timedelta(minutes=5))
    await worker.drain()
    [sub] = graph.live()
    channel = sub.notification_url.split("channel=")[1]
    assert sub.client_state is not None
    return cid, channel, sub.id, sub.client_state


async def test_the_validation_handshake_is_echoed_without_any_work(
    graph: Graph, runtime: Any
) -> None:
    ours = new_channel_id("6f1c1a44-1c43-4a7a-9a43-4f8d3ad3b1e0")  # no such row: not needed
    token = "Validation: Testing client application reachability for subscription Request-Id: 1"
    for url in (URL, LIFECYCLE_URL):
        r = await graph.client.post(url, params={"channel": ours, "validationToken": token})
        assert (r.status_code, r.text) == (200, token)
        assert r.headers["content-type"].startswith("text/plain")
        assert r.headers["x-content-type-options"] == "nosniff"
    for params in (
        {"channel": ours, "validationToken": "x" * 1025},
        {"channel": ours, "validationToken": "line\nbreak"},
        {"channel": ours, "validationToken": "<script>\u00e9</script>"},
        {"validationToken": token},  # not a URL of ours
        {"channel": "someone-else", "validationToken": token},
    ):
        r = await graph.client.post(URL, params=params)
        assert r.status_code == 400 and r.json()["code"] == "invalid_validation_request"
    assert await channels(runtime) == []


async def test_a_wrong_client_state_is_refused_logged_and_changes_nothing(
    api: httpx.AsyncClient,
    world: Any,
    worker: Worker,
    clock: Any,
    runtime: Any,
    graph: Graph,
    caplog: pytest.LogCaptureFixture,
) -> None:
    cid, channel, sub_id, state = await _open(api, world, worker, clock, graph)
    before = await calendar(runtime, cid)
    [row_before] = await channels(runtime, cid)
    caplog.set_level(logging.INFO, logger="showup.push")
    for items, lifecycle in (
        ([change(sub_id, "not-the-state")], False),
        ([change(sub_id, state[:-1])], False),
        ([change(sub_id, None)], False),
        ([change(sub_id, state), change(sub_id, "forged")], False),  # every item counts
        ([lifecycle_item(sub_id, "forged", "subscriptionRemoved")], True),
        ([lifecycle_item(sub_id, "forged", "reauthorizationRequired")], True),
    ):
        r = await graph.post(items, channel=channel, lifecycle=lifecycle)
        assert r.status_code == 401 and r.json()["code"] == "invalid_client_state"
    after = await calendar(runtime, cid)
    assert (after.next_sync_at, after.sync_requested_at) == (before.next_sync_at, None)
    [row] = await channels(runtime, cid)
    assert (row.status, row.renew_at, row.last_notification_at) == (
        "active",
        row_before.renew_at,
        row_before.last_notification_at,
    )
    assert "wrong clientState" in caplog.text
    assert state not in caplog.text and "not-the-state" not in caplog.text
    assert await worker.drain() == []


async def test_unknown_channels_and_subscriptions_get_202_and_are_ignored(
    api: httpx.AsyncClient,
    world: Any,
    worker: Worker,
    clock: Any,
    runtime: Any,
    graph: Graph,
    caplog: pytest.LogCaptureFixture,
) -> None:
    cid, channel, sub_id, state = await _open(api, world, worker, clock, graph)
    caplog.set_level(logging.INFO, logger="showup.push")
    forged_ours = new_channel_id(cid)  # looks like ours; its state does not prove it
    for target, item in (
        (None, change(sub_id, state)),
        ("someone-elses", change(sub_id, state)),
        (forged_ours, change("sub-x", "state")),
        (forged_ours, change("sub-x", None)),
        (channel, change("another-subscription", state)),  # ours, but not this row's
    ):
        r = await graph.post([item], channel=target)
        assert r.status_code == 202  # so that Graph does not retry
    assert len(await channels(runtime)) == 1
    assert (await calendar(runtime, cid)).sync_requested_at is None
    assert "without a channel id of ours ignored" in caplog.text
    assert "items of another subscription ignored" in caplog.text
    assert [o for o in await worker.drain() if type(o).__name__ == "SyncOutcome"] == []


async def test_a_stray_subscription_of_ours_is_deleted(
    api: httpx.AsyncClient, world: Any, worker: Worker, clock: Any, runtime: Any, graph: Graph
) -> None:
    """A subscription Graph created but we never recorded (a crash before our commit)."""
    cid, _, sub_id, _ = await _open(api, world, worker, clock, graph)
    cal = await calendar(runtime, cid)
    provider = runtime.provider("microsoft_outlook")
    stray_id = new_channel_id(cid)
    secret = channel_token(runtime.settings.master_key_bytes(), stray_id)
    stray = await provider.watch(
        await _access(runtime, cal), "primary", stray_id, URL, secret, timedelta(days=1)
    )
    assert len(graph.live()) == 2
    world.create_event(ALICE, event("Seen twice"))
    assert sorted(s for _, s in await graph.deliver()) == [202, 202]
    [row] = [r for r in await channels(runtime, cid) if r.channel_id == stray_id]
    assert (row.status, row.resource_id) == ("stopping", stray.resource_id)
    await worker.drain()
    assert [s.id for s in graph.live()] == [sub_id]
    assert [r.status for r in await channels(runtime, cid) if r.channel_id == stray_id] == [
        "stopped"
    ]


async def _access(runtime: Any, cal: Any) -> Any:
    from showup.calendars.service import credentials

    grant = await runtime.provider(cal.platform).refresh_access_token(
        credentials(cal, runtime.vault)
    )

    async def token(force: bool = False) -> str:
        return str(grant.token)

    return token


async def test_malformed_and_oversized_bodies_are_refused(
    api: httpx.AsyncClient, world: Any, worker: Worker, clock: Any, runtime: Any, graph: Graph
) -> None:
    cid, channel, sub_id, state = await _open(api, world, worker, clock, graph)
    raw = graph.client
    params = {"channel": channel}
    good = change(sub_id, state)

    async def post(body: Any, url: str = URL, **headers: str) -> httpx.Response:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return await raw.post(url, params=params, content=content, headers=headers)

    for body in (
        b"",
        b"not json",
        b"\xff\xfe",
        b"[" * 100_000 + b"]" * 100_000,
        [good],
        {"value": "x"},
        {"value": []},
        {"value": [good] * 1001},
        {"value": ["item"]},
        {"value": [{**good, "subscriptionId": None}]},
        {"value": [{**good, "subscriptionId": "a b"}]},
        {"value": [{**good, "clientState": "s" * 129}]},
        {"value": [{**good, "clientState": 7}]},
        {"value": [{**good, "changeType": None}]},
        {"value": [{**good, "lifecycleEvent": "missed"}]},  # lifecycle, at the wrong URL
    ):
        r = await post(body)
        assert r.status_code == 400, (str(body)[:80], r.text)
        assert r.json()["code"] == "invalid_notification"
    r = await post({"value": [good]}, LIFECYCLE_URL)  # a change at the lifecycle URL
    assert r.status_code == 400

    huge = {"value": [{**good, "padding": "x" * (1 << 20)}]}
    assert (await post(huge)).status_code == 413

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(40):
            yield b" " * 32_768  # no declared length; over the limit as it streams

    r = await raw.post(URL, params=params, content=chunks())
    assert r.status_code == 413 and r.json()["code"] == "payload_too_large"
    assert (await post({"value": [good]}, **{"Content-Length": "ten"})).status_code == 400
    assert (await calendar(runtime, cid)).sync_requested_at is None
    assert (await raw.get(URL, params=params)).status_code == 405
    assert (await post({"value": [good]})).status_code == 202


async def test_a_batch_is_one_sync_and_floods_are_limited_without_losing_the_last_change(
    api: httpx.AsyncClient, world: Any, worker: Worker, clock: Any, runtime: Any, graph: Graph
) -> None:
    runtime.settings.push_rate_burst = 2
    runtime.settings.push_rate_interval = timedelta(seconds=10)
    cid, channel, sub_id, state = await _open(api, world, worker, clock, graph)
    now = clock.now()
    for day in (12, 13, 14):  # batched by Graph into one POST
        world.create_event(ALICE, event(f"Batched {day}", day))
    assert await graph.deliver() == [("graph-notification", 202)]
    [outcome] = syncs(await worker.drain())
    assert (outcome.result, outcome.inserted) == ("synced", 3)

    world.create_event(ALICE, event("Second", 15))  # the burst's second token
    assert await graph.deliver() == [("graph-notification", 202)]
    assert len(syncs(await worker.drain())) == 1
    world.create_event(ALICE, event("Throttled", 20))
    await graph.deliver()
    for _ in range(50):  # a flood of (replayed) notifications: one delayed request
        r = await graph.post([change(sub_id, state)] * 20, channel=channel)
        assert r.status_code == 202
    world.create_event(ALICE, event("Last", 21))
    await graph.deliver()
    assert (await calendar(runtime, cid)).next_sync_at == now + timedelta(seconds=10)
    assert syncs(await worker.drain()) == []
    clock.advance(timedelta(seconds=10))
    [outcome] = syncs(await worker.drain())
    assert (outcome.result, outcome.inserted) == ("synced", 2)
    assert syncs(await worker.drain()) == []


async def test_late_notifications_of_a_stopped_subscription_are_ignored(
    api: httpx.AsyncClient, world: Any, worker: Worker, clock: Any, runtime: Any, graph: Graph
) -> None:
    cid, channel, sub_id, state = await _open(api, world, worker, clock, graph)
    graph.lifecycle("subscriptionRemoved")
    await graph.deliver()
    await worker.drain()  # a new subscription, and the resync
    for items, lifecycle in (
        ([change(sub_id, state)], False),
        ([lifecycle_item(sub_id, state, "missed")], True),
        ([lifecycle_item(sub_id, state, "reauthorizationRequired")], True),
        ([lifecycle_item(sub_id, state, "someFutureEvent")], True),
    ):
        assert (await graph.post(items, channel=channel, lifecycle=lifecycle)).status_code == 202
    assert (await calendar(runtime, cid)).sync_requested_at is None
    assert [r.status for r in await channels(runtime, cid)] == ["stopped", "active"]
    assert await worker.drain() == []


async def test_accepted_changes_take_one_transaction_of_two_statements(
    api: httpx.AsyncClient, world: Any, worker: Worker, clock: Any, runtime: Any, graph: Graph
) -> None:
    """The channel notes the time and hands back its clientState in one statement; the
    sync request is the other, however many items the POST carries."""
    cid, channel, sub_id, state = await _open(api, world, worker, clock, graph)
    items = [change(sub_id, state, kind) for kind in ("created", "updated", "deleted")]
    with counting_sql(runtime) as seen:
        r = await graph.post(items, channel=channel)
    assert r.status_code == 202
    assert seen == {"transactions": 1, "statements": 2}
    assert (await calendar(runtime, cid)).sync_requested_at == clock.now()
    [row] = await channels(runtime, cid)
    assert row.last_notification_at == clock.now()
    # Coalesced into the sync already requested: the channel still notes the time.
    clock.advance(timedelta(seconds=1))
    assert (await graph.post(items[:1], channel=channel)).status_code == 202
    [row] = await channels(runtime, cid)
    assert row.last_notification_at == clock.now()
    assert (await calendar(runtime, cid)).sync_requested_at == clock.now() - timedelta(seconds=1)
