"""Truncated exponential backoff with full jitter (PROTOCOLS §1.6, §4)."""

from __future__ import annotations

import random
from datetime import timedelta


def backoff(
    attempt: int,
    *,
    base: timedelta,
    cap: timedelta,
    rng: random.Random | None = None,
) -> timedelta:
    """Delay before retry number ``attempt`` (1-based): uniform in [base/2, min(cap, base·2^(n-1))].

    The half-base floor keeps a retry from landing immediately; the jitter spreads a herd
    of calendars that failed together.
    """
    if attempt < 1:
        attempt = 1
    ceiling = min(cap.total_seconds(), base.total_seconds() * (2 ** min(attempt - 1, 30)))
    floor = min(base.total_seconds() / 2, ceiling)
    r = rng or random
    return timedelta(seconds=r.uniform(floor, ceiling))
