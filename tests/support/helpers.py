"""Small helpers shared by test packages."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event


@contextmanager
def counting_transactions(runtime: Any) -> Iterator[list[str]]:
    """Records each transaction begun on the engine (SQLite: BEGIN IMMEDIATE)."""
    begun: list[str] = []

    def on_begin(conn: Any) -> None:
        begun.append("begin")

    engine = runtime.engine.sync_engine
    event.listen(engine, "begin", on_begin)
    try:
        yield begun
    finally:
        event.remove(engine, "begin", on_begin)


async def until(condition: Any) -> None:
    """Wait for I/O (launches, POSTs), not for a schedule: tests drive a fake clock."""
    async with asyncio.timeout(10):
        while not condition():  # noqa: ASYNC110 - the condition has no event to wait on
            await asyncio.sleep(0.01)
