"""Graph subscriptions end to end (PROTOCOLS §2.4), on SQLite and PostgreSQL: created on
the first sync after a real validation handshake with our app, renewed in place by PATCH
before expiry (never a gap), and each lifecycle event: ``reauthorizationRequired`` renews,
``subscriptionRemoved`` recreates and resyncs, ``missed`` resyncs. The emulator is the
other side; the FakeClock moves, nothing sleeps."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx

from showup.jobs.worker import Worker
from tests.push.graph_support import (
    ALICE,
    URL,
    Graph,
    actions,
    connect_outlook,
    event,
    syncs,
)
from tests.push.support import calendar, channels

LIFE = timedelta(minutes=10080 - 2)  # the maximum, less the clock-skew allowance


async def _settled(
    api: httpx.AsyncClient, world: Any, worker: Worker, clock: Any, runtime: Any
) -> str:
    """Connected, subscription open, and on the 24 h schedule."""
    world.add_user(ALICE, name="Alice")
    cid = await connect_outlook(api, world)
    assert actions(await worker.drain()) == ["created"]
    clock.advance(timedelta(minutes=5))
    await worker.drain()
    assert (await calendar(runtime, cid)).next_sync_at == clock.now() + timedelta(hours=24)
    return cid


async def test_first_sync_opens_a_subscription_validated_by_our_app(
    api: httpx.AsyncClient, world: Any, worker: Worker, clock: Any, runtime: Any, graph: Graph
) -> None:
    t0 = clock.now()
    world.add_user(ALICE, name="Alice")
    cid = await connect_outlook(api, world)
    outcomes = await worker.drain()
    assert sorted(type(o).__name__ for o in outcomes) == ["ChannelOutcome", "SyncOutcome"]

    [row] = await channels(runtime, cid)
    [sub] = graph.live()
    assert (row.status, row.resource_id, row.expiration) == ("active", sub.id, t0 + LIFE)
    assert row.renew_at == t0 + LIFE - timedelta(days=1)
    assert sub.notification_url == f"{URL}?channel={row.channel_id}"
    assert sub.lifecycle_url == f"{URL}/lifecycle?channel={row.channel_id}"
    assert sub.resource == "me/events" and sub.change_types == ("created", "updated", "deleted")
    assert sub.client_state == runtime.vault.open(row.tenant_id, row.secret_enc)
    assert len(sub.client_state) == 43 and sub.client_state.encode() not in row.secret_enc
    body = (await api.get(f"/api/v2/calendars/{cid}/")).json()
    assert body["push"] == {"status": "active", "reason": None}

    # A change reaches us as a notification; the calendar is due now, the worker syncs.
    clock.advance(timedelta(minutes=5))
    await worker.drain()
    now = clock.now()
    world.create_event(ALICE, event("Notified"))
    assert await graph.deliver() == [("graph-notification", 202)]
    cal = await calendar(runtime, cid)
    assert (cal.next_sync_at, cal.sync_requested_at) == (now, now)
    [outcome] = syncs(await worker.drain())
    assert (outcome.result, outcome.inserted) == ("synced", 1)
    assert (await calendar(runtime, cid)).next_sync_at == now + timedelta(hours=24)
    [row] = await channels(runtime, cid)
    assert row.last_notification_at == now


async def test_renewal_patches_the_same_subscription_before_it_expires(
    api: httpx.AsyncClient, world: Any, worker: Worker, clock: Any, runtime: Any, graph: Graph
) -> None:
    cid = await _settled(api, world, worker, clock, runtime)
    [old] = await channels(runtime, cid)
    assert old.renew_at is not None and old.expiration is not None
    [sub] = graph.live()
    clock.set(old.renew_at)
    assert actions(await worker.drain()) == ["renewed"]

    [row] = await channels(runtime, cid)
    assert (row.id, row.channel_id, row.resource_id) == (old.id, old.channel_id, sub.id)
    assert row.expiration == clock.now() + LIFE and row.attempts == 0
    assert row.renew_at == row.expiration - timedelta(days=1)
    assert [s.id for s in graph.live()] == [sub.id] and sub.expiration == row.expiration

    # No gap: past the old expiration the same subscription still notifies us.
    clock.set(old.expiration + timedelta(minutes=1))
    world.create_event(ALICE, event("After the old expiration", 20))
    assert await graph.deliver() == [("graph-notification", 202)]
    [outcome] = syncs(await worker.drain())
    assert (outcome.result, outcome.inserted) == ("synced", 1)
    assert (await calendar(runtime, cid)).push_status == "active"


async def test_a_failed_patch_retries_while_the_subscription_still_listens(
    api: httpx.AsyncClient, world: Any, worker: Worker, clock: Any, runtime: Any, graph: Graph
) -> None:
    cid = await _settled(api, world, worker, clock, runtime)
    [old] = await channels(runtime, cid)
    assert old.renew_at is not None
    world.faults.add(status=503, times=1, path_contains="/subscriptions/", method="PATCH")
    clock.set(old.renew_at)
    assert actions(await worker.drain()) == ["retry"]
    cal = await calendar(runtime, cid)
    assert cal.push_status == "active"
    assert (cal.push_reason or "").startswith("renewing the channel failed, retrying")
    [row] = await channels(runtime, cid)
    base = runtime.settings.push_retry_base
    assert row.renew_at is not None and base / 2 <= row.renew_at - clock.now() <= base
    clock.set(row.renew_at)
    assert actions(await worker.drain()) == ["renewed"]
    assert (await calendar(runtime, cid)).push_reason is None


async def test_reauthorization_required_renews_at_once(
    api: httpx.AsyncClient, world: Any, worker: Worker, clock: Any, runtime: Any, graph: Graph
) -> None:
    cid = await _settled(api, world, worker, clock, runtime)
    clock.advance(timedelta(hours=3))
    graph.lifecycle("reauthorizationRequired")
    assert await graph.deliver() == [("graph-lifecycle", 202)]
    [row] = await channels(runtime, cid)
    assert row.renew_at == clock.now()  # due now: the push job answers with a PATCH
    assert syncs(outcomes := await worker.drain()) == [] and actions(outcomes) == ["renewed"]
    [row] = await channels(runtime, cid)
    [sub] = graph.live()
    assert row.expiration == sub.expiration == clock.now() + LIFE


async def test_the_emulators_own_reauthorization_event_before_expiry_is_answered(
    api: httpx.AsyncClient, world: Any, worker: Worker, clock: Any, runtime: Any, graph: Graph
) -> None:
    """With renewal margin shorter than Graph's hour of warning, the warning comes first."""
    runtime.settings.push_renew_margin = timedelta(minutes=30)
    cid = await _settled(api, world, worker, clock, runtime)
    [row] = await channels(runtime, cid)
    assert row.expiration is not None
    clock.set(row.expiration - timedelta(minutes=59))
    assert await graph.deliver() == [("graph-lifecycle", 202)]
    assert actions(await worker.drain()) == ["renewed"]
    [sub] = graph.live()
    assert sub.expiration == clock.now() + LIFE


async def test_subscription_removed_recreates_it_and_resyncs(
    api: httpx.AsyncClient, world: Any, worker: Worker, clock: Any, runtime: Any, graph: Graph
) -> None:
    cid = await _settled(api, world, worker, clock, runtime)
    [old] = await channels(runtime, cid)
    world.create_event(ALICE, event("Changed while removed"))
    assert graph.drop() == 1  # its notification never arrives
    graph.lifecycle("subscriptionRemoved")
    assert graph.live() == []
    assert await graph.deliver() == [("graph-lifecycle", 202)]

    rows = await channels(runtime, cid)
    assert [(r.id == old.id, r.status) for r in rows] == [(True, "stopped"), (False, "pending")]
    assert rows[0].last_error == "removed by Microsoft (subscriptionRemoved)"
    now = clock.now()
    assert (await calendar(runtime, cid)).next_sync_at == now  # resync at once
    outcomes = await worker.drain()
    assert [(s.result, s.inserted) for s in syncs(outcomes)] == [("synced", 1)]
    assert actions(outcomes) == ["created"]
    rows = await channels(runtime, cid)
    [sub] = graph.live()
    assert (rows[1].status, rows[1].resource_id) == ("active", sub.id)
    assert sub.id != old.resource_id
    assert (await calendar(runtime, cid)).push_status == "active"


async def test_missed_resyncs(
    api: httpx.AsyncClient, world: Any, worker: Worker, clock: Any, runtime: Any, graph: Graph
) -> None:
    cid = await _settled(api, world, worker, clock, runtime)
    world.create_event(ALICE, event("Never notified"))
    assert graph.drop() == 1
    graph.lifecycle("missed")
    assert await graph.deliver() == [("graph-lifecycle", 202)]
    assert (await calendar(runtime, cid)).next_sync_at == clock.now()
    [outcome] = syncs(await worker.drain())
    assert (outcome.result, outcome.inserted) == ("synced", 1)
    [row] = await channels(runtime, cid)
    assert row.status == "active"  # the subscription itself is fine


async def test_a_subscription_gone_at_renewal_is_replaced_and_resynced(
    api: httpx.AsyncClient, world: Any, worker: Worker, clock: Any, runtime: Any, graph: Graph
) -> None:
    cid = await _settled(api, world, worker, clock, runtime)
    [old] = await channels(runtime, cid)
    assert old.renew_at is not None
    clock.set(old.renew_at - timedelta(minutes=1))
    await worker.drain()  # the safety sync, not due again before the renewal
    graph.hub.subscriptions.clear()  # lost at Graph without a word
    world.create_event(ALICE, event("Unheard"))
    clock.set(old.renew_at)
    outcomes = await worker.drain()
    assert actions(outcomes) == ["replaced", "created"]  # PATCH 404, then a new one
    assert [(s.result, s.inserted) for s in syncs(outcomes)] == [("synced", 1)]
    rows = await channels(runtime, cid)
    assert [r.status for r in rows] == ["stopped", "active"]
    assert rows[0].last_error is not None and "NotFound" in rows[0].last_error
    assert [s.id for s in graph.live()] == [rows[1].resource_id]


async def test_delete_and_revocation_end_the_subscription(
    api: httpx.AsyncClient, world: Any, worker: Worker, clock: Any, runtime: Any, graph: Graph
) -> None:
    cid = await _settled(api, world, worker, clock, runtime)
    assert (await api.delete(f"/api/v2/calendars/{cid}/")).status_code == 204
    await worker.drain()
    [row] = await channels(runtime)
    assert (row.status, row.last_error) == ("stopped", None)
    assert graph.live() == []  # DELETE /subscriptions/{id}

    # Revoked at Microsoft: Graph removes the subscription and says so; the receiver asks
    # for a new one, the sync that follows finds the grant revoked and disconnects.
    cid = await connect_outlook(api, world)
    await worker.drain()
    cal = await calendar(runtime, cid)
    world.revoke(runtime.vault.open(cal.tenant_id, cal.oauth_refresh_token_enc))
    assert await graph.deliver() == [("graph-lifecycle", 202)]
    await worker.drain()
    cal = await calendar(runtime, cid)
    assert cal.status == "disconnected"
    assert [r.status for r in await channels(runtime, cid)] in (
        ["stopped", "stopped"],
        ["stopped", "failed"],
    )
    assert graph.live() == []
