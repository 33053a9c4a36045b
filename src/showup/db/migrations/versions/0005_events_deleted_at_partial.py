"""ix_events_deleted_at only over deleted events (partial index)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 12:00:00

Hand-written. Every live event has ``deleted_at`` NULL, yet had an entry in the index,
which each insert paid for. ``deleted_at < :cutoff`` implies ``deleted_at IS NOT NULL`` on
SQLite and PostgreSQL, so a range on deleted_at still uses the partial index. Plain
``DROP INDEX`` / ``CREATE INDEX`` (no batch table copy on SQLite).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_DELETED = sa.text("deleted_at IS NOT NULL")


def upgrade() -> None:
    op.drop_index("ix_events_deleted_at", table_name="events")
    op.create_index(
        "ix_events_deleted_at",
        "events",
        ["deleted_at"],
        unique=False,
        sqlite_where=_DELETED,
        postgresql_where=_DELETED,
    )


def downgrade() -> None:
    op.drop_index("ix_events_deleted_at", table_name="events")
    op.create_index("ix_events_deleted_at", "events", ["deleted_at"], unique=False)
