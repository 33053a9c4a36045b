"""Per-calendar token bucket over the syncs that notifications request.

It never drops a notification: when a calendar's bucket is empty the request is simply
due later (when the next token arrives) instead of now. Since a request that is already
pending absorbs every later notification (``schedule.request_sync``), tokens are spent
only on actual sync requests, so a flood of pings costs at most ``burst`` syncs at once
and one per ``interval`` after that, and the last change still gets its sync.

State is per process (each API process limits on its own) and bounded: the least
recently used calendars are forgotten first, which only ever makes a bucket full again.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime, timedelta


class SyncRequestLimiter:
    def __init__(self, burst: int, interval: timedelta, max_keys: int = 100_000) -> None:
        if burst < 1 or interval <= timedelta(0):
            raise ValueError("burst must be at least 1 and interval positive")
        self.burst = burst
        self.interval = interval
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, datetime]] = OrderedDict()

    def _tokens(self, key: str, now: datetime) -> float:
        item = self._buckets.get(key)
        if item is None:
            return float(self.burst)
        tokens, at = item
        refill = max(0.0, (now - at) / self.interval)
        return min(float(self.burst), tokens + refill)

    def due(self, key: str, now: datetime) -> datetime:
        """When a sync requested now for ``key`` may run: now, or when a token is back."""
        tokens = self._tokens(key, now)
        if tokens >= 1:
            return now
        return now + self.interval * (1 - tokens)

    def take(self, key: str, now: datetime) -> None:
        """Spend a token (possibly one still refilling: the request was due later)."""
        self._buckets[key] = (self._tokens(key, now) - 1, now)
        self._buckets.move_to_end(key)
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
