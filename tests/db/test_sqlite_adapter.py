"""The SQLite adapter (``showup.db.sqlite_adapter``): one aiosqlite call per statement,
``BEGIN IMMEDIATE`` sent with a transaction's first statement, and otherwise exactly what
SQLAlchemy's stock aiosqlite adapter does (checked side by side against it)."""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import inspect
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any, cast

import aiosqlite
import pytest
from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    String,
    Table,
    delete,
    event,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.connectors import asyncio as sa_connectors_asyncio
from sqlalchemy.dialects.sqlite import aiosqlite as sa_aiosqlite
from sqlalchemy.engine import base as sa_engine_base
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from showup.db import sqlite_adapter
from showup.db.engine import SQLITE_WAIT, make_engine, make_sessionmaker
from tests.db.writer_lock import lock_is_free

metadata = MetaData()
items = Table(
    "items",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(50), unique=True, nullable=False),
    Column("n", Integer),
)


def stock_engine(url: str) -> AsyncEngine:
    """The engine as it was before the adapter: SQLAlchemy's own aiosqlite adapter, with
    ``BEGIN IMMEDIATE`` executed through SQLAlchemy on ``begin``."""
    engine = create_async_engine(
        url,
        connect_args={"timeout": SQLITE_WAIT, "isolation_level": None},
        pool_size=1,
        max_overflow=0,
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _error(exc: BaseException) -> tuple[str, str, str]:
    orig = exc.orig if isinstance(exc, DBAPIError) else None
    return type(exc).__name__, type(orig).__name__, str(orig)


async def _scenario(conn: AsyncConnection) -> list[Any]:
    """Observations of everything SQLAlchemy reads from a cursor."""
    seen: list[Any] = []
    await conn.run_sync(metadata.create_all)
    await conn.commit()

    r = await conn.execute(insert(items).values(name="a", n=1))
    seen += ["insert", r.rowcount, r.lastrowid, tuple(r.inserted_primary_key or ())]
    r = await conn.execute(insert(items), [{"name": f"m{i}", "n": i} for i in range(200)])
    seen += ["executemany", r.rowcount]
    r = await conn.execute(select(items).where(items.c.n < 5).order_by(items.c.id))
    seen += ["select", list(r.keys()), [tuple(row) for row in r]]
    r = await conn.execute(select(items.c.id, items.c.name).where(items.c.id == 1))
    seen += ["select pk", tuple(r.one()), r.rowcount]
    r = await conn.execute(select(items).where(items.c.n == -1))
    seen += ["no rows", list(r.keys()), r.all()]
    r = await conn.execute(select(items.c.n).order_by(items.c.id).limit(7))
    seen += ["partitions", [list(p) for p in r.scalars().partitions(3)]]
    r = await conn.execute(update(items).where(items.c.n < 50).values(n=items.c.n + 1000))
    seen += ["update", r.rowcount]
    r = await conn.execute(update(items).where(items.c.n == -1).values(n=0))
    seen += ["update none", r.rowcount]
    r = await conn.execute(delete(items).where(items.c.n > 1100))
    seen += ["delete", r.rowcount]
    r = await conn.execute(insert(items).values(name="r", n=7).returning(items.c.id, items.c.name))
    seen += ["returning", list(r.keys()), r.all()]
    r = await conn.execute(
        insert(items).returning(items.c.name, sort_by_parameter_order=True),
        [{"name": f"rm{i}", "n": i} for i in range(5)],
    )
    seen += ["insertmanyvalues returning", r.all()]
    r = await conn.execute(
        update(items).where(items.c.name == "r").values(n=8).returning(items.c.n)
    )
    seen += ["update returning", r.all(), r.rowcount]
    r = await conn.exec_driver_sql("SELECT count(*), max(n) FROM items WHERE n > ?", (5,))
    seen += ["driver sql", r.all()]
    await conn.commit()

    # A unique violation inside a savepoint, as the bots' dedup key is used.
    try:
        async with conn.begin_nested():
            await conn.execute(insert(items).values(name="a", n=2))
    except IntegrityError as exc:
        seen += ["unique", _error(exc)]
    r = await conn.execute(select(items.c.n).where(items.c.name == "a"))
    seen += ["after savepoint", r.all()]
    await conn.commit()
    try:
        await conn.execute(insert(items), [{"name": "x", "n": 1}, {"name": "x", "n": 2}])
    except IntegrityError as exc:
        seen += ["unique executemany", _error(exc)]
    await conn.rollback()
    try:
        await conn.execute(text("SELEC 1"))
    except DBAPIError as exc:
        seen += ["syntax", _error(exc)]
    await conn.rollback()

    await conn.execute(insert(items).values(name="gone", n=0))
    await conn.rollback()
    r = await conn.execute(select(items.c.name).where(items.c.name == "gone"))
    seen += ["rolled back", r.all()]
    r = await conn.execute(text("SELECT count(*) FROM items"))
    seen += ["count", r.scalar()]
    await conn.commit()
    return seen


async def test_the_adapter_reads_and_raises_exactly_as_the_stock_one(tmp_path: Path) -> None:
    results = []
    for name, make in (("stock", stock_engine), ("ours", make_engine)):
        engine = make(f"sqlite+aiosqlite:///{tmp_path / name}.db")
        try:
            async with engine.connect() as conn:
                results.append(await _scenario(conn))
        finally:
            await engine.dispose()
    stock, ours = results
    assert ours == stock
    # And the scenario saw what it should (so that both cannot agree on nothing).
    assert ours[ours.index("executemany") + 1] == 200
    assert ours[ours.index("insert") + 1 : ours.index("insert") + 4] == [1, 1, (1,)]
    unique = ours[ours.index("unique") + 1]
    assert unique[:2] == ("IntegrityError", "IntegrityError")
    assert "UNIQUE" in unique[2]


class _CountingQueue:
    """Stands in for an aiosqlite connection's call queue, counting what is put on it."""

    def __init__(self, queue: Any) -> None:
        self.queue = queue
        self.calls = [0]

    def put_nowait(self, item: Any) -> None:
        self.calls[0] += 1
        self.queue.put_nowait(item)


def counting_calls(driver: Any) -> list[int]:
    """Counts, from now on, the calls queued to an aiosqlite connection's thread."""
    counting = _CountingQueue(driver._tx)
    driver._tx = counting
    return counting.calls


async def test_an_uncontended_transaction_makes_no_call_on_the_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """BEGIN IMMEDIATE, the statements and the COMMIT or ROLLBACK all run inline when the
    write lock is free: nothing goes to aiosqlite's thread (no checkpoint falls due here)."""
    monkeypatch.setattr(sqlite_adapter, "CHECKPOINTS", sqlite_adapter.Checkpoints(10**9))
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'calls.db'}")
    sessions = make_sessionmaker(engine)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
            # The engine's one connection, for the whole test.
            calls = counting_calls((await conn.get_raw_connection()).driver_connection)
        assert calls == [0]  # the COMMIT ran inline
        assert lock_is_free(tmp_path / "calls.db")
        async with engine.connect() as conn:
            await conn.execute(select(items))  # BEGIN IMMEDIATE + SELECT
            await conn.execute(insert(items).values(name="a", n=1))
            await conn.execute(insert(items), [{"name": f"m{i}"} for i in range(200)])
            assert (await conn.execute(select(func.count()).select_from(items))).scalar() == 201
            await conn.commit()
            assert lock_is_free(tmp_path / "calls.db")
            # A transaction that ran nothing costs nothing.
            await conn.begin()
            await conn.commit()
            await conn.begin()
            await conn.rollback()
            await conn.execute(update(items).values(n=2))
            await conn.rollback()
            # After a failed statement SQLite is still in the transaction: it rolls back.
            with pytest.raises(IntegrityError):
                await conn.execute(insert(items).values(name="a"))
            with pytest.raises(IntegrityError):
                await conn.execute(insert(items).values(name="m1"))
            await conn.rollback()
            assert (await conn.execute(select(items.c.n).distinct())).all() == [(1,), (None,)]
            await conn.commit()
            # The busy timeout, set to 0 for each inline BEGIN, is back.
            busy = (await conn.exec_driver_sql("PRAGMA busy_timeout")).scalar()
            await conn.commit()
        assert busy == SQLITE_WAIT * 1000
        async with sessions() as session:
            await session.execute(update(items).where(items.c.name == "a").values(n=3))
            await session.execute(update(items).where(items.c.name == "m0").values(n=4))
            await session.commit()
        async with sessions() as session:  # read-only, closed without a commit
            await session.execute(select(items).where(items.c.name == "a"))
        assert lock_is_free(tmp_path / "calls.db")  # the pool's ROLLBACK released it
        assert calls == [0]
        async with sessions() as session:
            assert (await session.execute(select(items.c.n).where(items.c.name == "a"))).all() == [
                (3,)
            ]
    finally:
        await engine.dispose()


async def test_a_begin_that_must_wait_waits_on_the_thread_not_the_loop(tmp_path: Path) -> None:
    """Another writer holds SQLite's write lock (without our lock file, as the sqlite3
    shell would): the inline BEGIN gives up at once and the statement waits on aiosqlite's
    thread, in SQLite's busy handler, while the event loop goes on: the loop itself lets
    the other writer go, and only then does the statement complete."""
    path = tmp_path / "wait.db"
    engine = make_engine(f"sqlite+aiosqlite:///{path}")
    other = sqlite3.connect(path, timeout=0, isolation_level=None, check_same_thread=False)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
            driver = (await conn.get_raw_connection()).driver_connection
            calls = counting_calls(driver)
        other.execute("BEGIN IMMEDIATE")

        async def write() -> None:
            async with engine.connect() as conn:
                await conn.execute(insert(items).values(name="a"))
                assert calls == [1]  # this statement with its BEGIN (the COMMIT above: inline)
                await conn.commit()

        writing = asyncio.create_task(write())
        for _ in range(5):  # the loop keeps turning while the statement waits
            await asyncio.sleep(0)
        assert not writing.done()
        other.execute("ROLLBACK")
        await asyncio.wait_for(writing, SQLITE_WAIT)
        assert _lock_is_free(path) and lock_is_free(path)
    finally:
        other.close()
        await engine.dispose()


async def test_an_uncontended_transaction_runs_on_the_event_loops_thread(tmp_path: Path) -> None:
    path = tmp_path / "inline.db"
    engine = make_engine(f"sqlite+aiosqlite:///{path}")
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
            driver = (await conn.get_raw_connection()).driver_connection
            driver._conn.create_function("tid", 0, threading.get_ident)
        loop_thread = threading.get_ident()
        async with engine.connect() as conn:
            first = (await conn.execute(text("SELECT tid()"))).scalar()
            second = (await conn.execute(text("SELECT tid()"))).scalar()
            assert not _lock_is_free(path) and not lock_is_free(path)
            await conn.commit()
            assert _lock_is_free(path) and lock_is_free(path)
            third = (await conn.execute(text("SELECT tid()"))).scalar()
            await conn.rollback()
        assert first == second == third == loop_thread
        assert driver._thread.ident != loop_thread
    finally:
        await engine.dispose()


def _lock_is_free(path: Path) -> bool:
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        assert "locked" in str(exc)
        return False
    else:
        other.execute("ROLLBACK")
        return True
    finally:
        other.close()


async def test_a_transaction_holds_the_write_lock_from_its_first_read(tmp_path: Path) -> None:
    path = tmp_path / "lock.db"
    engine = make_engine(f"sqlite+aiosqlite:///{path}")
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        assert _lock_is_free(path)
        async with engine.connect() as conn:
            await conn.execute(select(items))  # a read, yet BEGIN IMMEDIATE
            assert not _lock_is_free(path)
            await conn.commit()
            assert _lock_is_free(path)
            async with conn.begin_nested():  # a savepoint first: still BEGIN IMMEDIATE
                assert not _lock_is_free(path)
            await conn.rollback()
            assert _lock_is_free(path)
    finally:
        await engine.dispose()


async def test_a_streamed_select_begins_too(tmp_path: Path) -> None:
    path = tmp_path / "stream.db"
    engine = make_engine(f"sqlite+aiosqlite:///{path}")
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
            await conn.execute(insert(items), [{"name": f"m{i}", "n": i} for i in range(100)])
        async with engine.connect() as conn:
            result = await conn.stream(select(items.c.n).order_by(items.c.n))
            assert not _lock_is_free(path)
            assert [n async for n in result.scalars()] == list(range(100))
            await conn.commit()
            assert _lock_is_free(path)
    finally:
        await engine.dispose()


async def test_a_failed_begin_is_tried_again_by_the_next_statement(tmp_path: Path) -> None:
    path = tmp_path / "busy.db"
    engine = make_engine(f"sqlite+aiosqlite:///{path}")
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
            await conn.exec_driver_sql("PRAGMA busy_timeout=0")  # fail at once, not in 60 s
        async with engine.connect() as conn:
            other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
            with pytest.raises(OperationalError, match="locked"):
                await conn.execute(insert(items).values(name="a"))
            other.execute("ROLLBACK")
            # Still in the same SQLAlchemy transaction: its BEGIN IMMEDIATE is owed.
            await conn.execute(select(items))
            assert not _lock_is_free(path)
            await conn.execute(insert(items).values(name="b"))
            await conn.commit()
            assert _lock_is_free(path)
            assert (await conn.execute(select(items.c.name))).all() == [("b",)]
            await conn.commit()
    finally:
        other.close()
        await engine.dispose()


@pytest.mark.parametrize("make", [stock_engine, make_engine], ids=["stock", "ours"])
async def test_a_statement_cancelled_in_the_queue_is_rolled_back(tmp_path: Path, make: Any) -> None:
    """A cancelled statement may still run once aiosqlite's thread gets to it; the
    connection's rollback then comes after it, and so ends its transaction. Ours: nothing
    of that connection runs inline (on the loop's thread) meanwhile."""
    path = tmp_path / "cancel.db"
    engine = make(f"sqlite+aiosqlite:///{path}")
    held = os.open(f"{path}{sqlite_adapter.LOCK_SUFFIX}", os.O_RDWR | os.O_CREAT)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
            raw = await conn.get_raw_connection()
            driver, adapted = raw.driver_connection, raw.dbapi_connection
        # Ours: the writer lock taken elsewhere, so that the BEGIN cannot run inline and
        # the statement is queued on the thread, which is busy until the gate opens.
        fcntl.flock(held, fcntl.LOCK_EX)
        gate = threading.Event()
        driver._tx.put_nowait((None, gate.wait))

        async def tx() -> None:
            async with engine.connect() as conn:
                await conn.execute(insert(items).values(name="cancelled"))
                await conn.commit()

        task = asyncio.create_task(tx())
        for _ in range(20):
            await asyncio.sleep(0)
        if make is make_engine:
            assert not adapted._idle and not adapted._inline  # queued, not inline
        task.cancel()
        fcntl.flock(held, fcntl.LOCK_UN)
        gate.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        async with engine.connect() as conn:  # waits for the rollback, as it is queued after
            assert (await conn.execute(select(items))).all() == []
            await conn.commit()
        assert _lock_is_free(path)
        assert lock_is_free(path)  # and the writer lock file (ours) with it
    finally:
        os.close(held)
        await engine.dispose()


async def test_a_closed_connection_raises_sqlalchemys_error(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'closed.db'}")
    try:
        async with engine.connect() as conn:
            raw = await conn.get_raw_connection()
            await raw.driver_connection.close()
            with pytest.raises(OperationalError):
                await conn.execute(select(1))
            await conn.rollback()
    finally:
        await engine.dispose()


async def test_the_begin_listener_refuses_an_engine_without_the_adapter() -> None:
    engine = create_async_engine("sqlite+aiosqlite:///:memory:")
    event.listen(engine.sync_engine, "begin", sqlite_adapter.begin_immediate)
    try:
        async with engine.connect() as conn:
            with pytest.raises(TypeError, match="one-trip"):
                await conn.execute(select(1))
    finally:
        await engine.dispose()


# The SQLAlchemy and aiosqlite code the adapter subclasses or calls into, as audited
# (SQLAlchemy 2.1.9, aiosqlite 0.22.1). A digest that no longer matches means an upgrade
# changed it: re-read it against showup/db/sqlite_adapter.py, then update the digest.
AUDITED = {
    "sqlalchemy AsyncAdapt_dbapi_cursor": (
        sa_connectors_asyncio.AsyncAdapt_dbapi_cursor,
        "f8e13406d2c77f54",
    ),
    "sqlalchemy AsyncAdapt_dbapi_ss_cursor": (
        sa_connectors_asyncio.AsyncAdapt_dbapi_ss_cursor,
        "53b0e622391e5233",
    ),
    "sqlalchemy AsyncAdapt_dbapi_connection": (
        sa_connectors_asyncio.AsyncAdapt_dbapi_connection,
        "fd5f3f964e1ffcd2",
    ),
    "sqlalchemy aiosqlite adapter classes": (sa_aiosqlite, "4d426a5adc6ec87f"),
    "sqlalchemy Connection._begin_impl": (
        sa_engine_base.Connection._begin_impl,
        "4012d5e82fc07ab0",
    ),
    "aiosqlite Connection": (aiosqlite.Connection, "648644bef40ab600"),
    "aiosqlite worker thread": (aiosqlite.core._connection_worker_thread, "17e364bc23e051c3"),
}


def _digest(obj: Any) -> str:
    if inspect.ismodule(obj):  # the adapter classes of SQLAlchemy's aiosqlite dialect
        source = "".join(
            inspect.getsource(getattr(obj, name))
            for name in (
                "AsyncAdapt_aiosqlite_cursor",
                "AsyncAdapt_aiosqlite_ss_cursor",
                "AsyncAdapt_aiosqlite_connection",
                "AsyncAdapt_aiosqlite_dbapi",
            )
        )
    else:
        source = inspect.getsource(obj)
    return hashlib.sha256(source.encode()).hexdigest()[:16]


@pytest.mark.parametrize("name", sorted(AUDITED))
def test_the_internals_the_adapter_relies_on_are_unchanged(name: str) -> None:
    obj, digest = AUDITED[name]
    assert _digest(obj) == digest, (
        f"{name} changed (SQLAlchemy/aiosqlite upgrade?): re-audit "
        "src/showup/db/sqlite_adapter.py against it, then update AUDITED"
    )


class _Changes:
    def __init__(self) -> None:
        self.total_changes = 0


def test_checkpoints_count_rows_and_commits_of_every_connection() -> None:
    checkpoints = sqlite_adapter.Checkpoints(every=100)
    a, b = _Changes(), _Changes()
    seen_a, seen_b = sqlite_adapter.Seen(), sqlite_adapter.Seen()
    conn_a, conn_b = cast(sqlite3.Connection, a), cast(sqlite3.Connection, b)
    assert not checkpoints.due(conn_a, seen_a)  # a first commit: its weight, 5
    a.total_changes = 60
    assert not checkpoints.due(conn_a, seen_a)  # + 60 + 5 = 70
    b.total_changes = 1000  # changed before b's first commit: no baseline, not counted
    assert not checkpoints.due(conn_b, seen_b)  # 75
    b.total_changes = 1010
    assert not checkpoints.due(conn_b, seen_b)  # 90
    a.total_changes = 65
    assert checkpoints.due(conn_a, seen_a)  # 100: due, and counting starts again
    assert not checkpoints.due(conn_a, seen_a)  # 5


async def test_a_checkpoint_runs_after_the_commit_released_the_write_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "checkpoint.db"
    checkpoints = sqlite_adapter.Checkpoints(every=300)
    lock_free_at_run: list[bool] = []
    run = checkpoints.run

    frames: list[tuple[int, int, int]] = []

    def watched(conn: sqlite3.Connection) -> None:
        lock_free_at_run.append(lock_is_free(path) and _lock_is_free(path))
        run(conn)
        frames.append(conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone())

    monkeypatch.setattr(checkpoints, "run", watched)
    monkeypatch.setattr(sqlite_adapter, "CHECKPOINTS", checkpoints)
    engine = make_engine(f"sqlite+aiosqlite:///{path}")
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        for i in range(10):  # 10 transactions of 50 rows: 550 counted, one checkpoint
            async with engine.begin() as conn:
                await conn.execute(
                    insert(items), [{"name": f"r{i}-{j}", "n": j} for j in range(50)]
                )
        assert checkpoints.runs == 1 and lock_free_at_run == [True]
        # It copied every frame the WAL held into the database file.
        [(busy, log, done)] = frames
        assert busy == 0 and log == done > 0
    finally:
        await engine.dispose()
