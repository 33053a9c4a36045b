"""Deliveries are claimed under a lease: crashes, races, and work that changed meanwhile."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import update

from showup.db.webhook_models import WebhookDelivery, WebhookEndpoint
from showup.webhooks.delivery import claim_deliveries, deliver
from tests.webhooks.helpers import add_endpoint, all_deliveries, announce, attempts_of
from tests.webhooks.support import Receiver


async def test_a_crashed_workers_claim_expires_and_is_taken_over(
    api: httpx.AsyncClient, runtime: Any, tenant: Any, worker: Any, receiver: Receiver, clock: Any
) -> None:
    await add_endpoint(api)
    await announce(runtime, tenant.tenant_id)
    [claimed] = await claim_deliveries(runtime, "crashed-worker", 10)
    assert await worker.drain() == []  # leased to someone else
    clock.advance(runtime.settings.lease_duration + timedelta(seconds=1))
    assert [o.result for o in await worker.drain()] == ["delivered"]
    # The crashed worker wakes up late: it no longer owns the row and sends nothing.
    late = await deliver(runtime, claimed, "crashed-worker")
    assert late.result == "skipped"
    assert len(receiver.requests) == 1


async def test_concurrent_claims_are_disjoint(
    api: httpx.AsyncClient, runtime: Any, tenant: Any
) -> None:
    for i in range(3):
        await add_endpoint(api, url=f"http://127.0.0.1:9/hook/{i}")
    for _ in range(4):
        await announce(runtime, tenant.tenant_id)
    a, b, c = await asyncio.gather(
        claim_deliveries(runtime, "a", 5),
        claim_deliveries(runtime, "b", 5),
        claim_deliveries(runtime, "c", 5),
    )
    assert len(a) + len(b) + len(c) == 12
    assert len(set(a) | set(b) | set(c)) == 12
    assert await claim_deliveries(runtime, "d", 5) == []


async def test_endpoint_disabled_after_claim_cancels_at_run_time(
    api: httpx.AsyncClient, runtime: Any, tenant: Any, receiver: Receiver
) -> None:
    ep_id, _ = await add_endpoint(api)
    await announce(runtime, tenant.tenant_id)
    [claimed] = await claim_deliveries(runtime, "w", 10)
    async with runtime.sessions() as session:
        await session.execute(
            update(WebhookEndpoint).where(WebhookEndpoint.id == ep_id).values(disabled=True)
        )
        await session.commit()
    outcome = await deliver(runtime, claimed, "w")
    assert (outcome.result, outcome.error) == ("cancelled", "endpoint_disabled")
    assert receiver.requests == []
    [d] = await all_deliveries(runtime)
    assert (d.status, d.next_attempt_at, d.lease_owner) == ("cancelled", None, None)


async def test_cancelled_while_in_flight_stays_cancelled(
    api: httpx.AsyncClient, runtime: Any, tenant: Any, receiver: Receiver
) -> None:
    """The attempt is recorded, but a cancellation made meanwhile is not overwritten."""
    await add_endpoint(api)
    await announce(runtime, tenant.tenant_id)
    [claimed] = await claim_deliveries(runtime, "w", 10)
    original = receiver.app

    async def cancel_then_answer(scope: Any, receive: Any, send: Any) -> None:
        async with runtime.sessions() as session:
            await session.execute(update(WebhookDelivery).values(status="cancelled"))
            await session.commit()
        await original(scope, receive, send)

    receiver.app = cancel_then_answer
    outcome = await deliver(runtime, claimed, "w")
    assert outcome.result == "skipped" and outcome.status_code == 200
    [d] = await all_deliveries(runtime)
    assert d.status == "cancelled"
    [a] = await attempts_of(runtime, d.id)
    assert a.status_code == 200


async def test_an_internal_error_is_a_failed_attempt_not_a_stuck_row(
    api: httpx.AsyncClient, runtime: Any, tenant: Any, worker: Any, receiver: Receiver, clock: Any
) -> None:
    ep_id, _ = await add_endpoint(api)
    async with runtime.sessions() as session:
        await session.execute(
            update(WebhookEndpoint)
            .where(WebhookEndpoint.id == ep_id)
            .values(secret_enc=b"\x01" + b"\x00" * 40)  # does not open
        )
        await session.commit()
    await announce(runtime, tenant.tenant_id)
    [o] = await worker.drain()
    assert (o.result, o.error) == ("retry", "internal_error")
    assert receiver.requests == []
    [d] = await all_deliveries(runtime)
    assert (d.attempts, d.last_error, d.lease_owner) == (1, "internal_error", None)
    [a] = await attempts_of(runtime, d.id)
    assert a.error == "internal_error"
