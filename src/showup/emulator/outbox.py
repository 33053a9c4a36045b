"""Outbound notifications of the fake world: Google push pings and Graph notifications.

Providers queue HTTP POSTs here; nothing leaves until someone calls
:meth:`Outbox.deliver` (tests by hand, no background timers, DESIGN invariant 6; a
standalone emulator runs a pump). A 500/502/503/504 or a transport error keeps the
message queued for the next round, as Google and Graph retry those (PROTOCOLS §1.5
"Acknowledge", §2.4 "Acknowledgement"); any other status drops it.

Graph batches several changes into one POST (§2.4 "One POST may batch several items"):
a message with a ``batch_key`` and ``items`` absorbs later items for the same key until
its first delivery attempt.

Tests can make delivery misbehave, deterministically: :meth:`drop` loses the next
messages, :meth:`duplicate` sends them twice, :meth:`reorder` sends each round newest
first (§1.5 "Notifications are not 100% reliable", §2.2 "replays and duplicates").
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

_RETRY = frozenset({500, 502, 503, 504})
MAX_ATTEMPTS = 8


@dataclass(slots=True)
class Outbound:
    url: str
    headers: dict[str, str]
    body: bytes = b""
    label: str = ""  # "google-push", "graph-notification", "graph-lifecycle"
    attempts: int = 0
    statuses: list[int | None] = field(default_factory=list)  # None: transport error
    batch_key: str | None = None
    items: list[dict[str, Any]] | None = None  # set: the body is {"value": items}
    on_give_up: Callable[[Outbound], None] | None = None  # after a final failure

    def content(self) -> bytes:
        if self.items is None:
            return self.body
        return json.dumps({"value": self.items}).encode()


@dataclass(slots=True)
class _Rule:
    times: int
    label: str | None

    def take(self, message: Outbound) -> bool:
        if self.times <= 0 or (self.label is not None and not message.label.startswith(self.label)):
            return False
        self.times -= 1
        return True


@dataclass
class Outbox:
    pending: list[Outbound] = field(default_factory=list)
    sent: list[Outbound] = field(default_factory=list)  # delivered or given up, for tests
    dropped: list[Outbound] = field(default_factory=list)  # lost on purpose (drop())
    # Used by deliver() when no client is passed, and for Graph's validation handshake;
    # None: a real httpx client per round.
    client: httpx.AsyncClient | None = None
    # Run before each delivery round (Graph's subscription clock checks).
    before_deliver: list[Callable[[], None]] = field(default_factory=list)
    _drops: list[_Rule] = field(default_factory=list)
    _dups: list[_Rule] = field(default_factory=list)
    _reorder: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def put(self, message: Outbound) -> None:
        with self._lock:
            if message.batch_key is not None and message.items is not None:
                for queued in reversed(self.pending):
                    if (
                        queued.batch_key == message.batch_key
                        and queued.attempts == 0
                        and queued.items is not None
                    ):
                        queued.items.extend(message.items)
                        return
            self.pending.append(message)

    def clear(self) -> None:
        with self._lock:
            self.pending.clear()
            self.sent.clear()
            self.dropped.clear()
            self._drops.clear()
            self._dups.clear()
            self._reorder = False

    # ---- chaos -----------------------------------------------------------------------

    def drop(self, times: int = 1, label: str | None = None) -> None:
        """Lose the next ``times`` messages (whose label starts with ``label``) silently."""
        with self._lock:
            self._drops.append(_Rule(times, label))

    def duplicate(self, times: int = 1, label: str | None = None) -> None:
        """Send each of the next ``times`` matching messages twice in a row."""
        with self._lock:
            self._dups.append(_Rule(times, label))

    def reorder(self, on: bool = True) -> None:
        """While on, every round sends its pending messages newest first."""
        with self._lock:
            self._reorder = on

    def state(self) -> dict[str, Any]:
        with self._lock:
            return {
                "pending": len(self.pending),
                "sent": len(self.sent),
                "dropped": len(self.dropped),
                "drop": sum(r.times for r in self._drops),
                "duplicate": sum(r.times for r in self._dups),
                "reorder": self._reorder,
            }

    # ---- delivery --------------------------------------------------------------------

    async def deliver(self, client: httpx.AsyncClient | None = None) -> list[Outbound]:
        """POST every pending message once; returns the ones attempted (or dropped)."""
        for hook in list(self.before_deliver):
            hook()
        if client is None and self.client is None:
            async with httpx.AsyncClient(timeout=15.0) as own:
                return await self._deliver(own)
        return await self._deliver(client or self.client)  # type: ignore[arg-type]

    async def _deliver(self, client: httpx.AsyncClient) -> list[Outbound]:
        with self._lock:
            batch, self.pending = self.pending, []
            if self._reorder:
                batch.reverse()
        keep: list[Outbound] = []
        given_up: list[Outbound] = []
        for message in batch:
            with self._lock:
                lost = any(rule.take(message) for rule in self._drops)
                copies = 2 if any(rule.take(message) for rule in self._dups) else 1
            if lost:
                self.dropped.append(message)
                continue
            message.attempts += 1
            status: int | None = None
            for _ in range(copies):
                try:
                    response = await client.post(
                        message.url, headers=message.headers, content=message.content()
                    )
                    status = response.status_code
                except httpx.HTTPError:
                    status = None
            message.statuses.append(status)
            if (status is None or status in _RETRY) and message.attempts < MAX_ATTEMPTS:
                keep.append(message)
            else:
                self.sent.append(message)
                if status is None or not 200 <= status < 300:
                    given_up.append(message)
        with self._lock:
            self.pending[:0] = keep
        for message in given_up:
            if message.on_give_up is not None:
                message.on_give_up(message)
        return batch
