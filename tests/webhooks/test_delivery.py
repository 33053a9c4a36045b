"""Delivery end to end: outbox → worker → signed POST → receiver, driven by the FakeClock.

Every received message is verified with our ``signing.verify`` and with the official
``standardwebhooks`` library. Nothing sleeps: retries happen when the clock is moved and
the worker drained.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import WebhookVerificationError

from showup.webhooks.outbox import BOT_CANCELLED, BOT_SCHEDULED, CALENDAR_SYNC_EVENTS
from tests.webhooks.helpers import (
    ENDPOINTS,
    add_endpoint,
    all_deliveries,
    announce,
    attempts_of,
    endpoint_row,
)
from tests.webhooks.support import (
    HOOK_URL,
    TIMEOUT,
    ClockedWebhook,
    FakeResolver,
    Receiver,
    Reply,
    verifies,
    verify_both,
)


async def test_delivered_signed_and_recorded(
    api: httpx.AsyncClient, runtime: Any, tenant: Any, worker: Any, receiver: Receiver, clock: Any
) -> None:
    _, secret = await add_endpoint(api)
    msg_id = await announce(runtime, tenant.tenant_id, BOT_SCHEDULED, {"bot_id": "b1"})
    outcomes = await worker.drain()
    assert [(o.result, o.status_code) for o in outcomes] == [("delivered", 200)]

    [req] = receiver.requests
    assert req.url == HOOK_URL
    assert req.headers["webhook-id"] == msg_id
    assert req.headers["webhook-timestamp"] == str(int(clock.now().timestamp()))
    assert req.headers["content-type"] == "application/json"
    assert len(req.headers["webhook-signature"].split()) == 1
    payload = verify_both(secret, req, clock)
    assert payload == {
        "event": "bot.scheduled",
        "type": "bot.scheduled",
        "timestamp": "2026-11-02T09:00:00Z",
        "data": {"bot_id": "b1"},
    }
    [d] = await all_deliveries(runtime)
    assert (d.status, d.attempts, d.next_attempt_at, d.lease_owner) == ("delivered", 1, None, None)
    assert d.delivered_at == clock.now() and d.last_status_code == 200
    [a] = await attempts_of(runtime, d.id)
    assert a.status_code == 200 and a.error is None and a.latency_ms is not None
    assert a.response_snippet == "ok"
    assert await worker.drain() == []  # nothing left


async def test_server_error_retries_with_backoff_and_stable_id(
    api: httpx.AsyncClient, runtime: Any, tenant: Any, worker: Any, receiver: Receiver, clock: Any
) -> None:
    _, secret = await add_endpoint(api)
    receiver.answer(Reply(500, body=b"boom"), Reply(404), Reply(200))
    msg_id = await announce(runtime, tenant.tenant_id)
    start = clock.now()

    [first] = await worker.drain()
    assert first.result == "retry" and first.status_code == 500
    assert first.next_attempt_at > start
    # base 5 s, full jitter in [2.5 s, 5 s] for the first retry
    assert first.next_attempt_at - start <= timedelta(seconds=5)
    assert await worker.drain() == []  # not due yet: the clock has not moved

    clock.set(first.next_attempt_at)
    [second] = await worker.drain()
    assert second.result == "retry" and second.status_code == 404
    clock.set(second.next_attempt_at)
    [third] = await worker.drain()
    assert third.result == "delivered"

    assert [r.headers["webhook-id"] for r in receiver.requests] == [msg_id] * 3
    stamps = [int(r.headers["webhook-timestamp"]) for r in receiver.requests]
    assert stamps == sorted(stamps) and stamps[0] < stamps[-1]  # a timestamp per attempt
    assert len({r.body for r in receiver.requests}) == 1  # the exact same bytes each time
    for req in receiver.requests:
        clock_at = req.at
        assert clock_at <= clock.now()
    verify_both(secret, receiver.requests[-1], clock)
    [d] = await all_deliveries(runtime)
    assert [a.status_code for a in await attempts_of(runtime, d.id)] == [500, 404, 200]
    assert d.attempts == 3


@pytest.mark.parametrize("status", [429, 503])
async def test_retry_after_is_honoured(
    api: httpx.AsyncClient,
    runtime: Any,
    tenant: Any,
    worker: Any,
    receiver: Receiver,
    clock: Any,
    status: int,
) -> None:
    await add_endpoint(api)
    if status == 429:
        retry_after = "600"
    else:  # the HTTP-date form
        retry_after = format_datetime(clock.now() + timedelta(minutes=10), usegmt=True)
    receiver.answer(Reply(status, {"Retry-After": retry_after}))
    await announce(runtime, tenant.tenant_id)
    start = clock.now()
    [o] = await worker.drain()
    assert o.result == "retry" and o.next_attempt_at >= start + timedelta(minutes=10)

    clock.set(start + timedelta(minutes=10) - timedelta(seconds=1))
    assert await worker.drain() == []
    assert len(receiver.requests) == 1
    clock.set(o.next_attempt_at)
    assert [x.result for x in await worker.drain()] == ["delivered"]
    assert receiver.requests[1].at >= start + timedelta(minutes=10)


async def test_gone_disables_endpoint_and_cancels_its_queue(
    api: httpx.AsyncClient, runtime: Any, tenant: Any, worker: Any, receiver: Receiver, clock: Any
) -> None:
    gone_id, _ = await add_endpoint(api, url=HOOK_URL + "/gone")
    other_id, _ = await add_endpoint(api, url=HOOK_URL + "/other")
    receiver.answer(Reply(500), path="/hook/gone")  # the first message waits for a retry
    first = await announce(runtime, tenant.tenant_id)
    await worker.drain()
    receiver.answer(Reply(410, body=b"gone"), path="/hook/gone")
    second = await announce(runtime, tenant.tenant_id, BOT_CANCELLED)
    await worker.drain()  # the first message's retry is not due yet

    ep = await endpoint_row(runtime, gone_id)
    assert ep is not None and ep.disabled and ep.disabled_reason and "410" in ep.disabled_reason
    assert ep.disabled_at == clock.now()
    state = {
        (d.endpoint_id, d.message_id): (d.status, d.last_error, d.next_attempt_at)
        for d in await all_deliveries(runtime)
    }
    assert state == {
        (gone_id, first): ("cancelled", "endpoint_disabled", None),
        (gone_id, second): ("failed", "endpoint_gone", None),
        (other_id, first): ("delivered", None, None),
        (other_id, second): ("delivered", None, None),
    }
    got = (await api.get(f"{ENDPOINTS}{gone_id}/")).json()
    assert got["disabled"] is True and "410" in got["disabled_reason"]

    # Disabled endpoints get no new deliveries and cannot be replayed to; others still work.
    clock.advance(timedelta(hours=1))
    assert await worker.drain() == []  # the cancelled retry never runs
    await announce(runtime, tenant.tenant_id)
    pending = [d for d in await all_deliveries(runtime) if d.status == "pending"]
    assert [d.endpoint_id for d in pending] == [other_id]
    gone_delivery = next(d for d in await all_deliveries(runtime) if d.endpoint_id == gone_id)
    r = await api.post(f"{ENDPOINTS}{gone_id}/deliveries/{gone_delivery.id}/replay/")
    assert r.status_code == 409 and r.json()["code"] == "endpoint_disabled"


async def test_timeout_is_a_retryable_failure(
    api: httpx.AsyncClient, runtime: Any, tenant: Any, worker: Any, receiver: Receiver, clock: Any
) -> None:
    await add_endpoint(api)
    receiver.answer(TIMEOUT)
    await announce(runtime, tenant.tenant_id)
    [o] = await worker.drain()
    assert (o.result, o.error, o.status_code) == ("retry", "timeout", None)
    [d] = await all_deliveries(runtime)
    [a] = await attempts_of(runtime, d.id)
    assert a.error == "timeout" and a.status_code is None
    clock.set(o.next_attempt_at)
    assert [x.result for x in await worker.drain()] == ["delivered"]


async def test_redirect_is_a_failure_and_not_followed(
    api: httpx.AsyncClient, runtime: Any, tenant: Any, worker: Any, receiver: Receiver
) -> None:
    await add_endpoint(api)
    receiver.answer(Reply(307, {"Location": "http://127.0.0.1:9/elsewhere"}))
    await announce(runtime, tenant.tenant_id)
    [o] = await worker.drain()
    assert o.result == "retry" and o.status_code == 307
    assert [r.url for r in receiver.requests] == [HOOK_URL]


async def test_response_snippet_is_capped_at_1kb(
    api: httpx.AsyncClient, runtime: Any, tenant: Any, worker: Any, receiver: Receiver
) -> None:
    await add_endpoint(api)
    receiver.answer(Reply(500, body=b"x\x00" * 50_000))
    await announce(runtime, tenant.tenant_id)
    await worker.drain()
    [d] = await all_deliveries(runtime)
    [a] = await attempts_of(runtime, d.id)
    assert a.response_snippet is not None
    assert len(a.response_snippet.encode()) <= 1024 * 3  # 1 KB of bytes, NULs replaced
    assert "\x00" not in a.response_snippet


async def test_rotation_signs_with_both_secrets_during_grace_only(
    api: httpx.AsyncClient, runtime: Any, tenant: Any, worker: Any, receiver: Receiver, clock: Any
) -> None:
    ep_id, old = await add_endpoint(api)
    r = await api.post(f"{ENDPOINTS}{ep_id}/rotate-secret/")
    assert r.status_code == 200
    new = r.json()["secret"]
    assert new != old and new.startswith("whsec_")
    assert r.json()["previous_secret_expires_at"] == "2026-11-03T09:00:00Z"

    await announce(runtime, tenant.tenant_id)
    await worker.drain()
    during = receiver.requests[-1]
    assert len(during.headers["webhook-signature"].split()) == 2
    assert verifies(old, during, clock) and verifies(new, during, clock)
    verify_both(new, during, clock)

    clock.advance(timedelta(hours=24))
    await announce(runtime, tenant.tenant_id)
    await worker.drain()
    after = receiver.requests[-1]
    assert len(after.headers["webhook-signature"].split()) == 1
    assert verifies(new, after, clock)
    assert not verifies(old, after, clock)
    with pytest.raises(WebhookVerificationError):
        ClockedWebhook(old, clock).verify(after.body, after.headers)


async def test_replay_reuses_the_webhook_id(
    api: httpx.AsyncClient, runtime: Any, tenant: Any, worker: Any, receiver: Receiver, clock: Any
) -> None:
    ep_id, secret = await add_endpoint(api)
    msg_id = await announce(runtime, tenant.tenant_id)
    await worker.drain()
    [d] = await all_deliveries(runtime)

    clock.advance(timedelta(hours=1))
    r = await api.post(f"{ENDPOINTS}{ep_id}/deliveries/{d.id}/replay/")
    assert r.status_code == 201, r.text
    replayed = r.json()
    assert replayed["id"] != d.id and replayed["webhook_id"] == msg_id
    assert replayed["status"] == "pending" and replayed["attempts"] == []
    assert [o.result for o in await worker.drain()] == ["delivered"]
    first, second = receiver.requests
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == msg_id
    assert first.body == second.body
    verify_both(secret, second, clock)


async def test_dns_rebinding_is_caught_at_delivery(
    api: httpx.AsyncClient,
    runtime: Any,
    tenant: Any,
    worker: Any,
    receiver: Receiver,
    resolver: FakeResolver,
    clock: Any,
) -> None:
    url = "https://hooks.example.com/in"
    resolver.answers["hooks.example.com"] = ["93.184.216.34"]
    await add_endpoint(api, url=url)
    resolver.answers["hooks.example.com"] = ["93.184.216.34", "10.0.0.7"]  # rebound
    await announce(runtime, tenant.tenant_id)
    [o] = await worker.drain()
    assert (o.result, o.error) == ("retry", "private_address")
    assert receiver.requests == []
    [d] = await all_deliveries(runtime)
    [a] = await attempts_of(runtime, d.id)
    assert a.error == "private_address" and a.status_code is None
    assert resolver.calls.count("hooks.example.com") == 2  # at creation and at delivery

    resolver.answers["hooks.example.com"] = ["93.184.216.34"]
    clock.set(o.next_attempt_at)
    assert [x.result for x in await worker.drain()] == ["delivered"]
    assert receiver.requests[0].url == url


async def test_gives_up_after_three_days(
    api: httpx.AsyncClient, runtime: Any, tenant: Any, worker: Any, receiver: Receiver, clock: Any
) -> None:
    await add_endpoint(api)
    receiver.answer(*[Reply(500)] * 1000)
    await announce(runtime, tenant.tenant_id)
    start = clock.now()
    results = []
    for _ in range(200):
        outcomes = await worker.drain()
        results.extend(o.result for o in outcomes)
        if results[-1] != "retry":
            break
        clock.set(outcomes[-1].next_attempt_at)
    assert results[-1] == "failed" and set(results[:-1]) == {"retry"}
    assert clock.now() == start + timedelta(days=3)  # the last try is at the deadline
    assert 10 <= len(results) < 200
    [d] = await all_deliveries(runtime)
    assert (d.status, d.last_error, d.next_attempt_at) == ("failed", "gave_up", None)
    assert d.attempts == len(receiver.requests) == len(results)


async def test_calendar_webhook_url_is_signed_with_the_tenant_secret(
    api: httpx.AsyncClient, runtime: Any, tenant: Any, worker: Any, receiver: Receiver, clock: Any
) -> None:
    await announce(
        runtime,
        tenant.tenant_id,
        CALENDAR_SYNC_EVENTS,
        {"calendar_id": "cal-1", "last_updated_ts": "2026-11-02T08:00:00Z"},
        calendar_webhook_url=HOOK_URL + "/calendar?token=abc",
    )
    [o] = await worker.drain()
    assert o.result == "delivered"
    secret = (await api.get("/api/v2/webhook-secret/")).json()["secret"]
    [req] = receiver.requests
    assert req.url == HOOK_URL + "/calendar?token=abc"
    assert verify_both(secret, req, clock)["event"] == "calendar.sync_events"


async def test_deleted_endpoint_takes_its_queue_along(
    api: httpx.AsyncClient, runtime: Any, tenant: Any, worker: Any, receiver: Receiver
) -> None:
    ep_id, _ = await add_endpoint(api)
    await announce(runtime, tenant.tenant_id)
    assert (await api.delete(f"{ENDPOINTS}{ep_id}/")).status_code == 204
    assert await worker.drain() == []
    assert receiver.requests == [] and await all_deliveries(runtime) == []


async def test_secrets_are_never_logged(
    api: httpx.AsyncClient,
    runtime: Any,
    tenant: Any,
    worker: Any,
    receiver: Receiver,
    clock: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    ep_id, old = await add_endpoint(api, url=HOOK_URL + "?token=sekrit")
    new = (await api.post(f"{ENDPOINTS}{ep_id}/rotate-secret/")).json()["secret"]
    receiver.answer(Reply(500), TIMEOUT, Reply(410))
    await announce(runtime, tenant.tenant_id)
    for _ in range(3):
        [o] = await worker.drain()
        if o.next_attempt_at:
            clock.set(o.next_attempt_at)
    assert receiver.requests  # the deliveries did happen, and were logged
    # No secret anywhere, even in third-party debug logs (only sealed bytes reach SQL).
    for secret in (old, new, old.removeprefix("whsec_"), new.removeprefix("whsec_")):
        assert secret not in caplog.text
    # Target URLs may carry tokens: our own logs name deliveries and endpoints by id.
    # (httpx logs URLs at INFO; server.py turns the httpx logger down to WARNING.)
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("showup")]
    assert any("410" in m for m in ours)
    assert not any("sekrit" in m for m in ours)
