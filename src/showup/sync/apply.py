"""Apply planned actions to the database (flush only; the caller commits)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import cast

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from showup.db.models import Event, new_id
from showup.sync.plan import Action, Insert, MarkDeleted, Refresh, Stored, Update

# Keep IN (...) lists well under SQLite's and asyncpg's parameter limits.
_CHUNK = 500
_EVENTS = cast(Table, Event.__table__)
# A stored fingerprint of an older version, rewritten without touching anything else.
_REFRESH = (
    update(_EVENTS)
    .where(_EVENTS.c.id == bindparam("b_id"))
    .values(fingerprint=bindparam("b_fingerprint"))
)


@dataclass(slots=True)
class Applied:
    inserted: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    # Rows whose fingerprint was only brought to the current version: not a change.
    refreshed: list[str] = field(default_factory=list)

    @property
    def changed_ids(self) -> list[str]:
        return [*self.inserted, *self.updated, *self.deleted]

    def __len__(self) -> int:
        return len(self.inserted) + len(self.updated) + len(self.deleted)


# Built once: an IN list of literal values costs SQLAlchemy a coercion per value on every
# call; an expanding parameter takes the list as it is.
_STORED = select(Event.platform_id, Event.id, Event.fingerprint, Event.is_deleted).where(
    Event.calendar_id == bindparam("calendar_id"),
    Event.platform_id.in_(bindparam("platform_ids", expanding=True)),
)


async def load_stored(
    session: AsyncSession, calendar_id: str, platform_ids: Iterable[str]
) -> dict[str, Stored]:
    ids = list(dict.fromkeys(platform_ids))
    found: dict[str, Stored] = {}
    for i in range(0, len(ids), _CHUNK):
        rows = await session.execute(
            _STORED, {"calendar_id": calendar_id, "platform_ids": ids[i : i + _CHUNK]}
        )
        for pid, eid, fp, deleted in rows:
            found[pid] = Stored(eid, fp, deleted)
    return found


async def apply_actions(
    session: AsyncSession,
    actions: Sequence[Action],
    *,
    tenant_id: str,
    calendar_id: str,
    now: datetime,
) -> Applied:
    out = Applied()
    inserts = []
    updates = []
    refreshes = []
    for a in actions:
        if isinstance(a, Insert):
            eid = new_id()
            inserts.append(
                {
                    **a.values,
                    "id": eid,
                    "tenant_id": tenant_id,
                    "calendar_id": calendar_id,
                    "created_at": now,
                    "updated_at": now,
                }
            )
            out.inserted.append(eid)
        elif isinstance(a, Update):
            updates.append({**a.values, "id": a.id, "updated_at": now})
            out.updated.append(a.id)
        elif isinstance(a, MarkDeleted):
            out.deleted.append(a.id)
        elif isinstance(a, Refresh):
            refreshes.append({"b_id": a.id, "b_fingerprint": a.fingerprint})
            out.refreshed.append(a.id)
    if inserts:
        # A Core executemany: one statement for the whole page. The ORM's bulk INSERT leaves
        # None values out and so splits a page into a statement per run of rows with the same
        # None columns (meeting_url, recurring_event_id, …): ~100 round trips per 200 rows.
        await session.execute(insert(_EVENTS), inserts)
    if updates:
        await session.execute(update(Event), updates)
    if out.deleted:
        await mark_deleted(session, out.deleted, now)
    if refreshes:
        await session.execute(_REFRESH, refreshes)
    return out


async def mark_deleted(session: AsyncSession, event_ids: Sequence[str], now: datetime) -> None:
    for i in range(0, len(event_ids), _CHUNK):
        await session.execute(
            update(Event)
            .where(Event.id.in_(event_ids[i : i + _CHUNK]), Event.is_deleted.is_(False))
            .values(is_deleted=True, status="cancelled", deleted_at=now, updated_at=now)
            .execution_options(synchronize_session=False)
        )
