"""The launcher protocol: how a bot is started (DESIGN "launcher"; invariant 4).

A launcher receives one :class:`LaunchRequest` per attempt and answers with a typed
outcome; it never raises for the vendor's or the tenant's faults. The request's
``idempotency_key`` is the bot id: the same on every retry, after a crash, and from every
worker, so the receiving side can start at most one bot for it.

| outcome                     | what the dispatch job does                            |
|-----------------------------|-------------------------------------------------------|
| ``Launched(vendor_bot_id)`` | bot → ``dispatched``                                  |
| ``Retryable(reason, after)``| retry after ``retry_after`` or backoff; past the deadline: failed |
| ``Rejected(reason)``        | bot → ``failed`` at once (retrying cannot help)       |
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class ServedEvent:
    """One calendar event the bot is for, and whose calendar user it is."""

    event_id: str
    calendar_id: str
    external_user_id: str | None
    platform_email: str | None
    title: str | None
    ical_uid: str | None
    start_time: datetime
    end_time: datetime


@dataclass(frozen=True, slots=True)
class LaunchRequest:
    bot_id: str
    tenant_id: str
    deduplication_key: str
    meeting_url: str
    meeting_platform: str | None
    join_at: datetime
    deadline: datetime
    bot_config: dict[str, Any]
    events: tuple[ServedEvent, ...]
    attempt: int

    @property
    def idempotency_key(self) -> str:
        return self.bot_id


@dataclass(frozen=True, slots=True)
class Launched:
    vendor_bot_id: str | None = None


@dataclass(frozen=True, slots=True)
class Retryable:
    reason: str
    retry_after: timedelta | None = None


@dataclass(frozen=True, slots=True)
class Rejected:
    reason: str


LaunchOutcome = Launched | Retryable | Rejected


class Launcher(Protocol):
    async def launch(self, request: LaunchRequest) -> LaunchOutcome:
        """Start the bot for ``request`` (idempotently, by ``request.idempotency_key``)."""
        ...
