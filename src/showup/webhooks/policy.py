"""What happens after one delivery attempt: a pure decision table (Standard Webhooks 1.0.0,
"Delivery behaviour"; PROTOCOLS §4).

| attempt result                                   | verdict                              |
|--------------------------------------------------|--------------------------------------|
| 2xx                                              | ``delivered``                        |
| 410 Gone                                         | ``gone``: disable endpoint, cancel queue |
| 429, 502, 503, 504 with ``Retry-After``          | ``retry``, not before Retry-After    |
| other status (3xx too: redirects not followed),  | ``retry`` after exponential backoff  |
| timeout, network error, URL refused by the guard | with full jitter                     |
| next try after ``give_up_after`` from creation   | ``failed``                           |

The last retry is pulled in to the give-up deadline rather than skipped, so a delivery
is always tried once at the end of its window; a ``Retry-After`` pointing past the
deadline gives up at once (we were told not to come back before then).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Literal

from showup.backoff import backoff
from showup.config import Settings

Verdict = Literal["delivered", "retry", "failed", "gone"]

THROTTLE_STATUSES = frozenset({429, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    base: timedelta
    cap: timedelta
    give_up_after: timedelta

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(
            base=settings.webhook_retry_base,
            cap=settings.webhook_retry_max,
            give_up_after=settings.webhook_give_up_after,
        )


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    next_attempt_at: datetime | None = None
    reason: str | None = None


def parse_retry_after(value: str | None, *, now: datetime) -> timedelta | None:
    """``Retry-After`` as delta-seconds or an HTTP-date (RFC 9110 §10.2.3), or None.

    Not capped here: :func:`decide` gives up instead when the hint passes the deadline.
    """
    if value is None or not value.strip():
        return None
    value = value.strip()
    if value.isascii() and value.isdigit() and len(value) <= 12:
        return timedelta(seconds=int(value))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(timedelta(0), when - now)


def decide(
    *,
    status_code: int | None,
    retry_after: timedelta | None,
    attempts: int,
    created_at: datetime,
    now: datetime,
    policy: RetryPolicy,
    rng: random.Random | None = None,
) -> Decision:
    """Decide the delivery's next state after its ``attempts``-th attempt (1-based).

    ``status_code`` is None when no response came back (timeout, network error, refused URL).
    """
    if status_code is not None and 200 <= status_code < 300:
        return Decision("delivered")
    if status_code == 410:
        return Decision("gone", reason="endpoint_gone")
    deadline = created_at + policy.give_up_after
    if now >= deadline:
        return Decision("failed", reason="gave_up")
    next_at = now + backoff(attempts, base=policy.base, cap=policy.cap, rng=rng)
    if retry_after is not None and status_code in THROTTLE_STATUSES:
        earliest = now + retry_after
        if earliest > deadline:
            return Decision("failed", reason="retry_after_past_deadline")
        next_at = max(next_at, earliest)
    return Decision("retry", next_attempt_at=min(next_at, deadline))
