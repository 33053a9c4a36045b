"""Helpers of the writer lock tests, and their child processes (spawned: importable)."""

from __future__ import annotations

import asyncio
import fcntl
import os
from pathlib import Path
from typing import Any

from sqlalchemy import text

from showup.db import sqlite_adapter
from showup.db.engine import make_engine


def lock_is_free(db: Path) -> bool:
    """Whether another open file could take the database's writer lock right now."""
    fd = os.open(f"{db}{sqlite_adapter.LOCK_SUFFIX}", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return True
    finally:
        os.close(fd)


# Each child writes until both have found the lock taken by the other this many times
# (so that they surely wrote at the same time), or this many transactions.
WAITS = 5
MAX_TRANSACTIONS = 5000


async def _write(index: int, path: str, start: Any, waits: Any) -> dict[str, Any]:
    engine = make_engine(f"sqlite+aiosqlite:///{path}")
    errors: list[str] = []
    committed = 0
    try:
        async with engine.connect() as conn:
            await conn.exec_driver_sql("PRAGMA busy_timeout=0")  # no busy handler
            await conn.commit()
            raw = await conn.get_raw_connection()
            adapted = raw.dbapi_connection
            assert isinstance(adapted, sqlite_adapter.OneTripConnection)
            lock = adapted._lock
            assert lock is not None
        await asyncio.get_running_loop().run_in_executor(None, start.wait)
        for i in range(MAX_TRANSACTIONS):
            if min(waits) >= WAITS:
                break
            try:
                async with engine.connect() as conn:
                    await conn.execute(text("SELECT count(*) FROM log"))
                    await asyncio.sleep(0)
                    await conn.execute(text("INSERT INTO log VALUES (:n)"), {"n": f"{index}-{i}"})
                    await conn.commit()
                    committed += 1
            except Exception as exc:  # reported to the test, which expects none
                errors.append(f"{type(exc).__name__}: {exc}")
            waits[index] = lock.waits
    finally:
        await engine.dispose()
    return {"errors": errors, "committed": committed, "waited": lock.waits}


def write_back_to_back(index: int, path: str, start: Any, waits: Any, out: Any) -> None:
    """Write transactions back to back once ``start`` (a barrier) lets every child go,
    until every child has found the writer lock taken ``WAITS`` times (``waits``, a shared
    array: one count per child); puts ``{"errors", "committed", "waited"}`` on ``out``."""
    out.put(asyncio.run(_write(index, path, start, waits)))
