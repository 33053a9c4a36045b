"""Outbound notifications of the fake world (Google push pings now, Graph later).

Providers queue HTTP POSTs here; nothing leaves until someone calls
:meth:`Outbox.deliver` with an ``httpx.AsyncClient``. Tests call it by hand (no
background timers, DESIGN invariant 6); a standalone emulator runs a pump.
A 500/502/503/504 or a transport error keeps the message queued for the next round,
as Google retries those (PROTOCOLS §1.5 "Acknowledge"); any other status drops it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import httpx

_RETRY = frozenset({500, 502, 503, 504})
MAX_ATTEMPTS = 8


@dataclass(slots=True)
class Outbound:
    url: str
    headers: dict[str, str]
    body: bytes = b""
    label: str = ""  # e.g. "google-push"
    attempts: int = 0
    statuses: list[int | None] = field(default_factory=list)  # None: transport error


@dataclass
class Outbox:
    pending: list[Outbound] = field(default_factory=list)
    sent: list[Outbound] = field(default_factory=list)  # delivered or given up, for tests
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def put(self, message: Outbound) -> None:
        with self._lock:
            self.pending.append(message)

    def clear(self) -> None:
        with self._lock:
            self.pending.clear()
            self.sent.clear()

    async def deliver(self, client: httpx.AsyncClient) -> list[Outbound]:
        """POST every pending message once, in order; returns the ones attempted."""
        with self._lock:
            batch, self.pending = self.pending, []
        keep: list[Outbound] = []
        for message in batch:
            message.attempts += 1
            status: int | None
            try:
                response = await client.post(
                    message.url, headers=message.headers, content=message.body
                )
                status = response.status_code
            except httpx.HTTPError:
                status = None
            message.statuses.append(status)
            if (status is None or status in _RETRY) and message.attempts < MAX_ATTEMPTS:
                keep.append(message)
            else:
                self.sent.append(message)
        with self._lock:
            self.pending[:0] = keep
        return batch
