"""Engine and session factories for SQLite (WAL, single writer) and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from showup.config import Settings
from showup.db import sqlite_adapter

# How long a transaction may wait for SQLite's one connection and, from another process,
# for the write lock (the writer lock file, then ``busy_timeout``), in seconds.
SQLITE_WAIT = 60

# SQLite settings for event-sized rows (about 2.6 KB: a 4 KiB page holds one). Measured
# with raw sqlite3, 100k event rows in 200-row transactions: 8 KiB pages make the file 30 %
# smaller (433 -> 302 MB); with both settings SQLite's CPU per row fell from 62-66 to
# 49-52 us. The page size applies to new databases only.
SQLITE_PAGE_SIZE = 8192
# SQLite's own automatic checkpoint, every 10,000 WAL pages instead of 1,000, is only the
# backstop: it runs inside a COMMIT, under the write lock. Our connections checkpoint after
# their COMMIT has released the lock, every 10,000 changed rows per process (about 5,000
# WAL pages of event rows; sqlite_adapter.Checkpoints), which resets the WAL before it
# reaches this. The WAL file keeps the largest size it reached.
SQLITE_WAL_AUTOCHECKPOINT = 10_000
# Page cache per connection, in KiB, instead of SQLite's 2 MiB. Measured with raw sqlite3,
# 200k event rows in 200-row transactions, random iCalUIDs: with 2 MiB a transaction's
# dirty pages spill into the WAL before it commits and index pages are read back again:
# per row 3.0 reads and 5.2 writes (system calls), 34 us of SQLite CPU. With 4, 8, 16, 32,
# 64 MiB: reads 1.35, 1.08, 0.81, 0.66, 0.64; writes 3.8; CPU 28-30 us from 4 to 32 MiB,
# 30-32 at 64 (user time grows with the cache). 16 MiB also leaves room for larger sync
# pages (by estimate, about 1,000 events in a transaction before a spill). A file database
# has one connection per process, and SQLite allocates pages only as it uses them.
SQLITE_CACHE_KIB = 16 * 1024


def make_engine(url: str, *, echo: bool = False, pool_size: int = 10) -> AsyncEngine:
    """Create the async engine for ``url``.

    SQLite: WAL journal, foreign keys on, and every transaction opened with
    ``BEGIN IMMEDIATE`` so that there is exactly one writer at a time and a reader never
    has to upgrade a stale snapshot to a write lock (which fails at once, without waiting).

    Since every transaction takes the write lock, a second connection in this process
    could only wait for it, and SQLite waits by sleeping and retrying (1, 2, 5, … up to
    100 ms between tries), so under load a newcomer overtakes transactions that have
    waited for seconds. A file database therefore gets ONE connection, which the pool
    lends to the waiting transactions in turn, each as soon as the one before it ends.

    Across processes (several ``showup worker`` processes, a worker next to the API), the
    connection also holds an exclusive ``flock`` on ``<database>-writer.lock`` while it is
    in a transaction: a process that finds it taken waits in the kernel and is woken as
    soon as the holder's transaction ends, instead of polling in SQLite's busy handler,
    which a process writing back to back would starve (see
    :mod:`showup.db.sqlite_adapter`). ``busy_timeout`` stays, for processes that do not
    take the file lock (the ``sqlite3`` shell). Both waits are bounded by ``SQLITE_WAIT``.

    Statements go through :mod:`showup.db.sqlite_adapter`: a transaction that gets the
    write lock at once runs on the event loop's thread, its COMMIT on aiosqlite's thread;
    one that must wait for it waits there, in one call with its first statement.
    """
    if url.startswith("sqlite"):
        memory = ":memory:" in url or "mode=memory" in url
        engine = create_async_engine(
            url,
            echo=echo,
            module=sqlite_adapter.dbapi(),
            connect_args={"timeout": SQLITE_WAIT, "isolation_level": None},
            # An in-memory database keeps SQLAlchemy's own pool (one connection as well).
            **({} if memory else {"pool_size": 1, "max_overflow": 0, "pool_timeout": SQLITE_WAIT}),
        )
        _configure_sqlite(engine)
        return engine
    return create_async_engine(
        url, echo=echo, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True
    )


def _configure_sqlite(engine: AsyncEngine) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        # Takes effect on a new, empty database only, so before its first write (switching
        # to WAL is one); an existing database keeps its page size.
        cur.execute(f"PRAGMA page_size={SQLITE_PAGE_SIZE}")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute(f"PRAGMA wal_autocheckpoint={SQLITE_WAL_AUTOCHECKPOINT}")
        cur.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")  # negative: in KiB, not pages
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_WAIT * 1000}")
        cur.close()

    event.listen(sync_engine, "begin", sqlite_adapter.begin_immediate)


def dialect_of(session: AsyncSession) -> str:
    """The name of the database dialect ``session`` is bound to: "sqlite" or "postgresql"."""
    return str(session.get_bind().dialect.name)


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


def engine_from_settings(settings: Settings) -> AsyncEngine:
    if settings.is_sqlite:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    return make_engine(settings.effective_database_url)
