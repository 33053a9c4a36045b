"""bots, bot_events, tenant_bot_settings

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 12:00:00

Hand-written. The two partial unique indexes (one live bot per tenant and deduplication
key; one active link per event) carry DESIGN invariant 3 and work on SQLite and
PostgreSQL alike (``sqlite_where`` / ``postgresql_where``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import showup.db.types

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_UTC = showup.db.types.UTCDateTime
_LIVE = sa.text("status IN ('scheduled', 'dispatching')")
_ACTIVE = sa.text("state = 'active'")


def _json() -> Any:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=f"fk_{table}_{column}_{target}", ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        "bots",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("deduplication_key", sa.String(length=1024), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("status_reason", sa.String(length=64), nullable=True),
        sa.Column("join_at", _UTC(timezone=True), nullable=False),
        sa.Column("join_at_override", _UTC(timezone=True), nullable=True),
        sa.Column("lead_time_seconds", sa.Integer(), nullable=True),
        sa.Column("meeting_url", sa.Text(), nullable=False),
        sa.Column("meeting_platform", sa.String(length=32), nullable=True),
        sa.Column("meeting_url_override", sa.Text(), nullable=True),
        sa.Column("bot_config", _json(), nullable=False),
        sa.Column("meeting_start", _UTC(timezone=True), nullable=False),
        sa.Column("meeting_end", _UTC(timezone=True), nullable=False),
        sa.Column("deadline", _UTC(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", _UTC(timezone=True), nullable=True),
        sa.Column("last_attempt_at", _UTC(timezone=True), nullable=True),
        sa.Column("lease_owner", sa.String(length=255), nullable=True),
        sa.Column("lease_expires_at", _UTC(timezone=True), nullable=True),
        sa.Column("dispatched_at", _UTC(timezone=True), nullable=True),
        sa.Column("vendor_bot_id", sa.String(length=255), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", _UTC(timezone=True), nullable=False),
        sa.Column("updated_at", _UTC(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('scheduled', 'dispatching', 'dispatched', 'failed', 'cancelled')",
            name="ck_bots_status",
        ),
        _fk("bots", "tenant_id", "tenants"),
        sa.PrimaryKeyConstraint("id", name="pk_bots"),
    )
    with op.batch_alter_table("bots", schema=None) as batch_op:
        batch_op.create_index(
            "uq_bots_live_dedup",
            ["tenant_id", "deduplication_key"],
            unique=True,
            sqlite_where=_LIVE,
            postgresql_where=_LIVE,
        )
        batch_op.create_index("ix_bots_next_attempt_at", ["next_attempt_at"], unique=False)
        batch_op.create_index(
            "ix_bots_tenant_created", ["tenant_id", "created_at", "id"], unique=False
        )
        batch_op.create_index(
            "ix_bots_tenant_key", ["tenant_id", "deduplication_key"], unique=False
        )

    op.create_table(
        "bot_events",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("bot_id", sa.String(length=36), nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("calendar_id", sa.String(length=36), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_at", _UTC(timezone=True), nullable=False),
        sa.Column("updated_at", _UTC(timezone=True), nullable=False),
        sa.CheckConstraint(
            "state IN ('active', 'superseded', 'removed')", name="ck_bot_events_state"
        ),
        _fk("bot_events", "tenant_id", "tenants"),
        _fk("bot_events", "bot_id", "bots"),
        _fk("bot_events", "event_id", "events"),
        _fk("bot_events", "calendar_id", "calendars"),
        sa.PrimaryKeyConstraint("id", name="pk_bot_events"),
        sa.UniqueConstraint("bot_id", "event_id", name="uq_bot_events_bot_id_event_id"),
    )
    with op.batch_alter_table("bot_events", schema=None) as batch_op:
        batch_op.create_index(
            "uq_bot_events_active_event",
            ["event_id"],
            unique=True,
            sqlite_where=_ACTIVE,
            postgresql_where=_ACTIVE,
        )
        batch_op.create_index("ix_bot_events_event_id", ["event_id"], unique=False)
        batch_op.create_index("ix_bot_events_calendar_id", ["calendar_id"], unique=False)

    op.create_table(
        "tenant_bot_settings",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("bot_lead_time_seconds", sa.Integer(), nullable=True),
        sa.Column("updated_at", _UTC(timezone=True), nullable=False),
        _fk("tenant_bot_settings", "tenant_id", "tenants"),
        sa.PrimaryKeyConstraint("tenant_id", name="pk_tenant_bot_settings"),
    )


def downgrade() -> None:
    op.drop_table("tenant_bot_settings")
    with op.batch_alter_table("bot_events", schema=None) as batch_op:
        batch_op.drop_index("ix_bot_events_calendar_id")
        batch_op.drop_index("ix_bot_events_event_id")
        batch_op.drop_index("uq_bot_events_active_event")
    op.drop_table("bot_events")
    with op.batch_alter_table("bots", schema=None) as batch_op:
        batch_op.drop_index("ix_bots_tenant_key")
        batch_op.drop_index("ix_bots_tenant_created")
        batch_op.drop_index("ix_bots_next_attempt_at")
        batch_op.drop_index("uq_bots_live_dedup")
    op.drop_table("bots")
