"""Drop ix_events_tenant_ical_uid: no query used it, and every insert paid dearly for it

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25 12:00:00

Hand-written. The only query on ``ical_uid`` is the events list's prefix filter. As the
``LIKE … ESCAPE`` it was, SQLite could not use this index for it (its LIKE is
case-insensitive; EXPLAIN QUERY PLAN showed ``ix_events_tenant_updated``), nor could
PostgreSQL under any collation but C (a LIKE prefix needs ``text_pattern_ops`` there). The
filter is now a case-sensitive ``substr`` comparison, which no plain index serves either.
iCalUIDs are random, so each inserted row landed on a random page of this index: a 200-row
transaction dirtied about 200 of its pages, which SQLite's COMMIT then wrote to the WAL
under the write lock (raw sqlite3 on the benchmark's rows: COMMIT 20 µs per row with it,
3 µs without).
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_events_tenant_ical_uid", table_name="events")


def downgrade() -> None:
    op.create_index("ix_events_tenant_ical_uid", "events", ["tenant_id", "ical_uid"], unique=False)
