"""The one clock (DESIGN invariant 6).

Everything that asks "what time is it" or "wait until" goes through a :class:`Clock`.
Production uses :class:`SystemClock`; tests use :class:`FakeClock` and move time by hand;
the demo uses :class:`ScaledClock` to run the world faster than real time.
All datetimes are timezone-aware UTC.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...

    async def sleep(self, delay: timedelta) -> None:
        """Wait ``delay`` of this clock's time (a FakeClock returns at once)."""
        ...


def utc(dt: datetime) -> datetime:
    """Return ``dt`` as aware UTC; naive values are taken to be UTC already."""
    if dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, delay: timedelta) -> None:
        await asyncio.sleep(max(0.0, delay.total_seconds()))


class ScaledClock:
    """Real time sped up by ``speed`` from the moment it is made (for the demo)."""

    def __init__(self, speed: float = 1.0, start: datetime | None = None) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self._origin_wall = time.monotonic()
        self._origin = utc(start) if start else datetime.now(UTC)

    def now(self) -> datetime:
        elapsed = (time.monotonic() - self._origin_wall) * self.speed
        return self._origin + timedelta(seconds=elapsed)

    async def sleep(self, delay: timedelta) -> None:
        await asyncio.sleep(max(0.0, delay.total_seconds() / self.speed))


class FakeClock:
    """A clock that only moves when told to. ``sleep`` advances it instead of waiting."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = utc(start) if start else datetime(2026, 11, 2, 9, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> datetime:
        if delta < timedelta(0):
            raise ValueError("time does not go backwards")
        self._now += delta
        return self._now

    def set(self, when: datetime) -> datetime:
        when = utc(when)
        if when < self._now:
            raise ValueError("time does not go backwards")
        self._now = when
        return self._now

    async def sleep(self, delay: timedelta) -> None:
        if delay > timedelta(0):
            self._now += delay
        await asyncio.sleep(0)
