"""SQLite engine: one connection per process, lent to transactions in turn.

Every SQLite transaction is ``BEGIN IMMEDIATE`` (the write lock), so a second connection
could only wait inside SQLite's busy handler, which sleeps and retries and lets newcomers
overtake. The engine's pool holds one connection instead: transactions queue in the
process, and each gets the connection as soon as the one before it ends.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from showup.db.engine import (
    SQLITE_CACHE_KIB,
    SQLITE_PAGE_SIZE,
    SQLITE_WAL_AUTOCHECKPOINT,
    make_engine,
    make_sessionmaker,
)


async def _spin() -> None:
    """Let started tasks run until they wait (a few event-loop passes; no clock)."""
    for _ in range(50):
        await asyncio.sleep(0)


async def _table(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE log (name TEXT)"))


async def test_transactions_wait_for_the_one_connection_in_turn(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'one.db'}")
    sessions = make_sessionmaker(engine)
    await _table(engine)
    inside, release = asyncio.Event(), asyncio.Event()
    order: list[str] = []
    held: list[int] = []

    async def tx(name: str, hold: bool = False) -> None:
        async with sessions() as session:
            await session.execute(text("INSERT INTO log VALUES (:n)"), {"n": name})
            held.append(engine.pool.checkedout())  # type: ignore[attr-defined]
            order.append(name)
            if hold:
                inside.set()
                await release.wait()
            await session.commit()

    try:
        first = asyncio.create_task(tx("a", hold=True))
        await inside.wait()
        second = asyncio.create_task(tx("b"))
        await _spin()
        third = asyncio.create_task(tx("c"))
        await _spin()
        assert order == ["a"]  # b and c wait in the process, not in SQLite
        release.set()
        await asyncio.gather(first, second, third)
        assert order == ["a", "b", "c"]
        assert held == [1, 1, 1]
        async with sessions() as session:
            assert (await session.execute(text("SELECT count(*) FROM log"))).scalar() == 3
    finally:
        await engine.dispose()


async def test_many_concurrent_transactions_all_commit(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'many.db'}")
    sessions = make_sessionmaker(engine)
    await _table(engine)

    async def tx(i: int) -> None:
        async with sessions() as session:
            await session.execute(text("INSERT INTO log VALUES (:n)"), {"n": str(i)})
            await asyncio.sleep(0)  # another task runs while this one holds the lock
            await session.commit()

    try:
        await asyncio.gather(*(tx(i) for i in range(50)))
        async with sessions() as session:
            assert (await session.execute(text("SELECT count(*) FROM log"))).scalar() == 50
    finally:
        await engine.dispose()


async def test_an_in_memory_database_keeps_its_own_pool() -> None:
    engine = make_engine("sqlite+aiosqlite:///:memory:")
    try:
        async with engine.begin() as conn:
            assert (await conn.execute(text("SELECT 1"))).scalar() == 1
    finally:
        await engine.dispose()


async def _pragma(engine: AsyncEngine, name: str) -> object:
    async with engine.connect() as conn:
        value = (await conn.exec_driver_sql(f"PRAGMA {name}")).scalar()
        await conn.commit()
        return value


async def test_a_new_database_gets_8k_pages_and_a_larger_checkpoint_interval(
    tmp_path: Path,
) -> None:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'new.db'}")
    try:
        await _table(engine)
        assert await _pragma(engine, "page_size") == SQLITE_PAGE_SIZE == 8192
        assert await _pragma(engine, "journal_mode") == "wal"
        assert await _pragma(engine, "wal_autocheckpoint") == SQLITE_WAL_AUTOCHECKPOINT
    finally:
        await engine.dispose()


async def test_every_connection_gets_the_larger_page_cache(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'cache.db'}")
    try:
        # A negative cache_size is a size in KiB (a positive one counts pages).
        assert await _pragma(engine, "cache_size") == -SQLITE_CACHE_KIB
        await engine.dispose()  # the next connection is a new one
        assert await _pragma(engine, "cache_size") == -SQLITE_CACHE_KIB
    finally:
        await engine.dispose()


async def test_an_existing_database_keeps_its_page_size(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    old.execute("PRAGMA page_size=4096")
    old.execute("PRAGMA journal_mode=WAL")
    old.execute("CREATE TABLE log (name TEXT)")
    old.execute("INSERT INTO log VALUES ('before')")
    old.commit()
    old.close()
    engine = make_engine(f"sqlite+aiosqlite:///{path}")
    sessions = make_sessionmaker(engine)
    try:
        assert await _pragma(engine, "page_size") == 4096
        async with sessions() as session:
            await session.execute(text("INSERT INTO log VALUES ('after')"))
            await session.commit()
        async with sessions() as session:
            names = (await session.execute(text("SELECT name FROM log ORDER BY name"))).all()
            assert names == [("after",), ("before",)]
    finally:
        await engine.dispose()
