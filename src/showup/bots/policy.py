"""Bot timing policy, from settings: lead time, launch deadline, retry backoff."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from showup.config import Settings


@dataclass(frozen=True, slots=True)
class BotPolicy:
    # Join this long before the meeting starts, unless the tenant or the bot says otherwise.
    lead_time: timedelta = timedelta(minutes=2)
    # Launch attempts stop this long after join time (capped at the meeting's end).
    dispatch_deadline: timedelta = timedelta(minutes=5)
    retry_base: timedelta = timedelta(seconds=5)
    retry_max: timedelta = timedelta(minutes=1)

    @classmethod
    def from_settings(cls, settings: Settings) -> BotPolicy:
        return cls(
            lead_time=settings.bot_lead_time,
            dispatch_deadline=settings.bot_dispatch_deadline,
            retry_base=settings.bot_retry_base,
            retry_max=settings.bot_retry_max,
        )
