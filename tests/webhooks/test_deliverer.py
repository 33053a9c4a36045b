"""The webhooks job kind's Deliverer: claims prepare the deliveries, attempts are recorded
in groups.

Per delivery the steps, the retry policy and the fencing are ``deliver``'s
(``test_delivery.py`` and ``test_leases.py`` run through the Deliverer too, via the
worker); here, what the sharing changes: how many transactions, the next due time from
the claim, what a group does when one of its deliveries is no longer ours or its endpoint
goes away, and the fallbacks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import update

from showup.db.webhook_models import WebhookDelivery, WebhookEndpoint
from showup.webhooks.delivery import (
    Deliverer,
    DeliveryOutcome,
    _GroupRecorder,
    claim_deliveries,
)
from tests.support.helpers import counting_transactions, until
from tests.webhooks.helpers import (
    add_endpoint,
    all_deliveries,
    announce,
    attempts_of,
    endpoint_row,
)
from tests.webhooks.support import HOOK_URL, Receiver, Reply, verify_both


async def _four_messages(runtime: Any, tenant_id: str) -> None:
    for i in range(4):
        await announce(runtime, tenant_id, data={"bot_id": f"bot-{i}"})


async def test_a_claimed_batch_is_delivered_with_few_transactions(
    api: httpx.AsyncClient, runtime: Any, tenant: Any, receiver: Receiver
) -> None:
    await add_endpoint(api)
    await _four_messages(runtime, tenant.tenant_id)
    deliverer = Deliverer(runtime)
    with counting_transactions(runtime) as claimed:
        ids, due = await deliverer.claim_next(runtime, "w", 10)
    assert len(ids) == 4 and due is None  # nothing else is scheduled
    assert len(claimed) == 1  # claim, prepare and next due time: one transaction
    with counting_transactions(runtime) as recorded:
        results = await asyncio.gather(*(deliverer.run(runtime, i, "w") for i in ids))
    assert [r.result for r in results] == ["delivered"] * 4
    # The per-delivery path took two per delivery (load, record) after the claim.
    assert 1 <= len(recorded) <= len(ids)
    assert sorted(r.json["data"]["bot_id"] for r in receiver.requests) == [
        f"bot-{i}" for i in range(4)
    ]
    for d in await all_deliveries(runtime):
        assert (d.status, d.attempts, d.lease_owner) == ("delivered", 1, None)
        [a] = await attempts_of(runtime, d.id)
        assert a.status_code == 200 and a.latency_ms is not None


async def test_the_claim_tells_when_the_next_delivery_is_due(
    api: httpx.AsyncClient, runtime: Any, tenant: Any, receiver: Receiver, clock: Any
) -> None:
    await add_endpoint(api)
    receiver.answer(Reply(500))
    await announce(runtime, tenant.tenant_id)
    deliverer = Deliverer(runtime)
    ids, _ = await deliverer.claim_next(runtime, "w", 10)
    [retry] = [await deliverer.run(runtime, i, "w") for i in ids]
    assert retry.result == "retry" and retry.next_attempt_at is not None
    await announce(runtime, tenant.tenant_id)
    ids, due = await deliverer.claim_next(runtime, "w", 10)
    assert len(ids) == 1 and due == retry.next_attempt_at
    assert [(await deliverer.run(runtime, i, "w")).result for i in ids] == ["delivered"]
    assert await deliverer.claim_next(runtime, "w", 10) == ([], retry.next_attempt_at)
    clock.set(retry.next_attempt_at)
    ids, due = await deliverer.claim_next(runtime, "w", 1)  # full: no next due time
    assert len(ids) == 1 and due is None
    assert [(await deliverer.run(runtime, i, "w")).result for i in ids] == ["delivered"]


async def test_attempts_waiting_together_are_recorded_as_one_group(
    api: httpx.AsyncClient, runtime: Any, tenant: Any, receiver: Receiver
) -> None:
    await add_endpoint(api)
    await _four_messages(runtime, tenant.tenant_id)
    deliverer = Deliverer(runtime)
    recorder = deliverer._recorder
    ids = await deliverer.claim(runtime, "w", 10)
    with counting_transactions(runtime) as begun:
        async with recorder._lock:  # a write under way: the four attempts queue up
            jobs = asyncio.gather(*(deliverer.run(runtime, i, "w") for i in ids))
            await until(lambda: len(recorder._queue) == 4)
        results = await jobs
    assert [r.result for r in results] == ["delivered"] * 4
    assert len(begun) == 1  # one transaction for the four
    for d in await all_deliveries(runtime):
        assert (d.status, d.attempts) == ("delivered", 1)
        assert len(await attempts_of(runtime, d.id)) == 1


async def test_a_delivery_no_longer_ours_is_left_alone_by_its_group(
    api: httpx.AsyncClient, runtime: Any, tenant: Any, receiver: Receiver
) -> None:
    """The lease fences each delivery of a group on its own: the attempt is recorded, the
    state belongs to the worker that took the delivery over."""
    await add_endpoint(api)
    await _four_messages(runtime, tenant.tenant_id)
    deliverer = Deliverer(runtime)
    recorder = deliverer._recorder
    ids = await deliverer.claim(runtime, "w", 10)
    lost = ids[0]
    async with recorder._lock:
        jobs = asyncio.gather(*(deliverer.run(runtime, i, "w") for i in ids))
        await until(lambda: len(recorder._queue) == 4)
        # Our lease ran out meanwhile and another worker claimed the delivery.
        async with runtime.sessions() as session:
            await session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id == lost)
                .values(lease_owner="other-worker")
            )
            await session.commit()
    results = {r.delivery_id: r for r in await jobs}
    assert (results[lost].result, results[lost].status_code) == ("skipped", 200)
    assert {results[i].result for i in ids[1:]} == {"delivered"}
    rows = {d.id: d for d in await all_deliveries(runtime)}
    assert (rows[lost].status, rows[lost].attempts, rows[lost].lease_owner) == (
        "pending",
        0,
        "other-worker",
    )
    [a] = await attempts_of(runtime, lost)
    assert a.status_code == 200


async def test_a_410_in_a_group_cancels_the_rest_of_its_endpoints_queue(
    api: httpx.AsyncClient, runtime: Any, tenant: Any, receiver: Receiver, clock: Any
) -> None:
    """As if recorded one after the other: the first 410 disables the endpoint, the other
    deliveries of that endpoint in the same group find themselves cancelled, another
    endpoint's are not touched."""
    gone_id, _ = await add_endpoint(api, url=HOOK_URL + "/gone")
    other_id, _ = await add_endpoint(api, url=HOOK_URL + "/other")
    receiver.answer(Reply(410), Reply(410), path="/hook/gone")
    await announce(runtime, tenant.tenant_id)
    await announce(runtime, tenant.tenant_id)
    deliverer = Deliverer(runtime)
    recorder = deliverer._recorder
    ids = await deliverer.claim(runtime, "w", 10)
    assert len(ids) == 4
    async with recorder._lock:
        jobs = asyncio.gather(*(deliverer.run(runtime, i, "w") for i in ids))
        await until(lambda: len(recorder._queue) == 4)
    results = {r.delivery_id: r for r in await jobs}
    rows = {d.id: d for d in await all_deliveries(runtime)}
    gone = [i for i in ids if rows[i].endpoint_id == gone_id]
    other = [i for i in ids if rows[i].endpoint_id == other_id]
    assert sorted((results[i].result, results[i].error, results[i].status_code) for i in gone) == [
        ("failed", "endpoint_gone", 410),
        ("skipped", None, 410),
    ]
    [first] = [i for i in gone if results[i].result == "failed"]
    [second] = [i for i in gone if results[i].result == "skipped"]
    assert (rows[first].status, rows[first].last_error) == ("failed", "endpoint_gone")
    assert (rows[second].status, rows[second].last_error) == ("cancelled", "endpoint_disabled")
    for i in gone:
        [a] = await attempts_of(runtime, i)
        assert a.status_code == 410
    assert {results[i].result for i in other} == {"delivered"}
    assert {rows[i].status for i in other} == {"delivered"}
    ep = await endpoint_row(runtime, gone_id)
    assert ep is not None and ep.disabled and ep.disabled_at == clock.now()


class _FailingGroups(_GroupRecorder):
    """Fails every write of more than one attempt, like a group with one bad row."""

    failed: list[int]

    async def _write(self, owner: str, attempts: Sequence[Any]) -> list[DeliveryOutcome]:
        if len(attempts) > 1:
            self.failed.append(len(attempts))
            raise RuntimeError("group write failed")
        return await super()._write(owner, attempts)


async def test_a_failed_group_is_written_one_by_one(
    api: httpx.AsyncClient, runtime: Any, tenant: Any, receiver: Receiver
) -> None:
    await add_endpoint(api)
    await _four_messages(runtime, tenant.tenant_id)
    deliverer = Deliverer(runtime)
    recorder = deliverer._recorder = _FailingGroups(runtime)
    recorder.failed = []
    ids = await deliverer.claim(runtime, "w", 10)
    async with recorder._lock:
        jobs = asyncio.gather(*(deliverer.run(runtime, i, "w") for i in ids))
        await until(lambda: len(recorder._queue) == 4)
    results = await jobs
    assert recorder.failed == [4]
    assert [r.result for r in results] == ["delivered"] * 4
    for d in await all_deliveries(runtime):
        assert (d.status, d.attempts) == ("delivered", 1)
        assert len(await attempts_of(runtime, d.id)) == 1


async def test_an_endpoint_disabled_before_the_claim_is_cancelled_by_the_claim(
    api: httpx.AsyncClient, runtime: Any, tenant: Any, receiver: Receiver
) -> None:
    """Disabling cancels an endpoint's queue; a delivery that stayed pending anyway (a
    race with the disabling transaction) is cancelled when claimed, without a POST."""
    ep_id, _ = await add_endpoint(api)
    await announce(runtime, tenant.tenant_id)
    async with runtime.sessions() as session:
        await session.execute(
            update(WebhookEndpoint).where(WebhookEndpoint.id == ep_id).values(disabled=True)
        )
        await session.commit()
    deliverer = Deliverer(runtime)
    [claimed] = await deliverer.claim(runtime, "w", 10)
    [d] = await all_deliveries(runtime)
    assert (d.status, d.last_error, d.lease_owner, d.next_attempt_at) == (
        "cancelled",
        "endpoint_disabled",
        None,
        None,
    )
    outcome = await deliverer.run(runtime, claimed, "w")
    assert (outcome.result, outcome.error) == ("cancelled", "endpoint_disabled")
    assert receiver.requests == []


async def test_a_delivery_claimed_elsewhere_runs_the_per_delivery_path(
    api: httpx.AsyncClient, runtime: Any, tenant: Any, receiver: Receiver
) -> None:
    await add_endpoint(api)
    await announce(runtime, tenant.tenant_id)
    [claimed] = await claim_deliveries(runtime, "w", 10)  # not through this Deliverer
    deliverer = Deliverer(runtime)
    assert (await deliverer.run(runtime, claimed, "w")).result == "delivered"
    assert len(receiver.requests) == 1
    # And a worker that lost the lease sends nothing on that path either.
    assert (await deliverer.run(runtime, claimed, "other")).result == "skipped"
    assert len(receiver.requests) == 1


async def test_a_calendar_webhook_url_is_signed_with_the_tenant_secret_from_the_claim(
    api: httpx.AsyncClient, runtime: Any, tenant: Any, receiver: Receiver
) -> None:
    for i in range(2):
        await announce(
            runtime,
            tenant.tenant_id,
            "calendar.sync_events",
            {"calendar_id": f"cal-{i}", "last_updated_ts": "2026-11-02T08:00:00Z"},
            calendar_webhook_url=HOOK_URL + f"/calendar-{i}",
        )
    deliverer = Deliverer(runtime)
    ids = await deliverer.claim(runtime, "w", 10)
    results = await asyncio.gather(*(deliverer.run(runtime, i, "w") for i in ids))
    assert [r.result for r in results] == ["delivered"] * 2
    secret = (await api.get("/api/v2/webhook-secret/")).json()["secret"]
    for req in receiver.requests:
        assert verify_both(secret, req, runtime.clock)["event"] == "calendar.sync_events"


async def test_in_run_forever_attempts_finishing_close_together_share_a_transaction(
    api: httpx.AsyncClient, runtime: Any, tenant: Any, receiver: Receiver
) -> None:
    """Claimed by claim_next (run_forever), an attempt lingers for others to be recorded
    with it; claimed by claim (drain), it is recorded at once."""
    await add_endpoint(api)
    await _four_messages(runtime, tenant.tenant_id)
    # Long enough for four in-process POSTs on a loaded machine; the test waits that long.
    deliverer = Deliverer(runtime, linger=timedelta(milliseconds=500))
    ids, _ = await deliverer.claim_next(runtime, "w", 10)
    assert {deliverer._ready[i][1] for i in ids} == {0.5}
    with counting_transactions(runtime) as begun:
        results = await asyncio.gather(*(deliverer.run(runtime, i, "w") for i in ids))
    assert [r.result for r in results] == ["delivered"] * 4
    assert len(begun) == 1
    await _four_messages(runtime, tenant.tenant_id)
    ids = await deliverer.claim(runtime, "w", 10)
    assert {deliverer._ready[i][1] for i in ids} == {0.0}  # drain's claim: none lingers
    with counting_transactions(runtime) as begun:
        results = [await deliverer.run(runtime, i, "w") for i in ids]  # one after the other
    assert [r.result for r in results] == ["delivered"] * 4
    assert len(begun) == 4
