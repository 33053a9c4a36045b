"""The tenant-webhook launcher against a scripted receiver, on SQLite and PostgreSQL.

Each case calls ``launch`` directly with a request and checks the typed outcome, and that
what arrived verifies with the official ``standardwebhooks`` library.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update

from showup.db.webhook_models import WebhookEndpoint
from showup.launchers import launcher_for
from showup.launchers.base import Launched, LaunchRequest, Rejected, Retryable, ServedEvent
from showup.launchers.webhook import WebhookLauncher, message_id
from tests.bots.support import HOOK_URL, TIMEOUT, Receiver, Reply, add_endpoint, verify

JOIN = datetime(2026, 11, 2, 9, 58, tzinfo=UTC)


def request(tenant_id: str, **overrides: Any) -> LaunchRequest:
    values: dict[str, Any] = {
        "bot_id": "5d1c7a0e-0000-4000-8000-000000000001",
        "tenant_id": tenant_id,
        "deduplication_key": "k",
        "meeting_url": "https://meet.google.com/abc-defg-hij",
        "meeting_platform": "google_meet",
        "join_at": JOIN,
        "deadline": JOIN + timedelta(minutes=5),
        "bot_config": {"bot_name": "Scribe"},
        "events": (
            ServedEvent(
                "ev-1",
                "cal-1",
                "user-a",
                "a@example.com",
                "Planning",
                "uid@x",
                JOIN + timedelta(minutes=2),
                JOIN + timedelta(minutes=62),
            ),
            ServedEvent(
                "ev-2",
                "cal-2",
                "user-b",
                "b@example.com",
                "Planning",
                "uid@x",
                JOIN + timedelta(minutes=2),
                JOIN + timedelta(minutes=62),
            ),
        ),
        "attempt": 1,
    }
    values.update(overrides)
    return LaunchRequest(**values)


async def test_signed_dispatch_and_vendor_id(
    runtime: Any, tenant: Any, receiver: Receiver, secret: str
) -> None:
    receiver.answer(Reply(201, body=b'{"bot_id": "vendor-42"}'))
    outcome = await launcher_for(runtime, tenant.tenant_id).launch(request(tenant.tenant_id))
    assert outcome == Launched("vendor-42")
    [sent] = receiver.requests
    assert sent.url == HOOK_URL
    assert sent.headers["webhook-id"] == message_id(request("").bot_id)
    body = verify(secret, sent)
    assert body["type"] == body["event"] == "bot.dispatch"
    assert body["timestamp"] == "2026-11-02T09:58:00Z"
    data = body["data"]
    assert data["idempotency_key"] == data["bot_id"] == request("").bot_id
    assert data["calendar_users"] == ["user-a", "user-b"]
    assert [e["external_user_id"] for e in data["events"]] == ["user-a", "user-b"]
    assert (
        data["bot_config"] == {"bot_name": "Scribe"} and data["deadline"] == "2026-11-02T10:03:00Z"
    )


@pytest.mark.parametrize(
    ("replies", "expected"),
    [
        ([Reply(500)], Retryable),
        ([Reply(503, headers={"Retry-After": "30"})], Retryable),
        ([TIMEOUT], Retryable),
        ([Reply(409)], Retryable),
        ([Reply(400)], Rejected),
        ([Reply(404)], Rejected),
        ([Reply(302, headers={"Location": "http://127.0.0.1:9/else"})], Rejected),
        ([Reply(204)], Launched),
    ],
)
async def test_outcome_by_answer(
    runtime: Any,
    tenant: Any,
    receiver: Receiver,
    secret: str,
    replies: list[Any],
    expected: type,
) -> None:
    receiver.answer(*replies)
    outcome = await WebhookLauncher(runtime).launch(request(tenant.tenant_id))
    assert isinstance(outcome, expected)
    if isinstance(outcome, Retryable) and replies[0] != TIMEOUT and replies[0].headers:
        assert outcome.retry_after == timedelta(seconds=30)
    if isinstance(outcome, Retryable | Rejected):
        assert outcome.reason.startswith("endpoint ") and HOOK_URL not in outcome.reason


async def test_one_endpoint_taking_it_is_enough(
    runtime: Any, tenant: Any, receiver: Receiver, secret: str
) -> None:
    await add_endpoint(runtime, tenant.tenant_id, url="http://127.0.0.1:9/second")
    receiver.answer(Reply(500), Reply(200))
    outcome = await WebhookLauncher(runtime).launch(request(tenant.tenant_id))
    assert outcome == Launched(None)
    assert len(receiver.requests) == 2
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == 1


async def test_no_subscribed_endpoint_is_retryable(
    runtime: Any, tenant: Any, receiver: Receiver
) -> None:
    await add_endpoint(runtime, tenant.tenant_id, event_types=["bot.scheduled"])
    outcome = await WebhookLauncher(runtime).launch(request(tenant.tenant_id))
    assert isinstance(outcome, Retryable) and outcome.reason.startswith("no_endpoint")
    assert receiver.requests == []


async def test_disabled_endpoints_and_refused_urls(
    runtime: Any, tenant: Any, receiver: Receiver, secret: str
) -> None:
    async with runtime.sessions() as session:
        await session.execute(update(WebhookEndpoint).values(disabled=True))
        await session.commit()
    # A URL the SSRF guard refuses at launch time (stored before the policy changed).
    await add_endpoint(runtime, tenant.tenant_id, url="http://10.0.0.7/hook")
    outcome = await WebhookLauncher(runtime).launch(request(tenant.tenant_id))
    assert isinstance(outcome, Rejected) and "url:" in outcome.reason
    assert "10.0.0.7" not in outcome.reason
    assert receiver.requests == []
