"""Webhook retention: finished messages older than SHOWUP_WEBHOOK_RETENTION go with their
deliveries and attempts, in small batches; nothing pending or leased ever goes.

Driven by the FakeClock, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import func, select, text, update

from showup.config import Settings
from showup.db.webhook_models import WebhookAttempt, WebhookDelivery, WebhookMessage
from showup.tenants import create_tenant
from showup.webhooks.outbox import BOT_CANCELLED, BOT_SCHEDULED, BOT_UPDATED
from showup.webhooks.retention import WebhookRetention, purge_messages
from tests.support.helpers import counting_commits, paced_pass
from tests.webhooks.helpers import ENDPOINTS, add_endpoint, all_deliveries, announce
from tests.webhooks.support import HOOK_URL, Receiver, Reply

RETENTION = timedelta(days=30)  # the default


async def message_ids(runtime: Any) -> set[str]:
    async with runtime.sessions() as session:
        return set(await session.scalars(select(WebhookMessage.id)))


async def counts(runtime: Any) -> tuple[int, int, int]:
    async with runtime.sessions() as session:
        return tuple(  # type: ignore[return-value]
            [
                int(await session.scalar(select(func.count()).select_from(model)) or 0)
                for model in (WebhookMessage, WebhookDelivery, WebhookAttempt)
            ]
        )


def test_setting_defaults_to_30_days_and_must_be_positive(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().webhook_retention == RETENTION
    monkeypatch.setenv("SHOWUP_WEBHOOK_RETENTION", "P7D")
    assert Settings().webhook_retention == timedelta(days=7)
    # Durations take plain seconds too (README, "Configuration"), from the environment.
    monkeypatch.setenv("SHOWUP_WEBHOOK_RETENTION", "86400")
    assert Settings().webhook_retention == timedelta(days=1)
    monkeypatch.setenv("SHOWUP_WEBHOOK_TIMEOUT", "2.5")
    assert Settings().webhook_timeout == timedelta(seconds=2.5)
    for bad in ("0", "-60", "soon"):
        monkeypatch.setenv("SHOWUP_WEBHOOK_RETENTION", bad)
        with pytest.raises(ValidationError, match="webhook_retention"):
            Settings()


async def test_finished_messages_go_after_the_retention_with_deliveries_and_attempts(
    api: httpx.AsyncClient,
    runtime: Any,
    tenant: Any,
    worker: Any,
    receiver: Receiver,
    clock: Any,
) -> None:
    await add_endpoint(api)
    await add_endpoint(api, url=HOOK_URL + "/gone")
    receiver.answer(Reply(500), Reply(410), path="/hook/gone")
    await announce(runtime, tenant.tenant_id, BOT_SCHEDULED)  # retrying at /gone ...
    await worker.drain()
    await announce(runtime, tenant.tenant_id, BOT_UPDATED)  # ... cancelled by this 410
    await worker.drain()
    await announce(runtime, tenant.tenant_id, BOT_CANCELLED, calendar_webhook_url=HOOK_URL + "/c")
    await worker.drain()
    ended = clock.now()
    statuses = sorted(d.status for d in await all_deliveries(runtime))
    assert statuses == ["cancelled", "delivered", "delivered", "delivered", "delivered", "failed"]
    assert await counts(runtime) == (3, 6, 6)

    clock.set(ended + RETENTION)
    assert await WebhookRetention().run_now(runtime) == 0
    assert await counts(runtime) == (3, 6, 6)
    clock.set(ended + RETENTION + timedelta(seconds=1))
    assert await WebhookRetention().run_now(runtime) == 3
    assert await counts(runtime) == (0, 0, 0)


async def test_pending_and_leased_deliveries_keep_their_message_whatever_its_age(
    api: httpx.AsyncClient,
    runtime: Any,
    tenant: Any,
    worker: Any,
    receiver: Receiver,
    clock: Any,
) -> None:
    await add_endpoint(api, url=HOOK_URL + "/ok")
    await add_endpoint(api, url=HOOK_URL + "/down")
    receiver.answer(Reply(503), path="/hook/down")
    half_done = await announce(runtime, tenant.tenant_id)  # delivered to one, retrying at the other
    await worker.drain()
    receiver.answer(Reply(503), path="/hook/down")
    leased = await announce(runtime, tenant.tenant_id)
    await worker.drain()
    # A delivery some worker holds right now, whatever its status says.
    async with runtime.sessions() as session:
        await session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.message_id == leased)
            .values(status="failed", next_attempt_at=None, lease_owner="another-worker")
        )
        await session.commit()
    done = await announce(runtime, tenant.tenant_id)
    await worker.drain()

    clock.advance(RETENTION * 3)
    assert await WebhookRetention().run_now(runtime) == 1
    assert await message_ids(runtime) == {half_done, leased}
    pending = [d for d in await all_deliveries(runtime) if d.status == "pending"]
    assert [d.message_id for d in pending] == [half_done]
    assert done not in await message_ids(runtime)


async def test_a_replay_keeps_the_whole_message_for_another_retention(
    api: httpx.AsyncClient, runtime: Any, tenant: Any, worker: Any, clock: Any
) -> None:
    ep_id, _ = await add_endpoint(api)
    msg = await announce(runtime, tenant.tenant_id)
    await worker.drain()
    [original] = await all_deliveries(runtime)
    clock.advance(RETENTION + timedelta(days=1))
    r = await api.post(f"{ENDPOINTS}{ep_id}/deliveries/{original.id}/replay/")
    assert r.status_code == 201, r.text
    retention = WebhookRetention()
    assert await retention.run_now(runtime) == 0  # the replay is pending
    await worker.drain()
    replayed_at = clock.now()

    clock.set(replayed_at + RETENTION)
    assert await retention.run_now(runtime) == 0  # the replay ended within the retention
    assert await counts(runtime) == (1, 2, 2)
    clock.set(replayed_at + RETENTION + timedelta(seconds=1))
    assert await retention.run_now(runtime) == 1
    assert msg not in await message_ids(runtime) and await counts(runtime) == (0, 0, 0)


async def test_batches_are_small_transactions_and_a_call_does_only_a_few(
    api: httpx.AsyncClient, runtime: Any, tenant: Any, worker: Any, clock: Any, engine: Any
) -> None:
    await add_endpoint(api)
    async with runtime.sessions() as session:
        other = await create_tenant(session, runtime.clock, "Other Co")
        await session.commit()
    async with runtime.sessions() as session:
        from showup.webhooks.endpoints import create_endpoint

        await create_endpoint(
            session,
            runtime.vault,
            tenant_id=other.tenant_id,
            url=HOOK_URL,
            event_types=None,
            description=None,
            now=clock.now(),
        )
        await session.commit()
    old: set[str] = set()
    for i in range(7):
        for t in (tenant.tenant_id, other.tenant_id):
            old.add(str(await announce(runtime, t, data={"n": i})))
        clock.advance(timedelta(seconds=1))
    await worker.drain()
    clock.advance(RETENTION + timedelta(minutes=1))
    # Pending, and young: kept either way. (No drain: its maintenance would purge.)
    young = {str(await announce(runtime, t)) for t in (tenant.tenant_id, other.tenant_id)}

    with counting_commits(engine) as commits:
        retention = WebhookRetention(batch_size=3, batches_per_call=2)
        started = clock.now()
        per_call = await paced_pass(retention, runtime, clock)
        # 7 old messages per tenant, batches of 3 (a tenant's last one is topped up from
        # the next tenant), two batches per call: 3+3 | 1+2, 3 | 2.
        assert per_call == [6, 6, 2]
        assert commits[0] == 1 + 5  # the tenant list, then one transaction per batch
        assert await message_ids(runtime) == young

        # The next pass starts an hour after this one started; nothing is read before.
        commits[0] = 0
        clock.set(started + timedelta(hours=1) - timedelta(microseconds=1))
        assert await retention.run(runtime) == 0 and commits[0] == 0
        clock.set(started + timedelta(hours=1))
        assert await retention.run(runtime) == 0 and commits[0] > 0


async def test_the_worker_purges_in_its_maintenance(
    api: httpx.AsyncClient, runtime: Any, tenant: Any, worker: Any, clock: Any
) -> None:
    await add_endpoint(api)
    msg = await announce(runtime, tenant.tenant_id)
    await worker.drain()
    clock.advance(RETENTION + timedelta(hours=1))
    later = await announce(runtime, tenant.tenant_id)
    await worker.drain()  # delivers, then maintains
    assert await message_ids(runtime) == {later}
    assert msg is not None


async def test_deliveries_listing_after_a_purge(
    api: httpx.AsyncClient, runtime: Any, tenant: Any, worker: Any, clock: Any
) -> None:
    ep_id, _ = await add_endpoint(api)
    for _ in range(3):
        await announce(runtime, tenant.tenant_id)
        await worker.drain()
        clock.advance(timedelta(days=1))
    clock.advance(RETENTION - timedelta(days=2) - timedelta(hours=1))
    # Left pending: a drain's maintenance would purge (it is past an hour since the last).
    kept = await announce(runtime, tenant.tenant_id, BOT_UPDATED)
    listing = f"{ENDPOINTS}{ep_id}/deliveries/"
    page = (await api.get(listing, params={"page_size": 1})).json()
    first = page["results"][0]
    # Positions the pages link to: after the first delivery, and before the second one.
    second = (await api.get(page["next"])).json()
    clock.advance(timedelta(hours=2))  # the first two are past the retention now

    assert await WebhookRetention().run_now(runtime) == 2
    after = await api.get(listing)
    assert after.status_code == 200
    assert [d["webhook_id"] for d in after.json()["results"]][-1] == kept
    assert len(after.json()["results"]) == 2
    # Cursors handed out before the purge still work: they hold a position, not a row.
    nxt = await api.get(page["next"])
    assert nxt.status_code == 200 and len(nxt.json()["results"]) == 1
    prev = await api.get(second["previous"])
    assert prev.status_code == 200 and prev.json()["results"] == []
    for status, n in (("delivered", 1), ("pending", 1), ("failed", 0)):
        r = await api.get(listing, params={"status": status})
        assert len(r.json()["results"]) == n
    # A purged delivery cannot be replayed: it is gone.
    r = await api.post(f"{ENDPOINTS}{ep_id}/deliveries/{first['id']}/replay/")
    assert r.status_code == 404 and r.json()["code"] == "not_found"


async def test_purge_messages_checks_its_ids_itself(
    api: httpx.AsyncClient, runtime: Any, tenant: Any, worker: Any, clock: Any
) -> None:
    await add_endpoint(api)
    msg = await announce(runtime, tenant.tenant_id)
    await worker.drain()
    async with runtime.sessions() as session:
        # Created after the cutoff (and ended after it): kept, however it is asked for.
        assert await purge_messages(session, [str(msg), "msg_unknown"], clock.now()) == 0
        assert await purge_messages(session, [], clock.now()) == 0
        await session.commit()
    assert await message_ids(runtime) == {msg}


async def test_a_replay_racing_a_purge_on_postgresql_gets_404_and_leaves_nothing(
    api: httpx.AsyncClient, runtime: Any, tenant: Any, worker: Any, clock: Any, engine: Any
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite runs one transaction at a time: no race to lose")
    ep_id, _ = await add_endpoint(api)
    msg = await announce(runtime, tenant.tenant_id)
    await worker.drain()
    [delivery] = await all_deliveries(runtime)
    clock.advance(RETENTION + timedelta(minutes=1))
    async with runtime.sessions() as purging:
        assert await purge_messages(purging, [str(msg)], clock.now() - RETENTION) == 1
        # The purge holds the message's lock, uncommitted: the replay reads the delivery
        # (still there for it), and its insert waits on the message's lock.
        replay = asyncio.create_task(
            api.post(f"{ENDPOINTS}{ep_id}/deliveries/{delivery.id}/replay/")
        )
        async with runtime.sessions() as probe:
            for _ in range(500):
                waiting = await probe.scalar(
                    text(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE wait_event_type = 'Lock' AND query LIKE 'INSERT INTO webhook_del%'"
                    )
                )
                await probe.commit()
                if waiting or replay.done():
                    break
                await asyncio.sleep(0.01)  # a lock state, not a schedule
        assert waiting == 1
        await purging.commit()
    r = await replay
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    assert await counts(runtime) == (0, 0, 0)
