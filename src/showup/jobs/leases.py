"""Claiming due rows under a lease.

The database is the schedule: a row is due when its due column has passed and nobody
holds a live lease on it. On PostgreSQL, ``FOR UPDATE SKIP LOCKED`` lets many workers
claim disjoint rows at once; on SQLite every transaction is ``BEGIN IMMEDIATE`` (see
``db/engine.py``), so claims are serialized by the single writer. A crashed worker's
lease simply expires and the row is claimed again.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from showup.db.engine import dialect_of


async def claim_due(
    session: AsyncSession,
    model: Any,
    due_col: Any,
    *,
    now: datetime,
    owner: str,
    lease: timedelta,
    limit: int,
    where: tuple[ColumnElement[bool], ...] = (),
    values: Mapping[str, Any] | None = None,
    due_by: datetime | None = None,
) -> list[str]:
    """Lease up to ``limit`` rows of ``model`` due by ``due_by`` (default: ``now``) to
    ``owner``; return their ids.

    ``model`` must have ``id``, ``lease_owner`` and ``lease_expires_at`` columns; ``values``
    are set on the claimed rows by the same UPDATE as the lease. The caller commits,
    which is when the claim becomes visible to other workers. The ids come in due order.

    On SQLite, whose transactions each hold the database's one write lock (nothing can
    claim between our SELECT and UPDATE), both are one statement, ``UPDATE … WHERE id IN
    (SELECT … LIMIT n) RETURNING``: a statement less per claim. PostgreSQL keeps the two,
    so that ``FOR UPDATE SKIP LOCKED`` locks exactly the rows it returns.
    """
    if limit <= 0:
        return []
    q = (
        select(model.id)
        .where(
            due_col.is_not(None),
            due_col <= (due_by or now),
            or_(model.lease_expires_at.is_(None), model.lease_expires_at < now),
            *where,
        )
        .order_by(due_col)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    claimed = {"lease_owner": owner, "lease_expires_at": now + lease, **(values or {})}
    if dialect_of(session) == "sqlite" and due_col.key not in claimed:
        rows = await session.execute(
            update(model)
            .where(model.id.in_(q.scalar_subquery()))
            .values(**claimed)
            .returning(model.id, due_col)
            .execution_options(synchronize_session=False)
        )
        # RETURNING promises no order: the SELECT's (due time; ties in any order).
        return [row_id for row_id, _ in sorted(rows.all(), key=lambda row: row[1])]
    ids = list((await session.scalars(q)).all())
    if ids:
        await session.execute(
            update(model)
            .where(model.id.in_(ids))
            .values(**claimed)
            .execution_options(synchronize_session=False)
        )
    return ids


async def next_due(
    session: AsyncSession,
    due_col: Any,
    *,
    now: datetime,
    where: tuple[ColumnElement[bool], ...] = (),
) -> datetime | None:
    """The earliest due time still ahead of ``now`` among rows matching ``where``.

    Lets a worker sleep until then instead of finding the row on its next poll. Leases are
    ignored: a row that is leased at that time is simply not claimed then, and rows whose
    lease expires are found by the regular poll (they are a crash's leftovers).
    """
    # Index range scan on the due column (every due column is indexed).
    value: datetime | None = await session.scalar(
        select(func.min(due_col)).where(due_col > now, *where)
    )
    return value
