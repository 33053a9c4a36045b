"""Push channel table: one row per notification channel we asked a provider for.

A *channel* is a Google watch channel (PROTOCOLS §1.5) or, later, a Microsoft Graph
subscription (§2.4). The row is its schedule (DESIGN invariant 1): ``renew_at`` is the due
column the ``push`` job claims under a lease, and what is due depends on ``status``:

=========  ================================================  ==========================
status     meaning                                           due at ``renew_at``
=========  ================================================  ==========================
pending    wanted; the provider call has not succeeded yet   create it (watch)
active     live at the provider until ``expiration``         renew (new channel), or
                                                             expire it when unreplaced
stopping   superseded, or its calendar left; still live      stop it at the provider
stopped    stopped, expired, or never created                (nothing; kept as history)
failed     the provider refused to create it                 (nothing)
=========  ================================================  ==========================

``channel_id`` is ours on both providers (Google takes it as the channel id; for Graph it
rides in the notification URL), ``resource_id`` is the provider's handle (Google's
``resourceId``, a Graph subscription id). The secret the provider echoes on every
notification (Google channel token, Graph ``clientState``) is stored sealed by the vault.
``calendar_id`` is set NULL when the calendar is deleted: the row lives on until its channel
is stopped, with the calendar's sealed credentials copied to ``orphan_credentials`` for that
one call (DESIGN invariant 7: ciphertext only).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from showup.db.models import Base, new_id
from showup.db.types import JSONType, UTCDateTime

CHANNEL_STATUSES: Final = ("pending", "active", "stopping", "stopped", "failed")
# Statuses with work at ``renew_at`` (the push job's claim).
CLAIMABLE: Final = ("pending", "active", "stopping")
# Notifications from these are accepted: a pending channel's first messages may arrive
# before the watch call answers (§1.5), and a stopping one overlaps its successor.
RECEIVING: Final = ("pending", "active", "stopping")


class PushChannel(Base):
    __tablename__ = "push_channels"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    calendar_id: Mapped[str | None] = mapped_column(
        ForeignKey("calendars.id", ondelete="SET NULL"), nullable=True
    )
    platform: Mapped[str] = mapped_column(String(32))
    channel_id: Mapped[str] = mapped_column(String(64))
    resource_id: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    secret_enc: Mapped[bytes] = mapped_column(LargeBinary)
    address: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    expiration: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    renew_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    lease_owner: Mapped[str | None] = mapped_column(String(255), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Consecutive failures of the pending operation (create or stop), for backoff.
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Google's X-Goog-Message-Number grows per channel (not sequentially): a number at or
    # below the last accepted one is a duplicate or a late, reordered ping.
    last_message_number: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    last_notification_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # {client_id, oauth_tenant_id, client_secret_enc, refresh_token_enc} (base64 of the
    # calendar's vault ciphertexts), set only while a deleted calendar's channel is stopped.
    orphan_credentials: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    __table_args__ = (
        UniqueConstraint("platform", "channel_id"),
        CheckConstraint(
            "status IN ('pending', 'active', 'stopping', 'stopped', 'failed')", name="status"
        ),
        Index("ix_push_channels_renew_at", "renew_at"),
        Index("ix_push_channels_calendar_status", "calendar_id", "status"),
    )
