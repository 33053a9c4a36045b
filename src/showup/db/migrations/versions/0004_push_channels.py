"""push_channels; calendars.push_status, push_reason, sync_requested_at

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 12:00:00

Hand-written. The calendar columns are added with plain ``ADD COLUMN`` (no batch table
copy on SQLite: copying ``calendars`` would fire the ``ON DELETE`` actions of every table
that references it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import showup.db.types

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_UTC = showup.db.types.UTCDateTime


def _json() -> Any:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.add_column(
        "calendars",
        sa.Column("push_status", sa.String(length=16), server_default="none", nullable=False),
    )
    op.add_column("calendars", sa.Column("push_reason", sa.Text(), nullable=True))
    op.add_column("calendars", sa.Column("sync_requested_at", _UTC(timezone=True), nullable=True))

    op.create_table(
        "push_channels",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("calendar_id", sa.String(length=36), nullable=True),
        sa.Column("platform", sa.String(length=32), nullable=False),
        sa.Column("channel_id", sa.String(length=64), nullable=False),
        sa.Column("resource_id", sa.String(length=1024), nullable=True),
        sa.Column("secret_enc", sa.LargeBinary(), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("expiration", _UTC(timezone=True), nullable=True),
        sa.Column("renew_at", _UTC(timezone=True), nullable=True),
        sa.Column("lease_owner", sa.String(length=255), nullable=True),
        sa.Column("lease_expires_at", _UTC(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_message_number", sa.BigInteger(), nullable=True),
        sa.Column("last_notification_at", _UTC(timezone=True), nullable=True),
        sa.Column("orphan_credentials", _json(), nullable=True),
        sa.Column("created_at", _UTC(timezone=True), nullable=False),
        sa.Column("updated_at", _UTC(timezone=True), nullable=False),
        sa.Column("stopped_at", _UTC(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'active', 'stopping', 'stopped', 'failed')",
            name="ck_push_channels_status",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name="fk_push_channels_tenant_id_tenants",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["calendar_id"],
            ["calendars.id"],
            name="fk_push_channels_calendar_id_calendars",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_push_channels"),
        sa.UniqueConstraint("platform", "channel_id", name="uq_push_channels_platform_channel_id"),
    )
    with op.batch_alter_table("push_channels", schema=None) as batch_op:
        batch_op.create_index("ix_push_channels_renew_at", ["renew_at"], unique=False)
        batch_op.create_index(
            "ix_push_channels_calendar_status", ["calendar_id", "status"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("push_channels", schema=None) as batch_op:
        batch_op.drop_index("ix_push_channels_calendar_status")
        batch_op.drop_index("ix_push_channels_renew_at")
    op.drop_table("push_channels")
    op.drop_column("calendars", "sync_requested_at")
    op.drop_column("calendars", "push_reason")
    op.drop_column("calendars", "push_status")
