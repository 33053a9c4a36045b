"""Migration 0004 matches the models: push_channels and the calendars' push columns."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from showup.db import bot_models as _bot_models  # noqa: F401  (registers tables)
from showup.db import webhook_models as _webhook_models  # noqa: F401  (registers tables)
from showup.db.channel_models import PushChannel
from showup.db.models import Base

PUSH_COLUMNS = {"push_status", "push_reason", "sync_requested_at"}


def _diff(conn: Connection) -> list[Any]:
    ctx = MigrationContext.configure(conn, opts={"compare_type": True})
    return [d for d in compare_metadata(ctx, Base.metadata) if _ours(d)]


def _ours(diff: Any) -> bool:
    for item in diff if isinstance(diff, list) else [diff]:
        text = repr(item)
        if "push_channels" in text or any(c in text for c in PUSH_COLUMNS):
            return True
    return False


async def test_migration_matches_models(engine: AsyncEngine) -> None:
    assert PushChannel.__tablename__ in Base.metadata.tables
    async with engine.connect() as conn:
        assert await conn.run_sync(_diff) == []
