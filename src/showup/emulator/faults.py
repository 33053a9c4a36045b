"""Fault injection for the emulators (PROTOCOLS §1.6 and §5: 403/429 rateLimitExceeded,
500/503 backendError, Retry-After, latency).

A fault matches requests by path substring and method; each matching request consumes
one use. Faults are checked in the order they were added; the first live match wins.
Latency is spent on the world's clock (a FakeClock just advances), never wall time
in tests.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any


@dataclass(slots=True)
class Fault:
    id: int
    status: int | None = None  # None: latency only, then the request proceeds
    times: int | None = 1  # None: forever
    path_contains: str | None = None
    method: str | None = None
    retry_after: float | None = None  # seconds, sent as the Retry-After header
    reason: str | None = None  # Google error reason; defaults per status
    message: str | None = None
    latency: timedelta | None = None
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return self.path_contains is None or self.path_contains in path

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "times": self.times,
            "path_contains": self.path_contains,
            "method": self.method,
            "retry_after": self.retry_after,
            "reason": self.reason,
            "message": self.message,
            "latency_seconds": self.latency.total_seconds() if self.latency else None,
            "hits": self.hits,
        }


@dataclass
class Faults:
    """The world's fault list. Thread-safe: the HTTP thread consumes, tests add."""

    _items: list[Fault] = field(default_factory=list)
    _next_id: int = 1
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(
        self,
        status: int | None = None,
        *,
        times: int | None = 1,
        path_contains: str | None = None,
        method: str | None = None,
        retry_after: float | None = None,
        reason: str | None = None,
        message: str | None = None,
        latency: timedelta | None = None,
    ) -> Fault:
        """Add a fault. ``path_contains="/token"`` fails the OAuth token endpoint."""
        if status is None and latency is None:
            raise ValueError("a fault needs a status, a latency, or both")
        with self._lock:
            fault = Fault(
                id=self._next_id,
                status=status,
                times=times,
                path_contains=path_contains,
                method=method,
                retry_after=retry_after,
                reason=reason,
                message=message,
                latency=latency,
            )
            self._next_id += 1
            self._items.append(fault)
            return fault

    def take(self, method: str, path: str) -> Fault | None:
        """Consume one use of the first fault matching this request, if any."""
        with self._lock:
            for fault in self._items:
                if fault.matches(method, path):
                    fault.hits += 1
                    return fault
            return None

    def remove(self, fault_id: int) -> bool:
        with self._lock:
            before = len(self._items)
            self._items = [f for f in self._items if f.id != fault_id]
            return len(self._items) != before

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def list(self) -> list[Fault]:
        with self._lock:
            return list(self._items)
