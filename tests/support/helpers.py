"""Small helpers shared by test packages."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import event

from showup.db.models import Calendar


@contextmanager
def listening(engine: Any, name: str, fn: Callable[..., Any]) -> Iterator[None]:
    """``fn`` listens for SQLAlchemy's ``name`` events on ``engine`` (an AsyncEngine or its
    sync engine) while the block runs."""
    target = getattr(engine, "sync_engine", engine)
    event.listen(target, name, fn)
    try:
        yield
    finally:
        event.remove(target, name, fn)


@contextmanager
def counting_transactions(runtime: Any) -> Iterator[list[str]]:
    """Records each transaction begun on the engine (SQLite: BEGIN IMMEDIATE)."""
    begun: list[str] = []

    def on_begin(conn: Any) -> None:
        begun.append("begin")

    with listening(runtime.engine, "begin", on_begin):
        yield begun


@contextmanager
def counting_commits(engine: Any) -> Iterator[list[int]]:
    """Counts the COMMITs on ``engine`` (an AsyncEngine) in ``[n]``, from now until the
    block ends (the caller may reset it)."""
    commits = [0]

    def count(_conn: Any) -> None:
        commits[0] += 1

    with listening(engine, "commit", count):
        yield commits


async def until(condition: Any) -> None:
    """Wait for I/O (launches, POSTs), not for a schedule: tests drive a fake clock."""
    async with asyncio.timeout(10):
        while not condition():  # noqa: ASYNC110 - the condition has no event to wait on
            await asyncio.sleep(0.01)


async def paced_pass(retention: Any, runtime: Any, clock: Any) -> list[int]:
    """Run a retention pass slice by slice, as the worker's maintenance does: the rows
    each call purged. A call before the pause between slices is over purges nothing; the
    clock then moves on a second."""
    per_call = [await retention.run(runtime)]
    while retention.busy:
        assert await retention.run(runtime) == 0  # the next slice comes a second later
        clock.advance(timedelta(seconds=1))
        per_call.append(await retention.run(runtime))
    return per_call


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
