"""Small helpers shared by the webhook tests."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select

from showup.db.webhook_models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from showup.webhooks.outbox import BOT_SCHEDULED, enqueue
from tests.webhooks.support import HOOK_URL

ENDPOINTS = "/api/v2/webhook-endpoints/"


async def add_endpoint(
    api: httpx.AsyncClient, url: str = HOOK_URL, **extra: Any
) -> tuple[str, str]:
    r = await api.post(ENDPOINTS, json={"url": url, **extra})
    assert r.status_code == 201, r.text
    return r.json()["id"], r.json()["secret"]


async def announce(
    runtime: Any,
    tenant_id: str,
    event_type: str = BOT_SCHEDULED,
    data: dict[str, Any] | None = None,
    calendar_webhook_url: str | None = None,
) -> str | None:
    async with runtime.sessions() as session:
        msg_id = await enqueue(
            session,
            tenant_id=tenant_id,
            event_type=event_type,
            data=data if data is not None else {"bot_id": "bot-1"},
            now=runtime.clock.now(),
            calendar_webhook_url=calendar_webhook_url,
        )
        await session.commit()
    return msg_id


async def all_deliveries(runtime: Any) -> list[WebhookDelivery]:
    async with runtime.sessions() as session:
        rows = await session.scalars(
            select(WebhookDelivery).order_by(WebhookDelivery.created_at, WebhookDelivery.id)
        )
        return list(rows)


async def attempts_of(runtime: Any, delivery_id: str) -> list[WebhookAttempt]:
    async with runtime.sessions() as session:
        rows = await session.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id == delivery_id)
            .order_by(WebhookAttempt.attempted_at, WebhookAttempt.id)
        )
        return list(rows)


async def endpoint_row(runtime: Any, endpoint_id: str) -> WebhookEndpoint | None:
    async with runtime.sessions() as session:
        return await session.get(WebhookEndpoint, endpoint_id)
