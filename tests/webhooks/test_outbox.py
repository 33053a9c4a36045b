"""The outbox: what ``enqueue`` writes, for whom, and that it commits with its caller."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from showup.db.webhook_models import WebhookDelivery, WebhookEndpoint, WebhookMessage
from showup.tenants import create_tenant
from showup.webhooks.endpoints import create_endpoint, disable_endpoint
from showup.webhooks.outbox import (
    BOT_CANCELLED,
    BOT_SCHEDULED,
    CALENDAR_SYNC_EVENTS,
    EVENT_TYPES,
    enqueue,
)
from tests.support.helpers import listening
from tests.webhooks.helpers import add_endpoint, all_deliveries, announce
from tests.webhooks.support import HOOK_URL, Receiver


async def count(runtime: Any, model: Any) -> int:
    async with runtime.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


def test_event_types_are_the_documented_ones() -> None:
    assert set(EVENT_TYPES) == {
        "calendar.update",
        "calendar.sync_events",
        "bot.scheduled",
        "bot.updated",
        "bot.cancelled",
        "bot.dispatch",
        "bot.failed",
    }


async def test_no_listener_means_nothing_written(runtime: Any, tenant: Any) -> None:
    assert await announce(runtime, tenant.tenant_id) is None
    assert await count(runtime, WebhookMessage) == 0
    assert await count(runtime, WebhookDelivery) == 0


async def test_message_and_one_delivery_per_matching_enabled_endpoint(
    runtime: Any, tenant: Any, api: httpx.AsyncClient
) -> None:
    every, _ = await add_endpoint(api)
    bots_only, _ = await add_endpoint(api, event_types=[BOT_SCHEDULED, BOT_CANCELLED])
    calendars_only, _ = await add_endpoint(api, event_types=[CALENDAR_SYNC_EVENTS])
    disabled, _ = await add_endpoint(api)
    async with runtime.sessions() as session:
        from showup.webhooks.endpoints import get_endpoint

        ep = await get_endpoint(session, tenant.tenant_id, disabled)
        assert ep is not None
        await disable_endpoint(session, ep, reason="test", now=runtime.clock.now())
        await session.commit()

    msg_id = await announce(runtime, tenant.tenant_id, BOT_SCHEDULED, {"bot_id": "b1"})
    assert msg_id is not None and msg_id.startswith("msg_") and "." not in msg_id
    sync_id = await announce(runtime, tenant.tenant_id, CALENDAR_SYNC_EVENTS, {"calendar_id": "c"})
    by_message: dict[str, set[str | None]] = {}
    for d in await all_deliveries(runtime):
        assert d.status == "pending" and d.attempts == 0
        by_message.setdefault(d.message_id, set()).add(d.endpoint_id)
    assert by_message == {msg_id: {every, bots_only}, sync_id: {every, calendars_only}}


async def test_envelope_has_recall_event_key_and_standard_fields(
    runtime: Any, tenant: Any, api: httpx.AsyncClient
) -> None:
    await add_endpoint(api)
    data = {"calendar_id": "cal-1", "last_updated_ts": "2026-11-02T08:59:00Z"}
    msg_id = await announce(runtime, tenant.tenant_id, CALENDAR_SYNC_EVENTS, data)
    async with runtime.sessions() as session:
        msg = await session.get(WebhookMessage, msg_id)
    assert msg is not None
    assert json.loads(msg.payload) == {
        "event": "calendar.sync_events",
        "type": "calendar.sync_events",
        "timestamp": "2026-11-02T09:00:00Z",
        "data": data,
    }


async def test_calendar_webhook_url_gets_its_own_delivery(runtime: Any, tenant: Any) -> None:
    msg_id = await announce(
        runtime, tenant.tenant_id, CALENDAR_SYNC_EVENTS, {"calendar_id": "c"}, HOOK_URL + "/cal"
    )
    assert msg_id is not None
    [d] = await all_deliveries(runtime)
    assert d.endpoint_id is None and d.target_url == HOOK_URL + "/cal"
    assert d.status == "pending" and d.next_attempt_at == runtime.clock.now()


async def test_other_tenants_endpoints_are_not_targets(
    runtime: Any, tenant: Any, api: httpx.AsyncClient
) -> None:
    await add_endpoint(api)
    async with runtime.sessions() as session:
        other = await create_tenant(session, runtime.clock, "Other")
        await session.commit()
    assert await announce(runtime, other.tenant_id) is None


async def test_rolled_back_enqueue_sends_nothing(
    runtime: Any, tenant: Any, api: httpx.AsyncClient, worker: Any, receiver: Receiver
) -> None:
    """DESIGN invariant 2: the outbox rows live and die with the caller's transaction."""
    await add_endpoint(api)
    async with runtime.sessions() as session:
        msg_id = await enqueue(
            session,
            tenant_id=tenant.tenant_id,
            event_type=BOT_SCHEDULED,
            data={"bot_id": "b"},
            now=runtime.clock.now(),
        )
        assert msg_id is not None  # flushed: visible inside the transaction
        assert await session.get(WebhookMessage, msg_id) is not None
        await session.rollback()
    await worker.drain()
    assert receiver.requests == []
    assert await count(runtime, WebhookMessage) == 0
    assert await count(runtime, WebhookDelivery) == 0


async def test_unknown_type_and_unserializable_data_are_refused(
    runtime: Any, tenant: Any, api: httpx.AsyncClient
) -> None:
    await add_endpoint(api)
    async with runtime.sessions() as session:
        with pytest.raises(ValueError, match="unknown webhook event type"):
            await enqueue(
                session,
                tenant_id=tenant.tenant_id,
                event_type="bot.exploded",
                data={},
                now=runtime.clock.now(),
            )
        with pytest.raises(TypeError):
            await enqueue(
                session,
                tenant_id=tenant.tenant_id,
                event_type=BOT_SCHEDULED,
                data={"when": object()},
                now=runtime.clock.now(),
            )
        assert not session.new


async def test_create_endpoint_seals_the_secret(runtime: Any, tenant: Any) -> None:
    async with runtime.sessions() as session:
        created = await create_endpoint(
            session,
            runtime.vault,
            tenant_id=tenant.tenant_id,
            url=HOOK_URL,
            event_types=None,
            description=None,
            now=runtime.clock.now(),
        )
        await session.commit()
    assert created.secret.startswith("whsec_")
    assert created.secret.encode() not in created.endpoint.secret_enc
    assert runtime.vault.open(tenant.tenant_id, created.endpoint.secret_enc) == created.secret


async def _targets(runtime: Any, session: Any, tenant_id: str) -> set[str]:
    """The endpoints a ``bot.scheduled`` enqueued now in ``session`` goes to."""
    msg_id = await enqueue(
        session,
        tenant_id=tenant_id,
        event_type=BOT_SCHEDULED,
        data={"bot_id": "b"},
        now=runtime.clock.now(),
    )
    if msg_id is None:
        return set()
    rows = await session.scalars(
        select(WebhookDelivery.endpoint_id).where(WebhookDelivery.message_id == msg_id)
    )
    return {r for r in rows if r is not None}


@contextmanager
def endpoint_reads(runtime: Any) -> Iterator[list[str]]:
    """The statements that read the webhook_endpoints table."""
    seen: list[str] = []

    def on_execute(*args: Any) -> None:
        statement = args[2]
        if statement.lstrip().upper().startswith("SELECT") and "webhook_endpoints" in statement:
            seen.append(statement)

    with listening(runtime.engine, "before_cursor_execute", on_execute):
        yield seen


async def test_one_transaction_reads_the_endpoints_once(
    runtime: Any, tenant: Any, api: httpx.AsyncClient
) -> None:
    """A first sync announces twice in one transaction; the endpoints are read once, and
    each message still goes to the endpoints whose filter admits it."""
    every, _ = await add_endpoint(api)
    calendars_only, _ = await add_endpoint(api, event_types=[CALENDAR_SYNC_EVENTS])
    async with runtime.sessions() as session:
        other = await create_tenant(session, runtime.clock, "Other")
        await session.commit()
    with endpoint_reads(runtime) as reads:
        async with runtime.sessions() as session:
            assert await _targets(runtime, session, tenant.tenant_id) == {every}
            synced = await enqueue(
                session,
                tenant_id=tenant.tenant_id,
                event_type=CALENDAR_SYNC_EVENTS,
                data={"calendar_id": "c"},
                now=runtime.clock.now(),
            )
            assert len(reads) == 1
            assert await _targets(runtime, session, other.tenant_id) == set()
            assert len(reads) == 2  # another tenant: its own read
            await session.commit()
        async with runtime.sessions() as session:
            assert await _targets(runtime, session, tenant.tenant_id) == {every}
            await session.commit()
        assert len(reads) == 3  # a new transaction reads again
    deliveries = await all_deliveries(runtime)
    assert {d.endpoint_id for d in deliveries if d.message_id == synced} == {
        every,
        calendars_only,
    }


async def test_endpoints_written_in_the_transaction_are_seen(
    runtime: Any, tenant: Any, api: httpx.AsyncClient
) -> None:
    first, _ = await add_endpoint(api)
    now = runtime.clock.now()
    async with runtime.sessions() as session:
        assert await _targets(runtime, session, tenant.tenant_id) == {first}
        created = await create_endpoint(
            session,
            runtime.vault,
            tenant_id=tenant.tenant_id,
            url=HOOK_URL + "/2",
            event_types=None,
            description=None,
            now=now,
        )
        second = created.endpoint.id
        assert await _targets(runtime, session, tenant.tenant_id) == {first, second}
        ep = await session.get(WebhookEndpoint, first)
        assert ep is not None
        await disable_endpoint(session, ep, reason="test", now=now)
        assert await _targets(runtime, session, tenant.tenant_id) == {second}
        await session.execute(
            update(WebhookEndpoint).where(WebhookEndpoint.id == first).values(disabled=False)
        )
        assert await _targets(runtime, session, tenant.tenant_id) == {first, second}
        await session.execute(
            update(WebhookEndpoint).where(WebhookEndpoint.id == first).values(disabled=True)
        )
        assert await _targets(runtime, session, tenant.tenant_id) == {second}
        # Rolled back to a savepoint: the endpoint created there is no target any more.
        nested = await session.begin_nested()
        third = (
            await create_endpoint(
                session,
                runtime.vault,
                tenant_id=tenant.tenant_id,
                url=HOOK_URL + "/3",
                event_types=None,
                description=None,
                now=now,
            )
        ).endpoint.id
        assert await _targets(runtime, session, tenant.tenant_id) == {second, third}
        await nested.rollback()
        assert await _targets(runtime, session, tenant.tenant_id) == {second}
        await session.commit()
