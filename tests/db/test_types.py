"""Column types: the sync's cheaper binds store exactly what the generic ones stored.

``UTCDateTime`` formats SQLite datetimes itself and ``JSONDocument`` takes JSON text the
sync already made (``JSONText``). Rows written the old way (SQLAlchemy's DATETIME and JSON
processors, as earlier releases wrote them) and the new way read back equal, on SQLite and
PostgreSQL, and on SQLite the stored datetime text is byte for byte the same.
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import (
    Boolean,
    Column,
    Dialect,
    MetaData,
    String,
    Table,
    TypeDecorator,
    insert,
    select,
    text,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from showup.db import models
from showup.db.engine import make_sessionmaker
from showup.db.models import Event, Tenant, new_id
from showup.db.types import JSONDocument, JSONText, JSONType, UTCDateTime
from tests.support.helpers import bare_calendar

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)

DATETIMES = [
    datetime(2026, 11, 2, 9, 0, tzinfo=UTC),
    datetime(2026, 11, 2, 9, 0, 0, 1, tzinfo=UTC),
    datetime(2026, 3, 29, 1, 59, 59, 999999, tzinfo=ZoneInfo("Europe/Berlin")),
    datetime(2026, 10, 25, 2, 30, tzinfo=ZoneInfo("Europe/Berlin"), fold=1),
    datetime(2026, 1, 1, 0, 0, tzinfo=timezone(timedelta(hours=-9, minutes=-30))),
    datetime(999, 12, 31, 23, 59, 59, tzinfo=UTC),
    datetime(1, 1, 2, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
]


DIALECTS: list[Dialect] = [sqlite.dialect(), PGDialect_asyncpg()]  # type: ignore[no-untyped-call]


class LegacyUTCDateTime(TypeDecorator[datetime]):
    """UTCDateTime as earlier releases bound it: process_bind_param, then DATETIME's own."""

    impl = UTCDateTime.impl
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return UTCDateTime().process_bind_param(value, dialect)


@pytest.mark.parametrize("value", DATETIMES)
def test_sqlite_datetime_text_is_sqlalchemys(value: datetime) -> None:
    dialect = sqlite.dialect()
    ours = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
    legacy = LegacyUTCDateTime().dialect_impl(dialect).bind_processor(dialect)
    assert ours is not None and legacy is not None
    assert ours(value) == legacy(value)
    assert ours(None) is None


@pytest.mark.parametrize("dialect", DIALECTS)
def test_naive_datetimes_are_refused(dialect: Dialect) -> None:
    process = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
    with pytest.raises(ValueError, match="naive"):
        if process is None:
            UTCDateTime().process_bind_param(datetime(2026, 1, 1), dialect)
        else:
            process(datetime(2026, 1, 1))


@pytest.mark.parametrize("dialect", DIALECTS)
def test_json_document_binds_text_as_is_and_values_as_json(dialect: Dialect) -> None:
    ours = JSONDocument().dialect_impl(dialect).bind_processor(dialect)
    assert ours is not None
    assert ours(JSONText('{"a":1}')) == '{"a":1}'
    assert json.loads(ours({"a": [1, "é"]})) == {"a": [1, "é"]}
    legacy = JSONType.dialect_impl(dialect).bind_processor(dialect)
    assert legacy is not None
    assert ours({"b": None}) == legacy({"b": None})


def _legacy_events() -> Table:
    """The events table with the types earlier releases bound through."""
    return Table(
        "events",
        MetaData(),
        Column("id", String(36), primary_key=True),
        Column("tenant_id", String(36)),
        Column("calendar_id", String(36)),
        Column("platform_id", String(1024)),
        Column("start_time", LegacyUTCDateTime()),
        Column("end_time", LegacyUTCDateTime()),
        Column("is_all_day", Boolean),
        Column("status", String(16)),
        Column("is_deleted", Boolean),
        Column("attendees", JSONType),
        Column("raw", JSONType),
        Column("fingerprint", String(64)),
        Column("created_at", LegacyUTCDateTime()),
        Column("updated_at", LegacyUTCDateTime()),
        Column("deleted_at", LegacyUTCDateTime()),
    )


RAW: dict[str, Any] = {
    "id": "evt",
    "summary": "Caf\u00e9 \u2615",
    "nested": {"list": [1, 2.5, None, True, "x"], "empty": {}},
    "etag": '"3"',
}
ATTENDEES = [{"email": "a@example.com", "name": None, "response_status": "accepted"}]


async def test_rows_written_before_and_after_read_back_equal(engine: AsyncEngine) -> None:
    sessions = make_sessionmaker(engine)
    async with sessions() as session:
        tenant = Tenant(name="t", created_at=NOW)
        session.add(tenant)
        await session.flush()
        cal = bare_calendar(tenant.id, NOW)
        session.add(cal)
        await session.flush()
        rows: list[dict[str, Any]] = []
        for i, start in enumerate(DATETIMES[:5]):
            rows.append(
                {
                    "tenant_id": tenant.id,
                    "calendar_id": cal.id,
                    "platform_id": f"p{i}",
                    "start_time": start,
                    "end_time": start + timedelta(minutes=30),
                    "is_all_day": False,
                    "status": "confirmed",
                    "is_deleted": False,
                    "fingerprint": "f",
                    "created_at": NOW,
                    "updated_at": NOW,
                    "deleted_at": None,
                }
            )
        legacy = [
            {**r, "id": f"legacy-{i}", "raw": RAW, "attendees": ATTENDEES}
            for i, r in enumerate(rows)
        ]
        await session.execute(insert(_legacy_events()), legacy)
        synced = [
            {
                **r,
                "id": f"new-{i}",
                "platform_id": r["platform_id"] + "n",
                "raw": JSONText(json.dumps(RAW, sort_keys=True, separators=(",", ":"))),
                "attendees": JSONText(json.dumps(ATTENDEES, separators=(",", ":"))),
            }
            for i, r in enumerate(rows)
        ]
        await session.execute(insert(Event), synced)
        session.add(
            Event(
                **{**rows[0], "id": "orm", "platform_id": "orm", "raw": RAW, "attendees": ATTENDEES}
            )
        )
        await session.commit()

    async with sessions() as session:
        got = {e.id: e for e in (await session.scalars(select(Event))).all()}
    for i, row in enumerate(rows):
        old, new = got[f"legacy-{i}"], got[f"new-{i}"]
        assert old.raw == new.raw == RAW
        assert old.attendees == new.attendees == ATTENDEES
        # (Compared in UTC: an aware datetime with fold=1 is never equal across zones.)
        assert old.start_time == new.start_time == row["start_time"].astimezone(UTC)
        assert new.start_time.tzinfo is not None
        assert old.end_time == new.end_time and old.created_at == new.created_at == NOW
        assert old.deleted_at is None and new.deleted_at is None
    assert got["orm"].raw == RAW and got["orm"].start_time == rows[0]["start_time"]

    # Filters bind through the same processors: they find both generations of rows.
    async with sessions() as session:
        found = await session.scalars(select(Event.id).where(Event.start_time == DATETIMES[3]))
        assert sorted(found) == ["legacy-3", "new-3"]

    if engine.dialect.name == "sqlite":
        async with engine.connect() as conn:
            result = await conn.execute(
                text("SELECT id, start_time || '|' || created_at FROM events")
            )
            stored = {row[0]: row[1] for row in result}
        for i in range(len(rows)):
            assert stored[f"legacy-{i}"] == stored[f"new-{i}"]


def test_new_ids_are_time_ordered_uuids(monkeypatch: pytest.MonkeyPatch) -> None:
    ids = {new_id() for _ in range(2000)}
    assert len(ids) == 2000
    for value in list(ids)[:50]:
        parsed = uuid.UUID(value)
        assert str(parsed) == value and parsed.version == 7
        assert parsed.variant == uuid.RFC_4122
    ms = 1_795_000_000_000
    stamps = iter([ms * 1_000_000, (ms + 1) * 1_000_000, (ms + 1000) * 1_000_000])
    monkeypatch.setattr("showup.db.models.time", SimpleNamespace(time_ns=lambda: next(stamps)))
    first, second, third = new_id(), new_id(), new_id()
    assert first < second < third  # text order is creation order across milliseconds
    assert int(first.replace("-", "")[:12], 16) == ms


def test_id_randomness_is_never_handed_out_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    """Batched: one ``os.urandom`` call per batch, consecutive slices, a new batch once
    one runs out; a forked child starts from a fresh one."""
    calls: list[int] = []

    def urandom(n: int) -> bytes:
        calls.append(n)
        return bytes((len(calls) + i) % 256 for i in range(n))

    monkeypatch.setattr("showup.db.models.os.urandom", urandom)
    entropy = models._Entropy()
    taken = [entropy.take(10) for _ in range(models._Entropy.BATCH // 10 + 1)]
    assert calls == [models._Entropy.BATCH, models._Entropy.BATCH]
    first = bytes((1 + i) % 256 for i in range(models._Entropy.BATCH))
    assert b"".join(taken[:-1]) == first[: 10 * (len(taken) - 1)]
    assert taken[-1] == bytes((2 + i) % 256 for i in range(10))  # the second batch
    entropy.forget()
    assert entropy.take(10) == bytes((3 + i) % 256 for i in range(10))


def test_a_forked_child_does_not_repeat_its_parents_ids() -> None:
    new_id()  # a batch in hand before the fork
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next id, then out without pytest's teardown
        try:
            os.write(write, new_id().encode())
        finally:
            os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert child and child[14:] != new_id()[14:]  # the random part differs


def _event_diffs(conn: Connection) -> list[Any]:
    ctx = MigrationContext.configure(conn, opts={"compare_type": True})
    return [d for d in compare_metadata(ctx, models.Base.metadata) if "events" in repr(d)]


async def test_the_migrations_still_match_the_event_columns(engine: AsyncEngine) -> None:
    # JSONDocument is JSON on SQLite and JSONB on PostgreSQL, as the migrated columns are.
    async with engine.connect() as conn:
        assert await conn.run_sync(_event_diffs) == []
