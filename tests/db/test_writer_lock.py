"""The SQLite writer lock file (``showup.db.sqlite_adapter.WriterLock``): a connection to a
database file holds an exclusive ``flock`` on ``<db>-writer.lock`` exactly while SQLite is
in a transaction on it, so that writers of other processes wait in the kernel for it, not
in SQLite's busy handler.

Two engines on one file stand for two processes here: each has its own connection and
its own open lock file, and ``flock`` excludes open files, not processes. The test with
real processes is ``test_two_processes_writing_at_once_never_meet_the_busy_handler``.
"""

from __future__ import annotations

import asyncio
import fcntl
import multiprocessing
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from showup.db import sqlite_adapter
from showup.db.engine import make_engine
from tests.db.writer_lock import WAITS, lock_is_free, write_back_to_back


async def until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    """Wait (without blocking the loop) until ``condition`` holds: threads make it so."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.005)


async def writer_lock(conn: AsyncConnection) -> sqlite_adapter.WriterLock:
    raw = await conn.get_raw_connection()
    adapted = raw.dbapi_connection
    assert isinstance(adapted, sqlite_adapter.OneTripConnection)
    assert adapted._lock is not None
    return adapted._lock


async def no_busy_wait(engine: AsyncEngine) -> sqlite_adapter.WriterLock:
    """SQLite's busy handler off: meeting a taken write lock fails at once. Returns the
    writer lock of the engine's one connection (the pool lends that same connection)."""
    async with engine.connect() as conn:
        await conn.exec_driver_sql("PRAGMA busy_timeout=0")
        await conn.commit()
        return await writer_lock(conn)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Path]:
    path = tmp_path / "lock.db"
    engine = make_engine(f"sqlite+aiosqlite:///{path}")
    try:
        async with engine.begin() as conn:
            await conn.exec_driver_sql("CREATE TABLE log (name TEXT UNIQUE)")
    finally:
        await engine.dispose()
    yield path


async def test_a_second_connection_waits_on_the_file_lock_and_goes_on_at_the_commit(
    db: Path,
) -> None:
    first = make_engine(f"sqlite+aiosqlite:///{db}")
    second = make_engine(f"sqlite+aiosqlite:///{db}")
    # Had the second got to SQLite's write lock while the first held it, it would fail.
    lock = await no_busy_wait(second)
    try:
        async with first.connect() as conn:
            assert lock_is_free(db)
            # A read first: the lock is taken before the transaction reads anything.
            assert (await conn.execute(text("SELECT count(*) FROM log"))).scalar() == 0
            assert not lock_is_free(db)
            await conn.execute(text("INSERT INTO log VALUES ('first')"))

            async def read_then_write() -> int:
                async with second.connect() as other:
                    seen = (await other.execute(text("SELECT count(*) FROM log"))).scalar()
                    await other.execute(text("INSERT INTO log VALUES ('second')"))
                    await other.commit()
                    return int(seen or 0)

            waiting = asyncio.create_task(read_then_write())
            await until(lambda: lock._wanted)  # its aiosqlite thread waits for the lock
            assert not waiting.done()
            await conn.commit()
            # It read after the first transaction's commit: under the lock.
            assert await asyncio.wait_for(waiting, 10) == 1
        assert lock_is_free(db)
        async with first.connect() as conn:
            rows = (await conn.execute(text("SELECT name FROM log ORDER BY rowid"))).all()
            assert rows == [("first",), ("second",)]
            await conn.commit()
        assert lock_is_free(db)
    finally:
        await first.dispose()
        await second.dispose()


async def test_commit_and_rollback_release_the_lock(db: Path) -> None:
    engine = make_engine(f"sqlite+aiosqlite:///{db}")
    try:
        async with engine.connect() as conn:
            await conn.execute(text("INSERT INTO log VALUES ('a')"))
            assert not lock_is_free(db)
            await conn.commit()
            assert lock_is_free(db)
            await conn.execute(text("INSERT INTO log VALUES ('b')"))
            assert not lock_is_free(db)
            await conn.rollback()
            assert lock_is_free(db)
            # Transactions that ran nothing, and the COMMIT and ROLLBACK the adapter skips
            # (SQLite is out of a transaction): nothing taken, nothing left.
            await conn.begin()
            await conn.commit()
            await conn.begin()
            await conn.rollback()
            assert lock_is_free(db)
            async with conn.begin_nested():  # a savepoint opens the transaction too
                assert not lock_is_free(db)
            await conn.commit()
            assert lock_is_free(db)
        async with engine.connect() as conn:  # read-only, closed without a commit
            await conn.execute(text("SELECT * FROM log"))
            assert not lock_is_free(db)
        assert lock_is_free(db)  # the pool's rollback
    finally:
        await engine.dispose()


async def test_a_failed_statement_keeps_the_lock_until_the_transaction_ends(db: Path) -> None:
    engine = make_engine(f"sqlite+aiosqlite:///{db}")
    try:
        async with engine.connect() as conn:
            await conn.execute(text("INSERT INTO log VALUES ('a')"))
            await conn.commit()
            await conn.execute(text("INSERT INTO log VALUES ('b')"))
            with pytest.raises(IntegrityError):
                await conn.execute(text("INSERT INTO log VALUES ('a')"))
            assert not lock_is_free(db)  # SQLite is still in the transaction
            await conn.rollback()
            assert lock_is_free(db)
            with pytest.raises(OperationalError):
                await conn.execute(text("SELECT nothing FROM log"))
            assert not lock_is_free(db)  # BEGIN IMMEDIATE ran, the SELECT failed after it
            await conn.rollback()
            assert lock_is_free(db)
            # A statement whose failure ends the transaction in SQLite: released at once.
            await conn.execute(text("INSERT INTO log VALUES ('c')"))
            with pytest.raises(IntegrityError):
                await conn.execute(text("INSERT OR ROLLBACK INTO log VALUES ('a')"))
            assert lock_is_free(db)
            await conn.rollback()
            rows = (await conn.execute(text("SELECT name FROM log ORDER BY name"))).all()
            assert rows == [("a",)]
            await conn.commit()
            assert lock_is_free(db)
    finally:
        await engine.dispose()


async def test_a_failed_begin_releases_the_lock_and_is_tried_again(db: Path) -> None:
    """A process that does not take the file lock (the sqlite3 shell) holds SQLite's."""
    engine = make_engine(f"sqlite+aiosqlite:///{db}")
    other = sqlite3.connect(db, timeout=0, isolation_level=None)
    try:
        await no_busy_wait(engine)
        async with engine.connect() as conn:
            other.execute("BEGIN IMMEDIATE")
            with pytest.raises(OperationalError, match="locked"):
                await conn.execute(text("INSERT INTO log VALUES ('a')"))
            assert lock_is_free(db)
            other.execute("ROLLBACK")
            await conn.execute(text("INSERT INTO log VALUES ('b')"))  # BEGIN again
            assert not lock_is_free(db)
            await conn.commit()
            assert lock_is_free(db)
    finally:
        other.close()
        await engine.dispose()


async def test_closing_the_connection_releases_the_lock(db: Path) -> None:
    engine = make_engine(f"sqlite+aiosqlite:///{db}")
    try:
        async with engine.connect() as conn:
            lock = await writer_lock(conn)
            await conn.execute(text("INSERT INTO log VALUES ('a')"))
            assert not lock_is_free(db)
            await conn.run_sync(lambda sync: sync.connection.dbapi_connection.close())
            assert lock_is_free(db)
            assert lock._closed
            await conn.rollback()  # nothing to roll back: closed
            await conn.invalidate()  # out of the pool
        async with engine.connect() as conn:
            lock = await writer_lock(conn)
            await conn.execute(text("INSERT INTO log VALUES ('a')"))
            assert not lock_is_free(db)
            await conn.invalidate()  # as after a disconnect error: the pool closes it
            assert lock_is_free(db)
            assert lock._closed
        async with engine.connect() as conn:  # a new connection, a new lock
            await conn.execute(text("INSERT INTO log VALUES ('b')"))
            lock = await writer_lock(conn)
            await conn.commit()
        await engine.dispose()
        assert lock._closed
        assert lock_is_free(db)
    finally:
        await engine.dispose()


def _short_wait_engine(db: Path, timeout: float) -> AsyncEngine:
    """The adapter as make_engine plugs it in, with a short wait (make_engine: 60 s)."""
    engine = create_async_engine(
        f"sqlite+aiosqlite:///{db}",
        module=sqlite_adapter.dbapi(),
        connect_args={"timeout": timeout, "isolation_level": None},
        pool_size=1,
        max_overflow=0,
    )
    event.listen(engine.sync_engine, "begin", sqlite_adapter.begin_immediate)
    return engine


async def test_a_holder_that_never_lets_go_makes_the_wait_fail_not_hang(db: Path) -> None:
    engine = _short_wait_engine(db, 0.3)
    stuck = os.open(f"{db}{sqlite_adapter.LOCK_SUFFIX}", os.O_RDWR)
    try:
        fcntl.flock(stuck, fcntl.LOCK_EX)  # a process stuck while holding the lock
        async with engine.connect() as conn:
            lock = await writer_lock(conn)
            started = time.monotonic()
            with pytest.raises(OperationalError, match="database is locked"):
                await conn.execute(text("INSERT INTO log VALUES ('a')"))
            assert time.monotonic() - started >= 0.3
            with pytest.raises(OperationalError, match="database is locked"):
                await conn.execute(text("INSERT INTO log VALUES ('a')"))  # tried again
            assert lock._pending  # one blocking flock still waits for the holder
            fcntl.flock(stuck, fcntl.LOCK_UN)
            # Nobody wants what the helper thread gets now: it lets go at once.
            await until(lambda: not lock._pending)
            assert lock_is_free(db)
            await conn.execute(text("INSERT INTO log VALUES ('b')"))
            await conn.commit()
            assert lock_is_free(db)
            # Taken by the helper and handed over while the statement waits.
            fcntl.flock(stuck, fcntl.LOCK_EX)
            task = asyncio.create_task(conn.execute(text("INSERT INTO log VALUES ('c')")))
            await until(lambda: lock._wanted)
            fcntl.flock(stuck, fcntl.LOCK_UN)
            await asyncio.wait_for(task, 10)
            assert not lock_is_free(db)
            await conn.commit()
            assert lock_is_free(db)
            rows = (await conn.execute(text("SELECT name FROM log ORDER BY name"))).all()
            assert rows == [("b",), ("c",)]
            await conn.commit()
    finally:
        os.close(stuck)
        await engine.dispose()
    assert lock._closed
    assert lock._helper is not None
    lock._helper.join(5)
    assert not lock._helper.is_alive()


async def test_an_in_memory_database_has_no_lock_file(tmp_path: Path) -> None:
    engine = make_engine("sqlite+aiosqlite:///:memory:")
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
            raw = await conn.get_raw_connection()
            assert isinstance(raw.dbapi_connection, sqlite_adapter.OneTripConnection)
            assert raw.dbapi_connection._lock is None
            await conn.commit()
    finally:
        await engine.dispose()


def test_two_processes_writing_at_once_never_meet_the_busy_handler(db: Path) -> None:
    """Both processes write back to back with SQLite's busy handler off (busy_timeout=0):
    a transaction that reached SQLite's write lock while the other held it would fail at
    once with ``database is locked``. With the file lock, none does."""
    ctx = multiprocessing.get_context("spawn")
    # Both set up before either writes; each counts the times it found the lock taken.
    start, waits, out = ctx.Barrier(2), ctx.Array("i", 2), ctx.Queue()
    children = [
        ctx.Process(target=write_back_to_back, args=(i, str(db), start, waits, out))
        for i in range(2)
    ]
    for child in children:
        child.start()
    try:
        outcomes = [out.get(timeout=120) for _ in children]
    finally:
        for child in children:
            child.join(30)
    assert [c.exitcode for c in children] == [0, 0]
    assert [o["errors"] for o in outcomes] == [[], []]
    # They wrote at the same time: each found the lock taken by the other.
    assert all(o["waited"] >= WAITS for o in outcomes), outcomes
    committed = sum(o["committed"] for o in outcomes)
    with sqlite3.connect(db) as check:
        assert check.execute("SELECT count(*) FROM log").fetchone() == (committed,)
