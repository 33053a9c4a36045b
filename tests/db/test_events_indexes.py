"""ix_events_deleted_at holds deleted events only (migration 0005), and a range on
``deleted_at`` still finds them through it, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from showup.db.models import Event

CUTOFF = datetime(2026, 9, 1, tzinfo=UTC)


async def _index_sql(conn: AsyncConnection, name: str) -> str:
    if conn.dialect.name == "sqlite":
        query = text("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = :n")
    else:
        query = text("SELECT indexdef FROM pg_indexes WHERE indexname = :n")
    sql = (await conn.execute(query, {"n": name})).scalar_one()
    assert isinstance(sql, str)
    return sql


async def _plan(conn: AsyncConnection, sql: str) -> str:
    """The query plan of ``sql`` (``:cutoff`` bound to CUTOFF) as one string; on
    PostgreSQL, an index scan wherever one is possible (its planner prefers a sequential
    scan of a small table)."""
    cutoff = bindparam("cutoff", CUTOFF, type_=Event.__table__.c.deleted_at.type)
    if conn.dialect.name == "sqlite":
        rows = await conn.execute(text(f"EXPLAIN QUERY PLAN {sql}").bindparams(cutoff))
        return "\n".join(str(r[-1]) for r in rows)
    await conn.execute(text("SET LOCAL enable_seqscan = off"))
    rows = await conn.execute(text(f"EXPLAIN {sql}").bindparams(cutoff))
    return "\n".join(str(r[0]) for r in rows)


async def test_deleted_at_index_is_partial(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        sql = await _index_sql(conn, "ix_events_deleted_at")
    assert "deleted_at IS NOT NULL" in sql, sql


async def test_range_on_deleted_at_uses_the_partial_index(engine: AsyncEngine) -> None:
    # ``deleted_at < cutoff`` implies ``deleted_at IS NOT NULL`` for both planners (a
    # comparison is never true on NULL), which a partial index needs before it is used.
    async with engine.begin() as conn:
        for sql in (
            "SELECT id FROM events WHERE deleted_at < :cutoff",
            "DELETE FROM events WHERE deleted_at < :cutoff",
        ):
            plan = await _plan(conn, sql)
            assert "ix_events_deleted_at" in plan, plan
