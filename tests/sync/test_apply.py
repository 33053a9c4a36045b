"""``sync/apply.py``: insert rows prepared before the transaction (on SQLite bound by hand
for sqlite3, elsewhere dicts for SQLAlchemy) store exactly what SQLAlchemy's own insert of
the same values stores, on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from showup.db.engine import make_sessionmaker
from showup.db.migrate import upgrade
from showup.db.models import Event, Tenant, new_id
from showup.providers.base import Attendee, ChangePage, RemoteEvent, SyncWindow
from showup.sync.apply import apply_actions, prepare_inserts
from showup.sync.plan import Insert, plan_page
from tests.support.helpers import bare_calendar

NOW = datetime(2026, 11, 3, 15, 0, 7, 123456, tzinfo=UTC)
WINDOW = SyncWindow(NOW - timedelta(days=1), NOW + timedelta(days=28))
EVENTS = cast(Table, Event.__table__)


def _events() -> list[RemoteEvent]:
    base = RemoteEvent(
        platform_id="e0",
        start_time=NOW + timedelta(hours=1),
        end_time=NOW + timedelta(hours=2),
        raw={"id": "e0", "summary": "Caf\u00e9 \U0001f600", "etag": '"3"', "n": 2**40},
        ical_uid="e0@google.com",
        title="Caf\u00e9 \U0001f600",
        organizer_email="a@example.com",
        attendees=(
            Attendee("a@example.com", "A", "accepted", is_organizer=True, is_self=True),
            Attendee(None, "Room", "needsAction", is_resource=True),
        ),
        meeting_url="https://meet.google.com/abc-defg-hij",
        meeting_platform="google_meet",
    )
    return [
        base,
        # None wherever a column allows it, an all-day event, another status.
        RemoteEvent(
            platform_id="e1",
            start_time=datetime(2026, 11, 4, tzinfo=UTC),
            end_time=datetime(2026, 11, 5, tzinfo=UTC),
            raw={"id": "e1"},
            is_all_day=True,
            status="tentative",
        ),
        dataclasses.replace(base, platform_id="e2", recurring_event_id="series", title=""),
    ]


async def _seed(engine: AsyncEngine) -> tuple[str, str, str]:
    await upgrade(engine)
    async with make_sessionmaker(engine)() as session:
        tenant = Tenant(name="T", created_at=NOW)
        session.add(tenant)
        await session.flush()
        cals = [bare_calendar(tenant.id, NOW) for _ in range(2)]
        session.add_all(cals)
        await session.commit()
        return tenant.id, cals[0].id, cals[1].id


def _stored(rows: list[Any]) -> dict[str, dict[str, Any]]:
    """Rows by platform id, without what differs by construction (id, calendar)."""
    out = {}
    for row in rows:
        values = dict(row._mapping)
        del values["id"], values["calendar_id"]
        out[values["platform_id"]] = values
    return out


async def test_prepared_inserts_store_what_sqlalchemys_insert_stores(engine: AsyncEngine) -> None:
    tenant_id, ours, theirs = await _seed(engine)
    page = ChangePage(upserts=_events(), deletions=[], next_cursor=None, is_last=True)
    actions = plan_page(page, {}, WINDOW)
    assert len(actions) == 3 and all(isinstance(a, Insert) for a in actions)
    prepared = prepare_inserts(
        actions, tenant_id=tenant_id, calendar_id=ours, dialect=engine.dialect.name
    )
    sessions = make_sessionmaker(engine)
    async with sessions() as session:
        applied = await apply_actions(
            session, actions, tenant_id=tenant_id, calendar_id=ours, now=NOW, prepared=prepared
        )
        # The reference: SQLAlchemy's Core insert of the same values.
        await session.execute(
            insert(EVENTS),
            [
                {
                    **cast(Insert, a).values,
                    "id": new_id(),
                    "tenant_id": tenant_id,
                    "calendar_id": theirs,
                    "created_at": NOW,
                    "updated_at": NOW,
                }
                for a in actions
            ],
        )
        await session.commit()
    assert applied.inserted == prepared.ids and len(set(prepared.ids)) == 3

    # As stored: the driver's own values, no type processing on the way out.
    async with engine.connect() as conn:
        columns = ", ".join(c.name for c in EVENTS.columns)
        sql = f"SELECT {columns} FROM events WHERE calendar_id = " + (
            "$1" if engine.dialect.name == "postgresql" else "?"
        )
        mine = _stored((await conn.exec_driver_sql(sql, (ours,))).all())
        reference = _stored((await conn.exec_driver_sql(sql, (theirs,))).all())
        await conn.rollback()
    assert set(mine) == {"e0", "e1", "e2"}
    assert mine == reference

    # And through the ORM: the values the sync meant.
    async with sessions() as session:
        got = {
            e.platform_id: e
            for e in await session.scalars(select(Event).where(Event.calendar_id == ours))
        }
    e0, e1 = got["e0"], got["e1"]
    assert e0.id in prepared.ids
    assert e0.created_at == e0.updated_at == NOW and e0.deleted_at is None
    assert e0.raw["summary"] == "Caf\u00e9 \U0001f600" and e0.raw["n"] == 2**40
    assert e0.attendees[1] == {
        "email": None,
        "name": "Room",
        "response_status": "needsAction",
        "is_organizer": False,
        "is_self": False,
        "is_resource": True,
    }
    assert (e1.is_all_day, e1.status, e1.title, e1.meeting_url) == (True, "tentative", None, None)
    assert e1.is_deleted is False and e1.attendees == []
