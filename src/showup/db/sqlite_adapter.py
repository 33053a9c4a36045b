"""SQLAlchemy's aiosqlite adapter: at most one thread round trip per statement.

aiosqlite runs each call on its connection's thread: a queue put, a thread switch, and a
``call_soon_threadsafe`` that wakes the event loop through its self-pipe, and on the
event loop a future, a wake-up and a greenlet switch. SQLAlchemy's stock adapter makes four
calls per statement (``cursor()``, ``execute``, ``fetchall``, ``close``), and our ``BEGIN
IMMEDIATE`` went through a whole SQLAlchemy execution of its own, with three more: a
1-row SELECT cost about 240 us of event-loop CPU in 4 calls, a small write transaction
about 830 us in 8; with this adapter about 160 us in 1 call and 680 us in 2.

Here a statement that goes to the thread is one call, run there as a single function
(the same function runs a statement inline, below): make a ``sqlite3`` cursor, execute
(or executemany), fetch every row if the statement returns rows, note ``description``,
``rowcount`` and ``lastrowid``, close the cursor. The SQLAlchemy side is the stock
buffered cursor's: rows served from memory, the same values and the same exceptions
(``sqlite3`` errors, which SQLAlchemy wraps as ever: ``IntegrityError`` and so on).

A transaction that can have the write lock at once runs on the event loop's thread, with
no thread hop at all. When a statement opens the transaction (``BEGIN IMMEDIATE`` rides
with its first statement: SQLAlchemy's ``begin`` event marks the connection,
:func:`begin_immediate`), the writer lock file below is tried without waiting
(``LOCK_NB``), then ``BEGIN IMMEDIATE`` with a busy timeout of 0 for that one attempt (a
writer that does not take the lock file may still hold SQLite's lock). If both succeed,
that statement and every further one run inline: the connection holds SQLite's write lock,
and in WAL mode readers never block a writer, so no statement can wait for anybody; each
costs only its own CPU. Otherwise nothing is held and the statement goes to the thread
with ``BEGIN IMMEDIATE``, and waits there (for the lock file, then in SQLite's busy
handler) while the event loop goes on; once that call has completed, the transaction's
further statements run inline.

Why: going through the thread hands the event loop to other tasks at every statement,
and a task that holds the write lock then waits for its turn on a busy loop (syncs
parsing and encoding pages) while every other writer, in this process or another, waits
for it. Measured in the ingest benchmark with one process: the lock was held 12.0 s of a
13.4 s drain with a hop per statement, 9.2 s with statements after the first inline.
Such a transaction's COMMIT or ROLLBACK runs inline as well, and releases the lock at
once: on the thread it waited for the GIL, held by the busy loop, before it could even
start. The WAL checkpoint that may follow a COMMIT (:class:`Checkpoints`), which writes
and syncs the database file, goes to the thread once the lock is released. (SQLite's own
automatic checkpoint, left as a backstop at twice the WAL size these run at, would still
run inside a COMMIT, inline: only if they fell behind.) Nothing runs inline while a call of
the connection may still be queued on the thread (one cancelled while queued may yet run
there), and the stock server-side cursor's calls always go to the thread.

The write lock is still taken before the transaction reads anything. A transaction that
ends without a statement costs no call at all (nothing had begun in SQLite). If ``BEGIN
IMMEDIATE`` fails on the thread (another process held the lock past ``busy_timeout``),
the statement fails with that error and the next statement of the transaction tries
``BEGIN IMMEDIATE`` again, as a failed begin would have been retried before.

The writer lock file. Every transaction takes SQLite's write lock, and a connection that
finds it taken by another process waits in SQLite's busy handler, which sleeps 1, 2, 5, …
up to 100 ms between tries: a process running transactions back to back starves the
others (measured with two worker processes: seconds of waiting). So a connection to a
database file also holds an exclusive ``flock`` on ``<database>-writer.lock`` (opened once
per connection) exactly while SQLite is in a transaction on it: taken right before
``BEGIN IMMEDIATE`` (inline, or on aiosqlite's thread), released as soon as a call leaves
SQLite outside a transaction (checked with ``in_transaction`` after every call of ours: a
COMMIT or ROLLBACK, a failed ``BEGIN IMMEDIATE``, a statement that ended the transaction)
and on close. A process waiting for it sleeps in the kernel and is woken when the holder
lets go, so it gets the lock before the holder's next transaction can. In-memory
databases have no lock file. ``busy_timeout`` stays, for processes that do not take the
file lock (the ``sqlite3`` shell, an older showup): they meet the busy handler as before.

The wait is bounded by the connection's ``timeout`` (``SQLITE_WAIT``), as the busy
handler's is: a holder that stays in a transaction for that long (a stuck process) makes
the others fail with ``database is locked``, not hang. Linux has no timed ``flock``, so
the uncontended case takes it at once with ``LOCK_NB`` and a contended one hands the
blocking ``flock`` to a helper thread of the connection (one, started on the first
contention): aiosqlite's thread waits for it on a condition with that timeout, and a lock
granted after the waiter gave up is released by the helper at once (or handed to the next
attempt, which waits for the same ``flock`` call instead of starting another).

Plugged in through ``create_async_engine(module=dbapi())``, SQLAlchemy's documented hook
for an alternative DBAPI module: the dialect, its URL and the pool stay stock. The
subclassed SQLAlchemy and aiosqlite internals are pinned by
``tests/db/test_sqlite_adapter.py``, which fails on an upgrade that changes them.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
    AsyncAdapt_aiosqlite_ss_cursor,
)
from sqlalchemy.engine import Connection
from sqlalchemy.util import EMPTY_DICT
from sqlalchemy.util.concurrency import await_

BEGIN = "BEGIN IMMEDIATE"
# The writer lock file of a database file: its path plus this.
LOCK_SUFFIX = "-writer.lock"


class WriterLock:
    """An exclusive ``flock`` on a database's writer lock file, for one connection.

    ``acquire`` and ``release`` are called on the connection's aiosqlite thread (the
    owner), or, with no call of the connection queued there, ``try_acquire`` and
    ``release`` on the event loop's thread; ``close`` from anywhere. The descriptor is
    used under ``_cond``, except by the helper thread's blocking ``flock``, during which
    (``_pending``) nobody else touches or closes it.
    """

    def __init__(self, database: str, timeout: float) -> None:
        self.path = database + LOCK_SUFFIX
        self.timeout = timeout
        self.held = False
        self.waits = 0  # acquisitions that found the lock taken
        try:
            mode = Path(database).stat().st_mode & 0o666  # as SQLite does for -wal and -shm
        except OSError:
            mode = 0o644
        try:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, mode)
        except OSError as error:
            raise sqlite3.OperationalError(
                f"unable to open the writer lock file {self.path}: {error}"
            ) from error
        self._cond = threading.Condition(threading.Lock())
        self._pending = False  # the helper's blocking flock is under way (or about to be)
        self._wanted = False  # and aiosqlite's thread waits for it
        self._granted = False  # the helper's flock succeeded for the waiting thread
        self._error: OSError | None = None  # or failed
        self._closed = False
        self._helper: threading.Thread | None = None

    def acquire(self) -> None:
        """Take the lock, waiting for it at most ``timeout`` seconds."""
        with self._cond:
            if self.held:
                return
            if self._closed:
                raise sqlite3.ProgrammingError("Cannot operate on a closed writer lock.")
            # While the helper's flock is under way it must be the one that takes the lock
            # (a second flock on the same open file would succeed alongside it).
            if not self._pending:
                try:
                    fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    self.waits += 1
                    self._pending = True
                    if self._helper is None:
                        self._helper = threading.Thread(
                            target=self._wait_in_kernel, name="showup-writer-lock", daemon=True
                        )
                        self._helper.start()
                    else:
                        self._cond.notify_all()
                except OSError as error:
                    raise self._failed(error) from error
                else:
                    self.held = True
                    return
            self._wanted = True
            try:
                self._cond.wait_for(
                    lambda: self._granted or self._error is not None or self._closed,
                    self.timeout,
                )
            finally:
                self._wanted = False
            if self._granted:
                self._granted = False
                self.held = True
                return
            failure, self._error = self._error, None
            if failure is not None:
                raise self._failed(failure) from failure
            if self._closed:
                raise sqlite3.ProgrammingError("Cannot operate on a closed writer lock.")
        raise sqlite3.OperationalError(
            f"database is locked (its writer lock {self.path} was held by another "
            f"connection for more than {self.timeout:g} s)"
        )

    def try_acquire(self) -> bool:
        """Take the lock if that needs no wait: whether it is held now."""
        with self._cond:
            if self.held:
                return True
            if self._closed or self._pending:
                return False
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return False
            self.held = True
            return True

    def release(self) -> None:
        with self._cond:
            if self.held:
                self.held = False
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        """Release the lock for good and close the file (the helper thread exits)."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self.held = False
            self._cond.notify_all()
            if self._pending:
                return  # the helper closes the file when its flock returns
            fcntl.flock(self._fd, fcntl.LOCK_UN)  # not only closed: a forked copy may live
            os.close(self._fd)

    def _failed(self, error: OSError) -> sqlite3.OperationalError:
        return sqlite3.OperationalError(f"unable to lock {self.path}: {error}")

    def _wait_in_kernel(self) -> None:
        """The helper thread: one blocking ``flock`` per request, until closed."""
        cond = self._cond
        while True:
            with cond:
                cond.wait_for(lambda: self._pending or self._closed)
                if not self._pending:
                    return
            error: OSError | None = None
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX)
            except OSError as failed:
                error = failed
            with cond:
                self._pending = False
                if error is None and (self._closed or not self._wanted):
                    fcntl.flock(self._fd, fcntl.LOCK_UN)  # given up on: release it at once
                elif self._wanted:
                    self._granted = error is None
                    self._error = error
                    cond.notify_all()
                if self._closed:
                    os.close(self._fd)
                    return


def _open_lock(driver: aiosqlite.Connection, timeout: float) -> WriterLock | None:
    """On aiosqlite's thread: the writer lock of the connection's database file, or None
    for a database without one (in memory, temporary)."""
    rows = driver._conn.execute("PRAGMA database_list").fetchall()
    database = next((row[2] for row in rows if row[1] == "main"), "")
    return WriterLock(database, timeout) if database else None


# What one call on aiosqlite's thread hands back: the error to raise on the event loop (or
# None), whether BEGIN IMMEDIATE succeeded, whether SQLite is in a transaction after the
# call, then description, the rows (None when the statement returns none), rowcount and
# lastrowid.
_Outcome = tuple[Exception | None, bool, bool, Any, list[Any] | None, int, int | None]


def _run(
    driver: aiosqlite.Connection,
    lock: WriterLock | None,
    begin: bool,
    operation: str,
    parameters: Any,
    many: bool,
) -> _Outcome:
    """On aiosqlite's thread: [BEGIN IMMEDIATE,] one statement, all of its rows."""
    began = False
    conn: sqlite3.Connection | None = None
    try:
        conn = driver._conn  # raises ValueError once closed
        if begin:
            if lock is not None:
                lock.acquire()
            conn.execute(BEGIN).close()
            began = True
        cursor = conn.cursor()
        try:
            rows = None
            if many:
                cursor.executemany(operation, parameters)
            else:
                cursor.execute(operation, () if parameters is None else parameters)
                if cursor.description:
                    rows = cursor.fetchall()
            description, rowcount, lastrowid = (
                cursor.description,
                cursor.rowcount,
                cursor.lastrowid,
            )
        finally:
            cursor.close()
        return None, began, _settle(conn, lock), description, rows, rowcount, lastrowid
    except Exception as error:  # raised on the event loop, as the stock adapter does
        return error, began, _settle(conn, lock), None, None, -1, None


_T = TypeVar("_T")


async def _here(fn: Callable[..., _T], *args: Any) -> _T:
    """``fn(*args)`` on the event loop's thread, as a coroutine that never suspends.

    Awaited through ``await_``, it returns at once, without giving the loop to any other
    task; SQLAlchemy's async layer insists that an execution switch to the loop's
    greenlet (``AwaitRequired`` otherwise), and this switch is all it costs.
    """
    return fn(*args)


def _settle(conn: sqlite3.Connection | None, lock: WriterLock | None) -> bool:
    """After a call on aiosqlite's thread: whether SQLite is in a transaction (True when
    that cannot be told); the writer lock is released unless it is known to be."""
    try:
        inside = None if conn is None else conn.in_transaction
    except sqlite3.Error:  # closed: no transaction any more
        inside = None
    if lock is not None and not inside:
        lock.release()
    return inside is not False


def _begin(driver: aiosqlite.Connection, lock: WriterLock | None) -> None:
    conn = driver._conn
    try:
        if lock is not None:
            lock.acquire()
        conn.execute(BEGIN).close()
    finally:
        _settle(conn, lock)


def _end(
    driver: aiosqlite.Connection,
    lock: WriterLock | None,
    commit: bool,
    checkpoints: Checkpoints | None = None,
    seen: Seen | None = None,
) -> bool:
    """COMMIT or ROLLBACK; whether SQLite is still in a transaction (a failed COMMIT).
    After a COMMIT, with the writer lock released, a checkpoint when ``checkpoints`` says
    one is due."""
    conn = driver._conn
    try:
        if commit:
            conn.commit()
        else:
            conn.rollback()
    finally:
        inside = _settle(conn, lock)
    if commit and not inside and checkpoints is not None and checkpoints.due(conn, seen):
        checkpoints.run(conn)
    return inside


class Checkpoints:
    """WAL checkpoints run after a COMMIT has released the write lock, not inside it.

    SQLite's automatic checkpoint runs inside the COMMIT that crosses its threshold, so it
    copies the WAL into the database file and syncs it while that connection still holds
    the write lock: in a 200k-row ingest, 11 checkpoints of 10 to 100 ms per 100k rows, during
    which every other writer waited. Here each process counts the rows its connections
    changed (``total_changes``; a commit counts as :data:`COMMIT_WEIGHT` rows, since even a
    small one appends a few pages), and past :attr:`every` the committing connection runs
    a PASSIVE checkpoint after releasing the lock. A PASSIVE checkpoint never waits and
    lets writers go on meanwhile; one that finds another checkpoint under way gives up
    (the next one catches up). SQLite's own automatic checkpoint stays as a backstop, at a
    higher threshold (``SQLITE_WAL_AUTOCHECKPOINT`` in ``db/engine.py``), for writers that
    do not count.
    """

    COMMIT_WEIGHT = 5

    def __init__(self, every: int) -> None:
        self.every = every
        self.runs = 0
        self._pending = 0
        self._lock = threading.Lock()

    def due(self, conn: sqlite3.Connection, seen: Seen | None) -> bool:
        """Count ``conn``'s changes since its last commit (``seen``: its total then);
        whether a checkpoint is due."""
        total = conn.total_changes
        changed = 0
        if seen is not None:
            changed = total - (total if seen.total is None else seen.total)
            seen.total = total
        with self._lock:
            self._pending += changed + self.COMMIT_WEIGHT
            if self._pending < self.every:
                return False
            self._pending = 0
            return True

    def run(self, conn: sqlite3.Connection) -> None:
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error:  # another checkpoint under way, or not a WAL database
            return
        self.runs += 1


class Seen:
    """A connection's ``total_changes`` at its last commit (for :class:`Checkpoints`)."""

    __slots__ = ("total",)

    def __init__(self) -> None:
        self.total: int | None = None


# Rows changed, per process, between checkpoints. 10,000 event rows of the ingest
# benchmark fill about 5,000 WAL pages (40 MiB with 8 KiB pages).
CHECKPOINT_EVERY = 10_000
CHECKPOINTS = Checkpoints(CHECKPOINT_EVERY)


class OneTripCursor(AsyncAdapt_aiosqlite_cursor):
    """A buffered cursor whose execute is one call on aiosqlite's thread.

    It holds no aiosqlite cursor: each execute makes, uses and closes a ``sqlite3`` cursor
    on the thread, and keeps what the stock cursor would read from it afterwards.
    """

    __slots__ = ("_arraysize", "_description", "_lastrowid", "_rowcount")

    _adapt_connection: OneTripConnection

    def __init__(self, adapt_connection: OneTripConnection) -> None:
        # Not the stock __init__: that opens an aiosqlite cursor (one more call).
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None  # type: ignore[assignment]
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None
        self._arraysize = 1  # sqlite3.Cursor's default

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> int:
        return self._lastrowid  # type: ignore[return-value]  # None, as sqlite3's may be

    @property
    def arraysize(self) -> int:
        return self._arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._arraysize = value

    async def _async_soft_close(self) -> None:
        """Nothing to close: the ``sqlite3`` cursor was closed on the thread."""

    def close(self) -> None:
        self._rows.clear()

    def execute(self, operation: Any, parameters: Any = None) -> Any:
        self._call(operation, parameters, False)

    def executemany(self, operation: Any, seq_of_parameters: Any) -> Any:
        self._call(operation, seq_of_parameters, True)

    def _call(self, operation: str, parameters: Any, many: bool) -> None:
        adapt = self._adapt_connection
        if adapt._begin_pending and adapt._idle and adapt._begin_here():
            adapt._begin_pending = False
        if adapt._inline and adapt._idle:
            # Inside a transaction this connection began: SQLite's write lock is ours, so
            # the statement cannot wait for anybody. Run it here, on the event loop's
            # thread, rather than give the loop to other tasks while the lock is held.
            outcome = await_(
                _here(_run, self._connection, adapt._lock, False, operation, parameters, many)
            )
            adapt._inline = adapt._may_be_in_transaction = outcome[2]
            self._take(outcome)
            return
        begin, adapt._begin_pending = adapt._begin_pending, False
        adapt._may_be_in_transaction = True  # until the call tells
        adapt._idle = False
        try:
            outcome = await_(
                self._connection._execute(
                    _run, self._connection, adapt._lock, begin, operation, parameters, many
                )
            )
        except Exception as error:  # not run: aiosqlite's connection is closed
            adapt._begin_pending = begin
            adapt._handle_exception(error)
        adapt._idle = True
        began, adapt._may_be_in_transaction = outcome[1], outcome[2]
        # Set only once a call that began the transaction has completed: a call cancelled
        # while queued on the thread (which may still run there) leaves it False. Never
        # in memory (no writer lock): sqlite3 keeps such a connection to its own thread.
        adapt._inline = began and outcome[2] and adapt._lock is not None
        if outcome[0] is not None and begin and not began:
            adapt._begin_pending = True  # the transaction is still owed its BEGIN
        self._take(outcome)

    def _take(self, outcome: _Outcome) -> None:
        """Keep what the statement left, or raise its error as SQLAlchemy expects."""
        failed, _, _, self._description, rows, self._rowcount, self._lastrowid = outcome
        if failed is not None:
            self._adapt_connection._handle_exception(failed)
        self._rows = deque(rows) if rows else deque()

    def nextset(self) -> None:
        raise NotImplementedError("sqlite3 has no nextset()")

    def setinputsizes(self, *inputsizes: Any) -> None:
        raise NotImplementedError("sqlite3 cursors take no input sizes here")


class OneTripSSCursor(AsyncAdapt_aiosqlite_ss_cursor):
    """The stock server-side cursor (one call per fetch), after a pending ``BEGIN``."""

    __slots__ = ()

    _adapt_connection: OneTripConnection

    def execute(self, operation: Any, parameters: Any = None) -> Any:
        self._adapt_connection._flush_begin()
        self._adapt_connection._may_be_in_transaction = True
        self._adapt_connection._idle = False  # its calls, fetches too, go to the thread
        return super().execute(operation, parameters)

    def executemany(self, operation: Any, seq_of_parameters: Any) -> Any:
        self._adapt_connection._flush_begin()
        self._adapt_connection._may_be_in_transaction = True
        self._adapt_connection._idle = False
        return super().executemany(operation, seq_of_parameters)


class OneTripConnection(AsyncAdapt_aiosqlite_connection):
    """The stock connection, which knows when SQLite cannot be in a transaction, and
    holds the database's writer lock (``_lock``; None in memory) while it is in one.

    ``_may_be_in_transaction`` is False only when the last call on this connection was
    ours, completed, and left SQLite outside a transaction (a COMMIT or ROLLBACK that
    succeeded, a statement after which ``sqlite3`` said so). A COMMIT or ROLLBACK then
    has nothing to end and costs no call: the pool's rollback of a connection returned
    after a commit, for one. Before any call it is set True (a call cancelled while
    queued may still run). Since every call of ours releases the writer lock when it
    leaves SQLite outside a transaction, skipping such a COMMIT or ROLLBACK leaves no lock
    behind.
    """

    __slots__ = (
        "_begin_pending",
        "_idle",
        "_inline",
        "_lock",
        "_may_be_in_transaction",
        "_seen",
    )

    _cursor_cls = OneTripCursor  # type: ignore[assignment]
    _ss_cursor_cls = OneTripSSCursor

    def __init__(self, dbapi: Any, connection: Any, lock: WriterLock | None = None) -> None:
        super().__init__(dbapi, connection)
        self._begin_pending = False
        self._may_be_in_transaction = True
        # In a transaction this connection began: statements run inline.
        self._inline = False
        # No call of this connection can be queued or running on aiosqlite's thread: set
        # when one of ours completed, cleared before each (a cancelled one leaves it so).
        self._idle = True
        self._lock = lock
        self._seen = Seen()

    def begin_immediate(self) -> None:
        """Open the transaction with ``BEGIN IMMEDIATE``, sent with its first statement."""
        self._begin_pending = True

    def _begin_here(self) -> bool:
        """``BEGIN IMMEDIATE`` on the event loop's thread, if it needs no wait: the writer
        lock file is free, and so is SQLite's write lock (tried with a busy timeout of 0,
        since a writer that does not take the lock file may hold it). Whether the
        transaction began; if not, nothing is held and the thread's path takes over (it
        waits, or raises the connection's error)."""
        lock = self._lock
        if lock is not None and not lock.try_acquire():
            return False
        conn: sqlite3.Connection | None = None
        try:
            conn = self._connection._conn  # raises ValueError once closed
            # Read each time: it is the connection's to set (PRAGMA busy_timeout).
            busy_ms = int(conn.execute("PRAGMA busy_timeout").fetchone()[0])
            conn.execute("PRAGMA busy_timeout=0")
            try:
                conn.execute(BEGIN).close()
            finally:
                conn.execute(f"PRAGMA busy_timeout={busy_ms}")
        except Exception:
            _settle(conn, lock)
            return False
        self._inline = self._may_be_in_transaction = True
        return True

    def _flush_begin(self) -> None:
        self._inline = False  # the stock cursor's calls are queued on the thread
        if self._begin_pending:
            self._begin_pending = False
            self._may_be_in_transaction = True
            self._idle = False
            try:
                await_(self._connection._execute(_begin, self._connection, self._lock))
            except Exception as error:
                self._begin_pending = True
                self._handle_exception(error)

    def commit(self) -> None:
        if self._begin_pending:  # nothing ran: SQLite never began
            self._begin_pending = False
            return
        if self._may_be_in_transaction:
            self._end(True)

    def rollback(self) -> None:
        if self._begin_pending:
            self._begin_pending = False
            return
        if self._may_be_in_transaction:
            self._end(False)

    def _end(self, commit: bool) -> None:
        """COMMIT or ROLLBACK (none once closed), releasing the writer lock as soon as
        SQLite is out of the transaction: inline in a transaction this connection began
        (then a due checkpoint on the thread), otherwise on aiosqlite's thread."""
        inline, self._inline = self._inline and self._idle, False
        if not self._connection._connection:
            return
        if inline:
            try:
                self._may_be_in_transaction = await_(
                    _here(_end, self._connection, self._lock, commit)
                )
            except Exception as error:
                self._handle_exception(error)
            if commit and not self._may_be_in_transaction:
                conn = self._connection._conn
                if CHECKPOINTS.due(conn, self._seen):
                    self._idle = False
                    try:
                        await_(self._connection._execute(CHECKPOINTS.run, conn))
                    except Exception as error:
                        self._handle_exception(error)
                    self._idle = True
            return
        self._idle = False
        try:
            self._may_be_in_transaction = await_(
                self._connection._execute(
                    _end, self._connection, self._lock, commit, CHECKPOINTS, self._seen
                )
            )
        except Exception as error:
            self._handle_exception(error)
        self._idle = True

    def close(self) -> None:
        self._begin_pending = False
        self._inline = False
        try:
            super().close()
        finally:
            if self._lock is not None:
                self._lock.close()

    async def _terminate_graceful_close(self) -> None:
        self._inline = False
        try:
            await super()._terminate_graceful_close()
        finally:
            if self._lock is not None:
                self._lock.close()

    def _terminate_force_close(self) -> None:
        # SQLite's connection is closed later, on aiosqlite's thread: until then another
        # process that got the file lock may meet SQLite's busy handler, as before.
        self._inline = False
        try:
            super()._terminate_force_close()
        finally:
            if self._lock is not None:
                self._lock.close()


class OneTripDBAPI(AsyncAdapt_aiosqlite_dbapi):
    """SQLAlchemy's aiosqlite DBAPI module, whose connections are :class:`OneTripConnection`."""

    def connect(self, *arg: Any, **kw: Any) -> OneTripConnection:
        """The stock connection, and its writer lock: waits for it are bounded by
        ``timeout``, as ``sqlite3``'s busy handler's are."""
        timeout = float(kw.get("timeout", 5.0))  # sqlite3.connect's default
        stock = super().connect(*arg, **kw)
        driver = stock._connection
        try:
            lock = await_(driver._execute(_open_lock, driver, timeout))
        except Exception as error:
            stock.close()
            stock._handle_exception(error)
        return OneTripConnection(self, driver, lock)


def dbapi() -> OneTripDBAPI:
    """The ``module=`` for ``create_async_engine("sqlite+aiosqlite://...")``."""
    return OneTripDBAPI(aiosqlite, sqlite3)


def begin_immediate(conn: Connection) -> None:
    """SQLAlchemy ``begin`` event listener: this transaction takes the write lock."""
    adapted = conn.connection.dbapi_connection
    if not isinstance(adapted, OneTripConnection):
        raise TypeError(f"not a one-trip SQLite connection: {adapted!r} (engine without dbapi())")
    adapted.begin_immediate()
