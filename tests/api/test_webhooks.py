"""Webhook endpoints API: create/list/get/delete, rotation, deliveries, replay, tenant secret,
validation (4xx with a code and nothing written) and tenant scoping."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from showup.api.app import create_app
from showup.db.webhook_models import TenantWebhookSecret, WebhookDelivery, WebhookEndpoint
from showup.tenants import create_tenant
from showup.webhooks.outbox import BOT_SCHEDULED, BOT_UPDATED
from tests.webhooks.helpers import ENDPOINTS, add_endpoint, announce
from tests.webhooks.support import (  # fixtures: a runtime wired to a recording receiver
    HOOK_URL,
    FakeResolver,
    Receiver,
    Reply,
    receiver,
    resolver,
    runtime,
    settings,
    verify_both,
)

__all__ = ["receiver", "resolver", "runtime", "settings"]


async def count(runtime: Any, model: Any) -> int:
    async with runtime.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


@pytest.fixture
async def other_api(runtime: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a second tenant."""
    async with runtime.sessions() as session:
        other = await create_tenant(session, runtime.clock, "Other Co")
        await session.commit()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(runtime)),
        base_url="http://showup.test",
        headers={"Authorization": f"Token {other.api_key}"},
    ) as client:
        yield client


async def test_create_shows_the_secret_once(api: httpx.AsyncClient, runtime: Any) -> None:
    r = await api.post(
        ENDPOINTS,
        json={"url": HOOK_URL, "event_types": [BOT_SCHEDULED], "description": "prod"},
    )
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["secret"].startswith("whsec_")
    assert created["url"] == HOOK_URL and created["event_types"] == [BOT_SCHEDULED]
    assert created["description"] == "prod" and created["disabled"] is False

    got = await api.get(f"{ENDPOINTS}{created['id']}/")
    assert got.status_code == 200
    assert "secret" not in got.json() and created["secret"] not in got.text
    listed = await api.get(ENDPOINTS)
    assert created["secret"] not in listed.text
    async with runtime.sessions() as session:
        row = await session.get(WebhookEndpoint, created["id"])
    assert row is not None and created["secret"].encode() not in row.secret_enc


async def test_list_is_cursor_paginated(api: httpx.AsyncClient, clock: Any) -> None:
    ids = []
    for i in range(5):
        ids.append((await add_endpoint(api, url=f"{HOOK_URL}/{i}"))[0])
        clock.advance(timedelta(seconds=1))
    seen: list[str] = []
    r = await api.get(ENDPOINTS, params={"page_size": 2})
    while True:
        assert r.status_code == 200
        page = r.json()
        seen.extend(e["id"] for e in page["results"])
        if page["next"] is None:
            break
        assert page["next"].startswith("http://showup.test/api/v2/webhook-endpoints/?")
        r = await api.get(page["next"])
    assert seen == ids
    back = await api.get(r.json()["previous"])
    assert [e["id"] for e in back.json()["results"]] == ids[2:4]


async def test_delete(api: httpx.AsyncClient) -> None:
    ep_id, _ = await add_endpoint(api)
    r = await api.delete(f"{ENDPOINTS}{ep_id}/")
    assert r.status_code == 204 and r.content == b""
    assert (await api.get(f"{ENDPOINTS}{ep_id}/")).status_code == 404
    assert (await api.delete(f"{ENDPOINTS}{ep_id}/")).status_code == 404


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"url": "https://10.0.0.1/hook"}, "private_address", "url"),
        ({"url": "https://169.254.169.254/latest"}, "private_address", "url"),
        ({"url": "http://example.com/hook"}, "scheme_not_allowed", "url"),
        ({"url": "ftp://example.com/hook"}, "scheme_not_allowed", "url"),
        ({"url": "https://user:pw@example.com/"}, "invalid_url", "url"),
        ({"url": "https://2130706433/"}, "host_not_allowed", "url"),
        ({"url": "https://nowhere.invalid/"}, "unresolvable", "url"),
        ({"url": "https://internal.example.com/"}, "private_address", "url"),
        ({"url": "not a url"}, "invalid_url", "url"),
        ({"url": HOOK_URL, "event_types": ["bot.exploded"]}, "unknown_event_type", "event_types"),
        ({"url": HOOK_URL, "event_types": []}, "invalid_request", "event_types"),
        ({"url": HOOK_URL, "event_types": "bot.scheduled"}, "invalid_request", "event_types"),
        ({"event_types": [BOT_SCHEDULED]}, "invalid_request", "url"),
        ({"url": HOOK_URL, "secret": "whsec_mine"}, "invalid_request", "secret"),
        ({"url": HOOK_URL, "description": "x" * 501}, "invalid_request", "description"),
        ({"url": "https://example.com/" + "a" * 2100}, "invalid_request", "url"),
    ],
)
async def test_bad_input_is_400_with_a_code_and_writes_nothing(
    api: httpx.AsyncClient,
    runtime: Any,
    resolver: FakeResolver,
    body: dict[str, Any],
    code: str,
    field: str,
) -> None:
    resolver.answers["internal.example.com"] = ["93.184.216.34", "192.168.1.20"]
    r = await api.post(ENDPOINTS, json=body)
    assert r.status_code == 400, r.text
    assert r.json()["code"] == code
    assert r.json()["errors"][0]["field"] == field
    assert "pw@" not in r.text  # the URL is not echoed back
    assert await count(runtime, WebhookEndpoint) == 0


async def test_public_https_host_is_accepted_after_resolution(
    api: httpx.AsyncClient, resolver: FakeResolver
) -> None:
    resolver.answers["hooks.example.com"] = ["93.184.216.34", "2606:2800:220:1::1"]
    r = await api.post(ENDPOINTS, json={"url": "https://hooks.example.com/in"})
    assert r.status_code == 201, r.text
    assert resolver.calls == ["hooks.example.com"]


async def test_auth_is_required(api: httpx.AsyncClient) -> None:
    for method, path in [
        ("GET", ENDPOINTS),
        ("POST", ENDPOINTS),
        ("GET", "/api/v2/webhook-secret/"),
    ]:
        r = await api.request(method, path, headers={"Authorization": ""})
        assert r.status_code == 401 and r.json()["code"] == "unauthenticated"


async def test_other_tenants_ids_are_404(
    api: httpx.AsyncClient, other_api: httpx.AsyncClient, runtime: Any, tenant: Any, worker: Any
) -> None:
    ep_id, _ = await add_endpoint(api)
    await announce(runtime, tenant.tenant_id)
    await worker.drain()
    [d] = (await api.get(f"{ENDPOINTS}{ep_id}/deliveries/")).json()["results"]
    for method, path in [
        ("GET", f"{ENDPOINTS}{ep_id}/"),
        ("DELETE", f"{ENDPOINTS}{ep_id}/"),
        ("POST", f"{ENDPOINTS}{ep_id}/rotate-secret/"),
        ("GET", f"{ENDPOINTS}{ep_id}/deliveries/"),
        ("POST", f"{ENDPOINTS}{ep_id}/deliveries/{d['id']}/replay/"),
    ]:
        r = await other_api.request(method, path)
        assert r.status_code == 404, (method, path)
        assert r.json()["code"] == "not_found"
    assert (await other_api.get(ENDPOINTS)).json()["results"] == []
    assert (await api.get(f"{ENDPOINTS}{ep_id}/")).status_code == 200
    # The other tenant's own endpoint cannot be used to reach our delivery either.
    their_ep, _ = await add_endpoint(other_api)
    r = await other_api.post(f"{ENDPOINTS}{their_ep}/deliveries/{d['id']}/replay/")
    assert r.status_code == 404
    assert await count(runtime, WebhookDelivery) == 1


async def test_deliveries_list_attempts_status_latency_and_errors(
    api: httpx.AsyncClient,
    runtime: Any,
    tenant: Any,
    worker: Any,
    receiver: Receiver,
    clock: Any,
) -> None:
    ep_id, _ = await add_endpoint(api)
    receiver.answer(Reply(503, body=b"busy"))
    msg_id = await announce(runtime, tenant.tenant_id, BOT_SCHEDULED)
    [first] = await worker.drain()
    clock.set(first.next_attempt_at)
    await worker.drain()
    clock.advance(timedelta(minutes=1))
    await announce(runtime, tenant.tenant_id, BOT_UPDATED)
    await worker.drain()

    r = await api.get(f"{ENDPOINTS}{ep_id}/deliveries/", params={"page_size": 1})
    assert r.status_code == 200
    page = r.json()
    [d] = page["results"]
    assert d["webhook_id"] == msg_id and d["event_type"] == BOT_SCHEDULED
    assert d["status"] == "delivered" and d["attempt_count"] == 2
    assert [a["status_code"] for a in d["attempts"]] == [503, 200]
    assert d["attempts"][0]["response_snippet"] == "busy"
    assert all(isinstance(a["latency_ms"], int) for a in d["attempts"])
    assert d["delivered_at"] is not None and d["next_attempt_at"] is None
    nxt = (await api.get(page["next"])).json()
    assert [x["event_type"] for x in nxt["results"]] == [BOT_UPDATED]
    failed = await api.get(f"{ENDPOINTS}{ep_id}/deliveries/", params={"status": "failed"})
    assert failed.json()["results"] == []
    bad = await api.get(f"{ENDPOINTS}{ep_id}/deliveries/", params={"status": "lost"})
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_request"


async def test_replay_unknown_delivery_is_404(api: httpx.AsyncClient) -> None:
    ep_id, _ = await add_endpoint(api)
    r = await api.post(f"{ENDPOINTS}{ep_id}/deliveries/nope/replay/")
    assert r.status_code == 404


async def test_rotate_secret_shows_the_new_one_once(api: httpx.AsyncClient, clock: Any) -> None:
    ep_id, old = await add_endpoint(api)
    r = await api.post(f"{ENDPOINTS}{ep_id}/rotate-secret/")
    assert r.status_code == 200
    new = r.json()["secret"]
    assert new != old
    assert r.json()["previous_secret_expires_at"] == "2026-11-03T09:00:00Z"
    got = await api.get(f"{ENDPOINTS}{ep_id}/")
    assert new not in got.text and old not in got.text


async def test_tenant_secret_is_stable_and_signs_calendar_targets(
    api: httpx.AsyncClient,
    other_api: httpx.AsyncClient,
    runtime: Any,
    tenant: Any,
    worker: Any,
    receiver: Receiver,
    clock: Any,
) -> None:
    r = await api.get("/api/v2/webhook-secret/")
    assert r.status_code == 200
    secret = r.json()["secret"]
    assert secret.startswith("whsec_")
    assert (await api.get("/api/v2/webhook-secret/")).json()["secret"] == secret
    assert (await other_api.get("/api/v2/webhook-secret/")).json()["secret"] != secret
    assert await count(runtime, TenantWebhookSecret) == 2

    await announce(
        runtime, tenant.tenant_id, BOT_SCHEDULED, calendar_webhook_url=HOOK_URL + "/calendar"
    )
    await worker.drain()
    verify_both(secret, receiver.requests[0], clock)


# --- PATCH: re-enable, change the URL, the filter, the description -------------------------


async def test_patch_re_enables_an_endpoint_disabled_by_a_410(
    api: httpx.AsyncClient,
    runtime: Any,
    tenant: Any,
    worker: Any,
    receiver: Receiver,
    clock: Any,
) -> None:
    ep_id, _ = await add_endpoint(api)
    receiver.answer(Reply(500))
    first = await announce(runtime, tenant.tenant_id)
    await worker.drain()  # retrying
    receiver.answer(Reply(410))
    await announce(runtime, tenant.tenant_id, BOT_UPDATED)
    await worker.drain()  # gone: disabled, the first one's retry cancelled
    assert (await api.get(f"{ENDPOINTS}{ep_id}/")).json()["disabled"] is True
    clock.advance(timedelta(hours=1))

    r = await api.patch(f"{ENDPOINTS}{ep_id}/", json={"disabled": False})
    assert r.status_code == 200, r.text
    got = r.json()
    assert (got["disabled"], got["disabled_reason"], got["disabled_at"]) == (False, None, None)
    assert got["updated_at"] == "2026-11-02T10:00:00Z" and "secret" not in got
    assert (await api.get(f"{ENDPOINTS}{ep_id}/")).json() == got

    # Nothing is queued again: the cancelled delivery stays so, and replay brings it back.
    assert await worker.drain() == []
    cancelled = (
        await api.get(f"{ENDPOINTS}{ep_id}/deliveries/", params={"status": "cancelled"})
    ).json()["results"]
    assert [d["webhook_id"] for d in cancelled] == [first]
    r = await api.post(f"{ENDPOINTS}{ep_id}/deliveries/{cancelled[0]['id']}/replay/")
    assert r.status_code == 201, r.text
    # New messages reach it again.
    await announce(runtime, tenant.tenant_id, BOT_SCHEDULED)
    outcomes = await worker.drain()
    assert [o.result for o in outcomes] == ["delivered", "delivered"]
    assert first in {req.headers["webhook-id"] for req in receiver.requests[-2:]}


async def test_patch_changes_url_filter_and_description_checked_as_at_creation(
    api: httpx.AsyncClient,
    runtime: Any,
    tenant: Any,
    worker: Any,
    receiver: Receiver,
    resolver: FakeResolver,
    clock: Any,
) -> None:
    ep_id, secret = await add_endpoint(api, description="old")
    resolver.answers["hooks.example.com"] = ["93.184.216.34"]
    clock.advance(timedelta(minutes=1))
    r = await api.patch(
        f"{ENDPOINTS}{ep_id}/",
        json={
            "url": "https://hooks.example.com/in",
            "event_types": [BOT_UPDATED, BOT_UPDATED],
            "description": None,
        },
    )
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["url"] == "https://hooks.example.com/in"
    assert got["event_types"] == [BOT_UPDATED] and got["description"] is None
    assert got["updated_at"] == "2026-11-02T09:01:00Z" and got["disabled"] is False
    assert resolver.calls == ["hooks.example.com"]

    # The same URL again is not looked up again; a body changing nothing changes nothing.
    clock.advance(timedelta(minutes=1))
    r = await api.patch(f"{ENDPOINTS}{ep_id}/", json={"url": "https://hooks.example.com/in"})
    assert r.status_code == 200 and r.json() == got
    assert (await api.patch(f"{ENDPOINTS}{ep_id}/", json={})).json() == got
    assert resolver.calls == ["hooks.example.com"]

    # The filter applies to new messages; null means every type again. The secret is kept.
    r = await api.patch(f"{ENDPOINTS}{ep_id}/", json={"event_types": None, "url": HOOK_URL})
    assert r.status_code == 200 and r.json()["event_types"] is None
    await announce(runtime, tenant.tenant_id, BOT_SCHEDULED)
    await worker.drain()
    [req] = receiver.requests
    assert req.url == HOOK_URL
    verify_both(secret, req, clock)


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"url": "https://10.0.0.1/hook"}, "private_address", "url"),
        ({"url": "https://169.254.169.254/latest"}, "private_address", "url"),
        ({"url": "http://example.com/hook"}, "scheme_not_allowed", "url"),
        ({"url": "https://user:pw@example.com/"}, "invalid_url", "url"),
        ({"url": "https://nowhere.invalid/"}, "unresolvable", "url"),
        ({"url": "https://internal.example.com/"}, "private_address", "url"),
        ({"url": None}, "invalid_request", "url"),
        ({"url": ""}, "invalid_request", "url"),
        ({"disabled": None}, "invalid_request", "disabled"),
        ({"disabled": "maybe"}, "invalid_request", "disabled"),
        ({"event_types": ["bot.exploded"]}, "unknown_event_type", "event_types"),
        ({"event_types": []}, "invalid_request", "event_types"),
        ({"description": "x" * 501}, "invalid_request", "description"),
        ({"secret": "whsec_mine"}, "invalid_request", "secret"),
        ({"disabled": True, "url": "https://10.0.0.1/hook"}, "private_address", "url"),
        ({"disabled": True, "event_types": ["bot.exploded"]}, "unknown_event_type", "event_types"),
    ],
)
async def test_patch_bad_input_is_400_with_a_code_and_writes_nothing(
    api: httpx.AsyncClient,
    runtime: Any,
    tenant: Any,
    resolver: FakeResolver,
    clock: Any,
    body: dict[str, Any],
    code: str,
    field: str,
) -> None:
    resolver.answers["internal.example.com"] = ["93.184.216.34", "192.168.1.20"]
    ep_id, _ = await add_endpoint(api, event_types=[BOT_SCHEDULED], description="kept")
    await announce(runtime, tenant.tenant_id)
    before = (await api.get(f"{ENDPOINTS}{ep_id}/")).json()
    clock.advance(timedelta(minutes=1))
    r = await api.patch(f"{ENDPOINTS}{ep_id}/", json=body)
    assert r.status_code == 400, r.text
    assert r.json()["code"] == code
    assert r.json()["errors"][0]["field"] == field
    assert "pw@" not in r.text
    assert (await api.get(f"{ENDPOINTS}{ep_id}/")).json() == before
    async with runtime.sessions() as session:
        statuses = list(await session.scalars(select(WebhookDelivery.status)))
    assert statuses == ["pending"]  # a rejected disable cancelled nothing


async def test_patch_can_disable_which_cancels_the_queue(
    api: httpx.AsyncClient, runtime: Any, tenant: Any, worker: Any, clock: Any
) -> None:
    ep_id, _ = await add_endpoint(api)
    await announce(runtime, tenant.tenant_id)
    r = await api.patch(f"{ENDPOINTS}{ep_id}/", json={"disabled": True})
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["disabled"] is True and got["disabled_reason"] == "disabled through the API"
    assert got["disabled_at"] == "2026-11-02T09:00:00Z"
    assert await worker.drain() == []
    async with runtime.sessions() as session:
        [d] = list(await session.scalars(select(WebhookDelivery)))
    assert (d.status, d.last_error) == ("cancelled", "endpoint_disabled")
    # Disabling again keeps the first reason and time.
    clock.advance(timedelta(minutes=5))
    again = await api.patch(f"{ENDPOINTS}{ep_id}/", json={"disabled": True})
    assert again.json() == got


async def test_patch_of_another_tenants_endpoint_is_404(
    api: httpx.AsyncClient, other_api: httpx.AsyncClient
) -> None:
    ep_id, _ = await add_endpoint(api)
    r = await other_api.patch(f"{ENDPOINTS}{ep_id}/", json={"description": "mine now"})
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    r = await other_api.patch(f"{ENDPOINTS}{ep_id}/", json={"url": "https://10.0.0.1/"})
    assert r.status_code == 404  # found missing before the URL is even looked at
    assert (await api.get(f"{ENDPOINTS}{ep_id}/")).json()["description"] is None
