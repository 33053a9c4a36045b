"""Channel lifecycle end to end (PROTOCOLS §1.5), on SQLite and PostgreSQL: a channel on
the first sync, renewal before expiry with overlap (never a moment without a live
channel), stop on delete and disconnect, and what the calendar shows when push cannot be
had. The emulator is the other side; the FakeClock moves, nothing sleeps."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx

from showup.db.channel_models import PushChannel
from showup.jobs.worker import Worker
from tests.push.support import ALICE, Pings, calendar, channels, connect, live_channels

T0_TTL = timedelta(days=7)


async def _connected(api: httpx.AsyncClient, world: Any, worker: Worker, pings: Pings) -> str:
    world.add_user(ALICE, name="Alice")
    cid = await connect(api, world)
    outcomes = await worker.drain()
    assert sorted(type(o).__name__ for o in outcomes) == ["ChannelOutcome", "SyncOutcome"]
    assert await pings.deliver() == [("sync", 200)]
    return cid


async def test_first_sync_opens_a_channel_and_relaxes_polling(
    api: httpx.AsyncClient, world: Any, worker: Worker, clock: Any, runtime: Any, pings: Pings
) -> None:
    t0 = clock.now()
    cid = await _connected(api, world, worker, pings)

    [row] = await channels(runtime, cid)
    assert (row.status, row.expiration) == ("active", t0 + T0_TTL)
    assert row.renew_at == t0 + T0_TTL - timedelta(days=1)
    assert row.last_message_number == 1 and row.last_notification_at == t0  # the sync message
    assert len(row.channel_id) <= 64 and row.channel_id.startswith("su-")
    [remote] = live_channels(world)
    assert remote.id == row.channel_id and remote.address == "http://showup.test/push/google"
    assert remote.token is not None
    assert remote.token == runtime.vault.open(row.tenant_id, row.secret_enc)
    assert remote.token.encode() not in row.secret_enc  # stored sealed only

    body = (await api.get(f"/api/v2/calendars/{cid}/")).json()
    assert body["push"] == {"status": "active", "reason": None}
    # The first sync ran before the channel existed: it still polls once more, which also
    # covers changes made between that sync and the watch call.
    assert body["sync"]["next_sync_at"] == _iso(t0 + timedelta(minutes=5))
    assert await worker.drain() == []  # the sync message requests nothing

    clock.advance(timedelta(minutes=5))
    [outcome] = _syncs(await worker.drain())
    assert outcome.result == "synced"
    assert (await calendar(runtime, cid)).next_sync_at == clock.now() + timedelta(hours=24)


async def test_renewal_overlaps_then_stops_the_old_channel(
    api: httpx.AsyncClient, world: Any, worker: Worker, clock: Any, runtime: Any, pings: Pings
) -> None:
    cid = await _connected(api, world, worker, pings)
    [old] = await channels(runtime, cid)
    assert old.renew_at is not None
    clock.set(old.renew_at)

    # Step the push job one row at a time: at no step may the calendar be unwatched.
    kind = worker.kind("push")
    steps = []
    while ids := await kind.claim(runtime, worker.owner, 1):
        outcome = await kind.run(runtime, ids[0], worker.owner)
        steps.append(outcome.action)  # type: ignore[attr-defined]
        assert live_channels(world), f"no live channel after {steps}"
    assert steps == ["renewing", "created", "stopped"]

    rows = await channels(runtime, cid)
    assert [(r.channel_id == old.channel_id, r.status) for r in rows] == [
        (True, "stopped"),
        (False, "active"),
    ]
    new = rows[1]
    [remote] = live_channels(world)
    assert remote.id == new.channel_id != old.channel_id  # renewal brings a new id (§1.5)
    assert new.expiration == clock.now() + T0_TTL
    assert (await calendar(runtime, cid)).push_status == "active"

    # The new channel works; a late ping from the stopped one changes nothing.
    assert await pings.deliver() == [("sync", 200)]
    world.create_event(
        ALICE,
        {"summary": "After renewal", "start": {"dateTime": "2026-11-12T10:00:00Z"}},
    )
    assert await pings.deliver() == [("exists", 200)]
    [outcome] = _syncs(await worker.drain())
    assert outcome.result == "synced" and outcome.inserted == 1


async def test_a_change_during_the_overlap_is_synced_once(
    api: httpx.AsyncClient, world: Any, worker: Worker, clock: Any, runtime: Any, pings: Pings
) -> None:
    cid = await _connected(api, world, worker, pings)
    [old] = await channels(runtime, cid)
    assert old.renew_at is not None
    clock.set(old.renew_at)
    kind = worker.kind("push")
    for expected in ("renewing", "created"):  # both channels are live now
        [row_id] = await kind.claim(runtime, worker.owner, 1)
        assert (await kind.run(runtime, row_id, worker.owner)).action == expected  # type: ignore[attr-defined]
    assert len(live_channels(world)) == 2
    await pings.deliver()  # the new channel's sync message

    world.create_event(ALICE, {"summary": "Overlap", "start": {"dateTime": "2026-11-12T10:00:00Z"}})
    assert await pings.deliver() == [("exists", 200), ("exists", 200)]  # one per channel
    syncs = _syncs(await worker.drain())
    assert [(s.result, s.inserted) for s in syncs] == [("synced", 1)]
    assert len(live_channels(world)) == 1


async def test_an_unreplaced_channel_expires_and_the_calendar_polls_again(
    api: httpx.AsyncClient, world: Any, worker: Worker, clock: Any, runtime: Any, pings: Pings
) -> None:
    cid = await _connected(api, world, worker, pings)
    [old] = await channels(runtime, cid)
    assert old.renew_at is not None and old.expiration is not None
    world.faults.add(status=400, times=None, path_contains="/events/watch", reason="invalid")
    clock.set(old.renew_at)
    await worker.drain()
    cal = await calendar(runtime, cid)
    assert cal.push_status == "active"  # the old channel still listens
    assert cal.push_reason is not None and cal.push_reason.startswith("renewing the channel failed")
    # The safety sync never waits past the expiration of the channel it relies on.
    clock.advance(timedelta(minutes=5))
    await worker.drain()
    assert (await calendar(runtime, cid)).next_sync_at == old.expiration

    clock.set(old.expiration)
    outcomes = await worker.drain()
    assert "expired" in [getattr(o, "action", None) for o in outcomes]
    # It synced at once, asked for a channel again (refused again) and polls meanwhile.
    cal = await calendar(runtime, cid)
    assert cal.push_status == "failed"
    assert "opening a push channel failed" in (cal.push_reason or "")
    assert cal.last_synced_at == clock.now()
    assert cal.next_sync_at == clock.now() + timedelta(minutes=5)
    assert [r.status for r in await channels(runtime, cid)] == ["stopped", "failed", "failed"]


async def test_creation_failures_show_on_the_calendar_and_retry(
    api: httpx.AsyncClient, world: Any, worker: Worker, clock: Any, runtime: Any
) -> None:
    world.add_user(ALICE, name="Alice")
    world.faults.add(status=503, times=2, path_contains="/events/watch")
    cid = await connect(api, world)
    await worker.drain()
    body = (await api.get(f"/api/v2/calendars/{cid}/")).json()
    assert body["push"]["status"] == "failed"
    reason = body["push"]["reason"]
    assert "retrying" in reason and "polling every 5 minutes" in reason
    [row] = await channels(runtime, cid)
    assert (row.status, row.attempts) == ("pending", 1)
    first_id = row.channel_id

    for _ in range(2):
        assert row.renew_at is not None
        clock.set(max(row.renew_at, clock.now()))
        await worker.drain()
        [row] = await channels(runtime, cid)
    assert row.status == "active" and row.channel_id != first_id  # retried under a new id
    assert (await calendar(runtime, cid)).push_status == "active"
    assert [c.id for c in live_channels(world)] == [row.channel_id]


async def test_a_refused_channel_is_not_asked_for_again_within_the_retry_cap(
    api: httpx.AsyncClient, world: Any, worker: Worker, clock: Any, runtime: Any
) -> None:
    world.add_user(ALICE, name="Alice")
    world.faults.add(status=400, times=1, path_contains="/events/watch", reason="invalid")
    cid = await connect(api, world)
    await worker.drain()
    [row] = await channels(runtime, cid)
    assert row.status == "failed" and row.last_error and "Rejected" in row.last_error
    cal = await calendar(runtime, cid)
    assert cal.push_status == "failed" and cal.next_sync_at == clock.now() + timedelta(minutes=5)

    clock.advance(timedelta(minutes=5))
    await worker.drain()
    assert len(await channels(runtime, cid)) == 1  # polling; no new attempt yet
    clock.advance(runtime.settings.push_retry_max)
    await worker.drain()
    rows = await channels(runtime, cid)
    assert [r.status for r in rows] == ["failed", "active"]


async def test_delete_stops_the_channel_with_the_calendars_saved_credentials(
    api: httpx.AsyncClient, world: Any, worker: Worker, runtime: Any, pings: Pings
) -> None:
    cid = await _connected(api, world, worker, pings)
    assert len(live_channels(world)) == 1
    assert (await api.delete(f"/api/v2/calendars/{cid}/")).status_code == 204
    [row] = await channels(runtime)
    assert (row.calendar_id, row.status) == (None, "stopping")
    assert row.orphan_credentials is not None

    await worker.drain()
    [row] = await channels(runtime)
    assert (row.status, row.last_error, row.orphan_credentials) == ("stopped", None, None)
    assert live_channels(world) == []
    # A late ping of the stopped channel is answered and ignored.
    world.create_event(ALICE, {"summary": "Late", "start": {"dateTime": "2026-11-12T10:00:00Z"}})
    assert pings.pending == []  # Google stopped it, so nothing is even sent


async def test_disconnect_stops_channels(
    api: httpx.AsyncClient, world: Any, worker: Worker, clock: Any, runtime: Any, pings: Pings
) -> None:
    cid = await _connected(api, world, worker, pings)
    # The calendar disappears at the provider: the next sync disconnects it.
    world.faults.add(status=404, times=1, path_contains="/events")
    clock.advance(timedelta(minutes=5))
    await worker.drain()
    cal = await calendar(runtime, cid)
    assert cal.status == "disconnected"
    assert (cal.push_status, cal.push_reason) == ("none", "the calendar is disconnected")
    [row] = await channels(runtime, cid)
    assert row.status == "stopped" and row.last_error is None
    assert live_channels(world) == []


async def test_revoked_access_cannot_stop_the_channel_and_says_so(
    api: httpx.AsyncClient, world: Any, worker: Worker, clock: Any, runtime: Any, pings: Pings
) -> None:
    cid = await _connected(api, world, worker, pings)
    cal = await calendar(runtime, cid)
    world.revoke(runtime.vault.open(cal.tenant_id, cal.oauth_refresh_token_enc))
    clock.advance(timedelta(minutes=5))
    await worker.drain()
    assert (await calendar(runtime, cid)).status == "disconnected"
    [row] = await channels(runtime, cid)
    assert row.status == "stopped"
    assert row.last_error is not None and row.last_error.startswith("could not stop it")
    assert len(live_channels(world)) == 1  # still live at Google until it expires


async def test_without_an_https_public_url_push_is_unavailable(
    api: httpx.AsyncClient, world: Any, worker: Worker, clock: Any, runtime: Any
) -> None:
    runtime.settings.push_allow_http = False
    world.add_user(ALICE, name="Alice")
    cid = await connect(api, world)
    await worker.drain()
    body = (await api.get(f"/api/v2/calendars/{cid}/")).json()
    assert body["push"]["status"] == "unavailable"
    assert body["push"]["reason"].startswith("SHOWUP_PUBLIC_URL is not HTTPS")
    assert body["push"]["reason"].endswith("polling every 5 minutes")
    assert await channels(runtime) == []

    runtime.settings.public_url = None
    clock.advance(timedelta(minutes=5))
    await worker.drain()
    cal = await calendar(runtime, cid)
    assert (cal.push_reason or "").startswith("SHOWUP_PUBLIC_URL is not set")
    assert cal.next_sync_at == clock.now() + timedelta(minutes=5)

    # Configured again: the next sync asks for a channel.
    runtime.settings.public_url = "https://showup.example"
    clock.advance(timedelta(minutes=5))
    await worker.drain()
    [row] = await channels(runtime, cid)
    assert isinstance(row, PushChannel) and row.address == "https://showup.example/push/google"
    assert (await calendar(runtime, cid)).push_status == "active"


def _syncs(outcomes: list[object]) -> list[Any]:
    return [o for o in outcomes if type(o).__name__ == "SyncOutcome"]


def _iso(dt: Any) -> str:
    return str(dt.isoformat().replace("+00:00", "Z"))
