"""Bot tables: planned and launched bots, the events they serve, tenant bot settings.

A *bot* is one planned or launched bot for one meeting (DESIGN "Words"). Its row is also
its schedule: ``next_attempt_at`` is the due column the dispatch job claims (DESIGN
invariant 1). A *bot_event* links one event to the bot serving it; the link is the
event's scheduling intent (``POST …/bot/``) and outlives a cancellation, so an event that
comes back (un-cancelled, moved back into the future) regains its bot.

Two partial unique indexes carry the invariants (DESIGN invariant 3), on SQLite and
PostgreSQL alike:

- ``uq_bots_live_dedup``: one *live* bot (scheduled or dispatching) per tenant and
  deduplication key. Dispatched, failed and cancelled bots are history and do not block
  a later bot with the same key (Recall: deduplication "applies only to future scheduled
  bots").
- ``uq_bot_events_active_event``: one *active* link per event, i.e. one bot per event.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from showup.db.models import Base, new_id
from showup.db.types import JSONType, UTCDateTime

BOT_STATUSES: Final = ("scheduled", "dispatching", "dispatched", "failed", "cancelled")
# Live bots hold their deduplication key; the unique index below only covers these.
LIVE_STATUSES: Final = ("scheduled", "dispatching")
LINK_STATES: Final = ("active", "superseded", "removed")

_LIVE_SQL = "status IN ('scheduled', 'dispatching')"
_ACTIVE_SQL = "state = 'active'"


class Bot(Base):
    __tablename__ = "bots"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    deduplication_key: Mapped[str] = mapped_column(String(1024))
    status: Mapped[str] = mapped_column(String(16))
    # Why the bot is in its status, as a machine code ("event_cancelled", "deadline_passed").
    status_reason: Mapped[str | None] = mapped_column(String(64), nullable=True)

    join_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # An explicit join time (bot_config.join_at or PATCH): it pins join_at, and the event
    # moving no longer moves the bot until the override is cleared. None: follow the event.
    join_at_override: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Per-bot lead time (bot_config.lead_time_seconds); None = the tenant's setting.
    lead_time_seconds: Mapped[int | None] = mapped_column(Integer, nullable=True)
    meeting_url: Mapped[str] = mapped_column(Text)
    meeting_platform: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # bot_config.meeting_url, normalized: wins over the events' own link.
    meeting_url_override: Mapped[str | None] = mapped_column(Text, nullable=True)
    bot_config: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # The meeting this bot serves: earliest start and latest end of its live events when
    # it was last planned. After dispatch, an event starting at or after meeting_end is
    # a new occurrence and gets a fresh bot.
    meeting_start: Mapped[datetime] = mapped_column(UTCDateTime())
    meeting_end: Mapped[datetime] = mapped_column(UTCDateTime())
    # Launch attempts stop here: then the bot fails rather than join very late.
    deadline: Mapped[datetime] = mapped_column(UTCDateTime())

    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # The due column: join_at while scheduled, the retry time while dispatching, NULL after.
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    lease_owner: Mapped[str | None] = mapped_column(String(255), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    vendor_bot_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # What reconciliation saw but did not do (a meeting moved after dispatch began).
    note: Mapped[str | None] = mapped_column(Text, nullable=True)

    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        CheckConstraint(
            "status IN ('scheduled', 'dispatching', 'dispatched', 'failed', 'cancelled')",
            name="status",
        ),
        Index(
            "uq_bots_live_dedup",
            "tenant_id",
            "deduplication_key",
            unique=True,
            sqlite_where=text(_LIVE_SQL),
            postgresql_where=text(_LIVE_SQL),
        ),
        Index("ix_bots_next_attempt_at", "next_attempt_at"),
        Index("ix_bots_tenant_created", "tenant_id", "created_at", "id"),
        Index("ix_bots_tenant_key", "tenant_id", "deduplication_key"),
    )


class BotEvent(Base):
    """One event served by one bot. ``state``: ``active`` (the event's current bot),
    ``superseded`` (a past occurrence this bot served; the event has a newer bot) or
    ``removed`` (unscheduled after the bot was already launched; kept as history)."""

    __tablename__ = "bot_events"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    bot_id: Mapped[str] = mapped_column(ForeignKey("bots.id", ondelete="CASCADE"))
    event_id: Mapped[str] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    calendar_id: Mapped[str] = mapped_column(ForeignKey("calendars.id", ondelete="CASCADE"))
    state: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        CheckConstraint("state IN ('active', 'superseded', 'removed')", name="state"),
        UniqueConstraint("bot_id", "event_id"),
        Index(
            "uq_bot_events_active_event",
            "event_id",
            unique=True,
            sqlite_where=text(_ACTIVE_SQL),
            postgresql_where=text(_ACTIVE_SQL),
        ),
        Index("ix_bot_events_event_id", "event_id"),
        Index("ix_bot_events_calendar_id", "calendar_id"),
    )


class TenantBotSettings(Base):
    """Per-tenant bot defaults. No row = the server's settings."""

    __tablename__ = "tenant_bot_settings"

    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    bot_lead_time_seconds: Mapped[int | None] = mapped_column(Integer, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
