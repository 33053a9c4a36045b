"""SQLAlchemy 2.0 models. Every row belongs to one tenant (DESIGN "Words").

Secrets are stored only as ciphertext (``*_enc`` columns, see ``security/vault.py``) or
hashes (API keys). The migrations in ``db/migrations`` are the schema of record.
"""

from __future__ import annotations

import os
import threading
import time
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from showup.db.types import JSONDocument, JSONType, UTCDateTime

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class _Entropy:
    """Random bytes from the OS, fetched a batch at a time.

    ``os.urandom`` releases the GIL around its ``getrandom`` call, so a call per id made the
    event loop give way to any thread waiting for the GIL and wait to get it back; in the
    ingest benchmark that was several microseconds per inserted row. One call per
    :attr:`BATCH` bytes serves as many ids; the bytes are the same CSPRNG output. Never
    handed out twice: under a lock, and a forked child starts from a fresh batch.
    """

    BATCH = 4096

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buf = b""
        self._pos = 0

    def take(self, n: int) -> bytes:
        with self._lock:
            pos = self._pos
            if pos + n > len(self._buf):
                self._buf, pos = os.urandom(max(self.BATCH, n)), 0
            self._pos = pos + n
            return self._buf[pos : pos + n]

    def forget(self) -> None:
        self._lock = threading.Lock()
        self._buf, self._pos = b"", 0


_ENTROPY = _Entropy()
os.register_at_fork(after_in_child=_ENTROPY.forget)


def new_id() -> str:
    """A UUID in the version 7 layout (RFC 9562 §5.7): Unix milliseconds, then 74 random bits.

    Every table's primary key. With random (version 4) keys every insert lands on a random
    page of the primary-key index; time-ordered keys append at its right edge, which halves
    SQLite's cost per inserted row at 200k rows (BENCHMARKS.md, "ingest"). Still a UUID in
    the canonical text form, still unguessable; it shows its creation millisecond, which
    ``created_at`` shows anyway.
    """
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(_ENTROPY.take(10), "big")  # 80 bits, 74 used
    value = (
        (ms & 0xFFFF_FFFF_FFFF) << 80
        | 0x7 << 76
        | (rand >> 68) << 64  # rand_a: 12 bits
        | 0b10 << 62  # variant
        | (rand & ((1 << 62) - 1))  # rand_b: 62 bits
    )
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Calendar(Base):
    """One connected provider calendar of one calendar user, with its sync state."""

    __tablename__ = "calendars"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    external_user_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    platform: Mapped[str] = mapped_column(String(32))
    platform_calendar_id: Mapped[str] = mapped_column(String(1024), default="primary")
    platform_email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="connecting")
    status_changes: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    webhook_url: Mapped[str | None] = mapped_column(Text, nullable=True)

    oauth_client_id: Mapped[str] = mapped_column(String(512))
    oauth_client_secret_enc: Mapped[bytes] = mapped_column(LargeBinary)
    oauth_refresh_token_enc: Mapped[bytes] = mapped_column(LargeBinary)
    oauth_tenant_id: Mapped[str | None] = mapped_column(String(255), nullable=True)

    # Sync state. ``sync_cursor`` is the provider's sync token / delta link.
    sync_cursor: Mapped[str | None] = mapped_column(Text, nullable=True)
    window_start: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    window_end: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    next_sync_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    lease_owner: Mapped[str | None] = mapped_column(String(255), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_full_sync_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    sync_failures: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    # Push notifications (push/, PROTOCOLS §1.5; channels in db/channel_models.py):
    # none | active | failed | unavailable, and why, as the calendar JSON shows them.
    push_status: Mapped[str] = mapped_column(String(16), default="none", server_default="none")
    push_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    # A notification asked for a sync at this time and no sync has been claimed since; a
    # sync finishing with it set runs again (a ping that arrived mid-sync is not lost).
    sync_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index("ix_calendars_tenant_created", "tenant_id", "created_at", "id"),
        Index("ix_calendars_tenant_user", "tenant_id", "external_user_id"),
        Index("ix_calendars_next_sync_at", "next_sync_at"),
    )


# The rows ``ix_events_deleted_at`` holds (migration 0005).
_DELETED_SQL = "deleted_at IS NOT NULL"


class Event(Base):
    """One occurrence on one calendar (series are expanded)."""

    __tablename__ = "events"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    calendar_id: Mapped[str] = mapped_column(ForeignKey("calendars.id", ondelete="CASCADE"))
    platform_id: Mapped[str] = mapped_column(String(1024))
    ical_uid: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    recurring_event_id: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    title: Mapped[str | None] = mapped_column(Text, nullable=True)
    start_time: Mapped[datetime] = mapped_column(UTCDateTime())
    end_time: Mapped[datetime] = mapped_column(UTCDateTime())
    is_all_day: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default="confirmed")
    is_deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    organizer_email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    # JSONDocument: the sync binds the JSON text it already made for the fingerprint.
    attendees: Mapped[list[dict[str, Any]]] = mapped_column(JSONDocument, default=list)
    meeting_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    meeting_platform: Mapped[str | None] = mapped_column(String(32), nullable=True)
    raw: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    # Hash of what the user can see; ``updated_at`` moves only when it changes.
    fingerprint: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    __table_args__ = (
        UniqueConstraint("calendar_id", "platform_id"),
        Index("ix_events_tenant_updated", "tenant_id", "updated_at", "id"),
        Index("ix_events_calendar_start", "calendar_id", "start_time"),
        # Partial: only deleted events are in it, not an entry for every live event
        # (deleted_at NULL) that each insert paid for. ``deleted_at < :cutoff`` implies the
        # predicate, so a range on deleted_at still uses it (tests/db/test_events_indexes.py).
        Index(
            "ix_events_deleted_at",
            "deleted_at",
            sqlite_where=text(_DELETED_SQL),
            postgresql_where=text(_DELETED_SQL),
        ),
    )
