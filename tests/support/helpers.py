"""Small helpers shared by test packages."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import event

from showup.db.models import Calendar


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


@contextmanager
def counting_commits(engine: Any) -> Iterator[list[int]]:
    """Counts the COMMITs on ``engine`` (an AsyncEngine) in ``[n]``, from now until the
    block ends (the caller may reset it)."""
    commits = [0]

    def count(_conn: Any) -> None:
        commits[0] += 1

    event.listen(engine.sync_engine, "commit", count)
    try:
        yield commits
    finally:
        event.remove(engine.sync_engine, "commit", count)


async def until(condition: Any) -> None:
    """Wait for I/O (launches, POSTs), not for a schedule: tests drive a fake clock."""
    async with asyncio.timeout(10):
        while not condition():  # noqa: ASYNC110 - the condition has no event to wait on
            await asyncio.sleep(0.01)


def bare_calendar(tenant_id: str, now: datetime) -> Calendar:
    """A Google calendar row for tests that write to the database directly (no API, no
    provider): placeholder credentials, created and updated at ``now``."""
    return Calendar(
        tenant_id=tenant_id,
        platform="google_calendar",
        oauth_client_id="c",
        oauth_client_secret_enc=b"x",
        oauth_refresh_token_enc=b"x",
        created_at=now,
        updated_at=now,
    )
