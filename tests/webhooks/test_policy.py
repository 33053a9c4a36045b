"""The delivery decision table (``webhooks/policy.py``), as pure functions."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from showup.webhooks.policy import Decision, RetryPolicy, decide, parse_retry_after

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
POLICY = RetryPolicy(
    base=timedelta(seconds=5), cap=timedelta(hours=12), give_up_after=timedelta(days=3)
)
DEADLINE = T0 + POLICY.give_up_after


def after(
    status: int | None, *, attempts: int = 1, now: datetime = T0, retry_after: int | None = None
) -> Decision:
    return decide(
        status_code=status,
        retry_after=timedelta(seconds=retry_after) if retry_after is not None else None,
        attempts=attempts,
        created_at=T0,
        now=now,
        policy=POLICY,
        rng=random.Random(7),
    )


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
def test_2xx_is_delivered(status: int) -> None:
    assert after(status).verdict == "delivered"


def test_410_is_gone_even_at_the_deadline() -> None:
    assert after(410).verdict == "gone"
    assert after(410, now=DEADLINE).verdict == "gone"


@pytest.mark.parametrize("status", [None, 300, 301, 302, 307, 400, 401, 404, 409, 500, 501])
def test_other_results_retry_with_backoff(status: int | None) -> None:
    d = after(status)
    assert d.verdict == "retry" and d.next_attempt_at is not None
    assert T0 + timedelta(seconds=2.5) <= d.next_attempt_at <= T0 + timedelta(seconds=5)


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_throttle_statuses_wait_for_retry_after(status: int) -> None:
    d = after(status, retry_after=3600)
    assert d.verdict == "retry" and d.next_attempt_at == T0 + timedelta(hours=1)
    # A shorter hint than the backoff does not bring the retry forward.
    late = after(status, attempts=20, retry_after=1)
    assert late.next_attempt_at is not None and late.next_attempt_at >= T0 + timedelta(seconds=2.5)


def test_retry_after_is_ignored_for_other_statuses() -> None:
    d = after(500, retry_after=3600)
    assert d.next_attempt_at is not None and d.next_attempt_at <= T0 + timedelta(seconds=5)


def test_retry_after_past_the_deadline_gives_up() -> None:
    d = after(429, now=DEADLINE - timedelta(minutes=1), retry_after=120)
    assert (d.verdict, d.reason) == ("failed", "retry_after_past_deadline")


def test_the_last_retry_lands_on_the_deadline_then_gives_up() -> None:
    d = after(500, attempts=30, now=DEADLINE - timedelta(seconds=10))
    assert d.verdict == "retry" and d.next_attempt_at is not None
    assert d.next_attempt_at <= DEADLINE
    assert (after(500, attempts=31, now=DEADLINE).verdict) == "failed"
    assert after(500, now=DEADLINE).reason == "gave_up"


@given(
    attempts=st.integers(min_value=1, max_value=500),
    elapsed=st.integers(min_value=0, max_value=int(POLICY.give_up_after.total_seconds()) - 1),
    status=st.sampled_from([None, 302, 404, 429, 500, 503]),
    retry_after=st.one_of(st.none(), st.integers(min_value=0, max_value=10**6)),
    seed=st.integers(),
)
def test_a_retry_is_always_in_the_future_and_within_the_window(
    attempts: int, elapsed: int, status: int | None, retry_after: int | None, seed: int
) -> None:
    now = T0 + timedelta(seconds=elapsed)
    d = decide(
        status_code=status,
        retry_after=timedelta(seconds=retry_after) if retry_after is not None else None,
        attempts=attempts,
        created_at=T0,
        now=now,
        policy=POLICY,
        rng=random.Random(seed),
    )
    if d.verdict == "retry":
        assert d.next_attempt_at is not None
        assert now < d.next_attempt_at <= DEADLINE
        if retry_after is not None and status in (429, 503):
            assert d.next_attempt_at >= now + timedelta(seconds=retry_after)
    else:
        assert d.verdict == "failed" and d.reason == "retry_after_past_deadline"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", timedelta(seconds=120)),
        (" 0 ", timedelta(0)),
        ("Mon, 02 Nov 2026 09:10:00 GMT", timedelta(minutes=10)),
        ("Mon, 02 Nov 2026 08:00:00 GMT", timedelta(0)),  # in the past: now
        (None, None),
        ("", None),
        ("soon", None),
        ("-5", None),
        ("1.5", None),
        ("9" * 40, None),
    ],
)
def test_parse_retry_after(value: str | None, expected: timedelta | None) -> None:
    assert parse_retry_after(value, now=T0) == expected
