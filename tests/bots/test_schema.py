"""Migration 0003 matches the models, and the database itself enforces one live bot per
(tenant, deduplication key) and one active bot per event, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from showup.db.bot_models import Bot, BotEvent
from showup.db.models import Base, Event, Tenant
from showup.db.webhook_models import WebhookEndpoint  # noqa: F401  (registers tables)
from tests.support.helpers import bare_calendar

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
OURS = {"bots", "bot_events", "tenant_bot_settings"}


def _diff(conn: Connection) -> list[Any]:
    ctx = MigrationContext.configure(conn, opts={"compare_type": True})
    return [d for d in compare_metadata(ctx, Base.metadata) if _touches_ours(d)]


def _touches_ours(diff: Any) -> bool:
    items = diff if isinstance(diff, list) else [diff]
    for item in items:
        for part in item[1:]:
            table = getattr(part, "table", None) or getattr(part, "name", None)
            name = getattr(table, "name", table)
            if name in OURS:
                return True
    return False


async def test_migration_matches_models(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        assert await conn.run_sync(_diff) == []


def _bot(tenant_id: str, key: str, status: str) -> Bot:
    return Bot(
        tenant_id=tenant_id,
        deduplication_key=key,
        status=status,
        join_at=NOW,
        meeting_url="https://meet.google.com/abc-defg-hij",
        bot_config={},
        meeting_start=NOW,
        meeting_end=NOW,
        deadline=NOW,
        attempts=0,
        created_at=NOW,
        updated_at=NOW,
    )


async def _seed(session: Any) -> tuple[str, str, str]:
    tenant = Tenant(name="T", created_at=NOW)
    session.add(tenant)
    await session.flush()
    cal = bare_calendar(tenant.id, NOW)
    session.add(cal)
    await session.flush()
    ev = Event(
        tenant_id=tenant.id,
        calendar_id=cal.id,
        platform_id="p1",
        start_time=NOW,
        end_time=NOW,
        raw={},
        fingerprint="f",
        created_at=NOW,
        updated_at=NOW,
    )
    session.add(ev)
    await session.flush()
    return tenant.id, cal.id, ev.id


async def test_one_live_bot_per_key(engine: AsyncEngine) -> None:
    from showup.db.engine import make_sessionmaker

    sessions = make_sessionmaker(engine)
    async with sessions() as session:
        tenant_id, _, _ = await _seed(session)
        for status in ("cancelled", "dispatched", "failed", "scheduled"):
            session.add(_bot(tenant_id, "k", status))
        await session.commit()
    for status in ("scheduled", "dispatching"):
        async with sessions() as session:
            session.add(_bot(tenant_id, "k", status))
            with pytest.raises(IntegrityError):
                await session.commit()


async def test_one_active_link_per_event(engine: AsyncEngine) -> None:
    from showup.db.engine import make_sessionmaker

    sessions = make_sessionmaker(engine)
    async with sessions() as session:
        tenant_id, cal_id, ev_id = await _seed(session)
        a, b, c = (_bot(tenant_id, key, "scheduled") for key in "abc")
        session.add_all([a, b, c])
        await session.flush()

        def link(bot: Bot, state: str) -> BotEvent:
            return BotEvent(
                tenant_id=tenant_id,
                bot_id=bot.id,
                event_id=ev_id,
                calendar_id=cal_id,
                state=state,
                created_at=NOW,
                updated_at=NOW,
            )

        session.add_all([link(a, "superseded"), link(b, "active")])
        await session.commit()
    async with sessions() as session:
        session.add(link(c, "active"))
        with pytest.raises(IntegrityError):
            await session.commit()
