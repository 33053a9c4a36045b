"""SQLAlchemy's aiosqlite adapter, with one thread round trip per statement.

aiosqlite runs each call on its connection's thread: a queue put, a thread switch, and a
``call_soon_threadsafe`` that wakes the event loop through its self-pipe, and on the
event loop a future, a wake-up and a greenlet switch. SQLAlchemy's stock adapter makes four
calls per statement (``cursor()``, ``execute``, ``fetchall``, ``close``), and our ``BEGIN
IMMEDIATE`` went through a whole SQLAlchemy execution of its own, with three more: a
1-row SELECT cost about 240 us of event-loop CPU in 4 calls, a small write transaction
about 830 us in 8; with this adapter about 160 us in 1 call and 680 us in 2.

Here one statement is one call, run as a single function on aiosqlite's thread: make a
``sqlite3`` cursor, execute (or executemany), fetch every row if the statement returns
rows, note ``description``, ``rowcount`` and ``lastrowid``, close the cursor. The
SQLAlchemy side is the stock buffered cursor's: rows served from memory, the same values
and the same exceptions (``sqlite3`` errors, which SQLAlchemy wraps as ever:
``IntegrityError`` and so on).

``BEGIN IMMEDIATE`` rides with the transaction's first statement: SQLAlchemy's ``begin``
event marks the connection (:func:`begin_immediate`), and the next statement runs
``BEGIN IMMEDIATE`` and then itself, in the same call. The write lock is still taken
before the transaction reads anything. A transaction that ends without a statement costs
no call at all (nothing had begun in SQLite). If ``BEGIN IMMEDIATE`` fails (another
process held the lock past ``busy_timeout``), the statement fails with that error and the
next statement of the transaction tries ``BEGIN IMMEDIATE`` again, as a failed begin
would have been retried before.

Plugged in through ``create_async_engine(module=dbapi())``, SQLAlchemy's documented hook
for an alternative DBAPI module: the dialect, its URL and the pool stay stock. The
subclassed SQLAlchemy and aiosqlite internals are pinned by
``tests/db/test_sqlite_adapter.py``, which fails on an upgrade that changes them.
"""

from __future__ import annotations

import sqlite3
from collections import deque
from typing import Any

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

# What one call on aiosqlite's thread hands back: the error to raise on the event loop (or
# None), whether BEGIN IMMEDIATE succeeded, whether SQLite is in a transaction after the
# call, then description, the rows (None when the statement returns none), rowcount and
# lastrowid.
_Outcome = tuple[Exception | None, bool, bool, Any, list[Any] | None, int, int | None]


def _run(
    driver: aiosqlite.Connection, begin: bool, operation: str, parameters: Any, many: bool
) -> _Outcome:
    """On aiosqlite's thread: [BEGIN IMMEDIATE,] one statement, all of its rows."""
    began = False
    conn: sqlite3.Connection | None = None
    try:
        conn = driver._conn  # raises ValueError once closed
        if begin:
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
        return None, began, _in_transaction(conn), description, rows, rowcount, lastrowid
    except Exception as error:  # raised on the event loop, as the stock adapter does
        return error, began, _in_transaction(conn), None, None, -1, None


def _in_transaction(conn: sqlite3.Connection | None) -> bool:
    """Whether SQLite is in a transaction, True when that cannot be told."""
    try:
        return conn is None or conn.in_transaction
    except sqlite3.Error:  # closed
        return True


def _begin(driver: aiosqlite.Connection) -> None:
    driver._conn.execute(BEGIN).close()


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
        begin, adapt._begin_pending = adapt._begin_pending, False
        adapt._may_be_in_transaction = True  # until the call tells
        try:
            outcome: _Outcome = await_(
                self._connection._execute(
                    _run, self._connection, begin, operation, parameters, many
                )
            )
        except Exception as error:  # not run: aiosqlite's connection is closed
            adapt._begin_pending = begin
            adapt._handle_exception(error)
        failed, began, adapt._may_be_in_transaction, self._description, rows, _, _ = outcome
        self._rowcount, self._lastrowid = outcome[5], outcome[6]
        if failed is not None:
            if begin and not began:
                adapt._begin_pending = True  # the transaction is still owed its BEGIN
            adapt._handle_exception(failed)
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
        return super().execute(operation, parameters)

    def executemany(self, operation: Any, seq_of_parameters: Any) -> Any:
        self._adapt_connection._flush_begin()
        self._adapt_connection._may_be_in_transaction = True
        return super().executemany(operation, seq_of_parameters)


class OneTripConnection(AsyncAdapt_aiosqlite_connection):
    """The stock connection, which knows when SQLite cannot be in a transaction.

    ``_may_be_in_transaction`` is False only when the last call on this connection was
    ours, completed, and left SQLite outside a transaction (a COMMIT or ROLLBACK that
    succeeded, a statement after which ``sqlite3`` said so). A COMMIT or ROLLBACK then
    has nothing to end and costs no call: the pool's rollback of a connection returned
    after a commit, for one. Before any call it is set True (a call cancelled while
    queued may still run).
    """

    __slots__ = ("_begin_pending", "_may_be_in_transaction")

    _cursor_cls = OneTripCursor  # type: ignore[assignment]
    _ss_cursor_cls = OneTripSSCursor

    def __init__(self, dbapi: Any, connection: Any) -> None:
        super().__init__(dbapi, connection)
        self._begin_pending = False
        self._may_be_in_transaction = True

    def begin_immediate(self) -> None:
        """Open the transaction with ``BEGIN IMMEDIATE``, sent with its first statement."""
        self._begin_pending = True

    def _flush_begin(self) -> None:
        if self._begin_pending:
            self._begin_pending = False
            self._may_be_in_transaction = True
            try:
                await_(self._connection._execute(_begin, self._connection))
            except Exception as error:
                self._begin_pending = True
                self._handle_exception(error)

    def commit(self) -> None:
        if self._begin_pending:  # nothing ran: SQLite never began
            self._begin_pending = False
            return
        if self._may_be_in_transaction:
            super().commit()
            self._may_be_in_transaction = False

    def rollback(self) -> None:
        if self._begin_pending:
            self._begin_pending = False
            return
        if self._may_be_in_transaction:
            super().rollback()
            self._may_be_in_transaction = False

    def close(self) -> None:
        self._begin_pending = False
        super().close()


class OneTripDBAPI(AsyncAdapt_aiosqlite_dbapi):
    """SQLAlchemy's aiosqlite DBAPI module, whose connections are :class:`OneTripConnection`."""

    def connect(self, *arg: Any, **kw: Any) -> OneTripConnection:
        stock = super().connect(*arg, **kw)
        return OneTripConnection(self, stock._connection)


def dbapi() -> OneTripDBAPI:
    """The ``module=`` for ``create_async_engine("sqlite+aiosqlite://...")``."""
    return OneTripDBAPI(aiosqlite, sqlite3)


def begin_immediate(conn: Connection) -> None:
    """SQLAlchemy ``begin`` event listener: this transaction takes the write lock."""
    adapted = conn.connection.dbapi_connection
    if not isinstance(adapted, OneTripConnection):
        raise TypeError(f"not a one-trip SQLite connection: {adapted!r} (engine without dbapi())")
    adapted.begin_immediate()
