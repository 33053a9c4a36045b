"""Apply planned actions to the database (flush only; the caller commits)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from operator import itemgetter
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.dialects.sqlite import dialect as sqlite_dialect
from sqlalchemy.ext.asyncio import AsyncSession

from showup.db.engine import dialect_of
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


# Insert rows made before the transaction (:func:`prepare_inserts`). On SQLite a row is a
# list of the values as sqlite3 takes them (each column's own bind processor applied), in
# the compiled statement's parameter order, executed as is with only the time stamps
# filled in: SQLAlchemy's per-row parameter handling (about 10 us a row) would otherwise
# run while the transaction holds SQLite's one write lock. Elsewhere rows stay dicts for
# SQLAlchemy's insert (PostgreSQL has no global write lock).
_SQLITE = sqlite_dialect()
_SQLITE_COMPILED = insert(_EVENTS).compile(dialect=_SQLITE)
_SQLITE_INSERT = str(_SQLITE_COMPILED)
_SQLITE_ORDER = tuple(_SQLITE_COMPILED.positiontup or ())
_FIXED = ("id", "tenant_id", "calendar_id")
_STAMPS = ("created_at", "updated_at")


def _split() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The event's own columns before and after the two stamps, in the statement's order
    (which is the table's: the three fixed ones first, the stamps side by side)."""
    order = _SQLITE_ORDER
    at = order.index(_STAMPS[0]) if _STAMPS[0] in order else -1
    if order[:3] != _FIXED or at < 3 or order[at : at + 2] != _STAMPS:
        raise RuntimeError(f"unexpected column order in {_SQLITE_INSERT!r}")
    return order[3:at], order[at + 2 :]


_BEFORE, _AFTER = _split()


def _getter(names: tuple[str, ...]) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    """The values of ``names`` in a dict, always as a tuple (itemgetter of one name is not)."""
    if len(names) == 1:
        name = names[0]
        return lambda values: (values[name],)
    if not names:
        return lambda _values: ()
    return itemgetter(*names)


_GET_BEFORE, _GET_AFTER = _getter(_BEFORE), _getter(_AFTER)
_STAMP_AT = (len(_FIXED) + len(_BEFORE), len(_FIXED) + len(_BEFORE) + 1)


def _bind(name: str) -> Callable[[Any], Any] | None:
    """The value SQLAlchemy would hand sqlite3 for column ``name`` (its bind processor)."""
    return _EVENTS.c[name].type._cached_bind_processor(_SQLITE)


# (position in the row, bind processor) of the event's own columns that have one.
_SQLITE_BIND = tuple(
    (i, bind)
    for i, name in enumerate(_SQLITE_ORDER)
    if name not in _FIXED + _STAMPS and (bind := _bind(name)) is not None
)
_SQLITE_STAMP = _bind("created_at") or (lambda value: value)


@dataclass(frozen=True, slots=True)
class PreparedInserts:
    """The Insert actions of a page, their event ids drawn and their rows bound for
    ``dialect``, made outside the transaction that writes them."""

    dialect: str
    ids: list[str]
    rows: list[Any]


def prepare_inserts(
    actions: Iterable[Action], *, tenant_id: str, calendar_id: str, dialect: str
) -> PreparedInserts:
    """The rows of ``actions``' inserts, ready to execute but for their time stamps."""
    ids: list[str] = []
    rows: list[Any] = []
    sqlite = dialect == "sqlite"
    for a in actions:
        if not isinstance(a, Insert):
            continue
        eid = new_id()
        ids.append(eid)
        values = a.values
        if sqlite:
            row = [eid, tenant_id, calendar_id, *_GET_BEFORE(values), None, None]
            row.extend(_GET_AFTER(values))
            for i, bind in _SQLITE_BIND:
                row[i] = bind(row[i])
            rows.append(row)
        else:
            rows.append({**values, "id": eid, "tenant_id": tenant_id, "calendar_id": calendar_id})
    return PreparedInserts(dialect, ids, rows)


async def _insert(session: AsyncSession, prepared: PreparedInserts, now: datetime) -> None:
    if prepared.dialect == "sqlite":
        stamp = _SQLITE_STAMP(now)
        created, updated = _STAMP_AT
        rows = prepared.rows
        for row in rows:
            row[created] = row[updated] = stamp
        conn = await session.connection()
        await conn.exec_driver_sql(_SQLITE_INSERT, [tuple(row) for row in rows])
        return
    # A Core executemany: one statement for the whole page. The ORM's bulk INSERT leaves
    # None values out and so splits a page into a statement per run of rows with the same
    # None columns (meeting_url, recurring_event_id, …).
    stamps = dict.fromkeys(_STAMPS, now)
    await session.execute(insert(_EVENTS), [{**row, **stamps} for row in prepared.rows])


async def apply_actions(
    session: AsyncSession,
    actions: Sequence[Action],
    *,
    tenant_id: str,
    calendar_id: str,
    now: datetime,
    prepared: PreparedInserts | None = None,
) -> Applied:
    """Write ``actions``; ``prepared`` is :func:`prepare_inserts` of the same actions when
    the caller made it before the transaction (else it is made here)."""
    out = Applied()
    updates = []
    refreshes = []
    for a in actions:
        if isinstance(a, Update):
            updates.append({**a.values, "id": a.id, "updated_at": now})
            out.updated.append(a.id)
        elif isinstance(a, MarkDeleted):
            out.deleted.append(a.id)
        elif isinstance(a, Refresh):
            refreshes.append({"b_id": a.id, "b_fingerprint": a.fingerprint})
            out.refreshed.append(a.id)
    if prepared is None:
        prepared = prepare_inserts(
            actions, tenant_id=tenant_id, calendar_id=calendar_id, dialect=dialect_of(session)
        )
    if prepared.rows:
        await _insert(session, prepared, now)
        out.inserted.extend(prepared.ids)
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
