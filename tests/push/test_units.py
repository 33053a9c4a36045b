"""Pure parts of push: channel ids and tokens, the renewal time, the rate limiter."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from showup.push.limiter import SyncRequestLimiter
from showup.push.schedule import renew_time
from showup.push.secrets import calendar_of_channel_id, channel_token, new_channel_id, same_token

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
KEY = b"k" * 32


def test_channel_ids_name_their_calendar_and_fit_google_limits() -> None:
    cal = str(uuid.uuid4())
    ids = {new_channel_id(cal) for _ in range(100)}
    assert len(ids) == 100  # never reused
    for channel_id in ids:
        assert len(channel_id) <= 64 and calendar_of_channel_id(channel_id) == cal
    fresh = new_channel_id(cal)
    for other in ("", "su-xyz", "chan-1", fresh + "0", "SU" + fresh[2:], fresh.upper()):
        assert calendar_of_channel_id(other) is None


def test_tokens_are_keyed_per_channel_and_master_key() -> None:
    a, b = new_channel_id(str(uuid.uuid4())), new_channel_id(str(uuid.uuid4()))
    token = channel_token(KEY, a)
    assert len(token) == 43 and token == channel_token(KEY, a)
    assert token not in (channel_token(KEY, b), channel_token(b"j" * 32, a))
    assert same_token(token, token) and not same_token(None, token)
    assert not same_token(token[:-1], token) and not same_token("", token)


def test_renewal_comes_a_margin_early_but_never_past_half_the_granted_life() -> None:
    day = timedelta(days=1)
    assert renew_time(NOW, NOW + 7 * day, day) == NOW + 6 * day
    assert renew_time(NOW, NOW + timedelta(hours=1), day) == NOW + timedelta(minutes=30)
    assert renew_time(NOW, NOW - day, day) == NOW


def test_limiter_allows_a_burst_then_one_per_interval() -> None:
    limiter = SyncRequestLimiter(burst=3, interval=timedelta(seconds=10))
    for _ in range(3):
        assert limiter.due("cal", NOW) == NOW
        limiter.take("cal", NOW)
    assert limiter.due("cal", NOW) == NOW + timedelta(seconds=10)
    limiter.take("cal", NOW)  # reserved: the next one waits longer
    assert limiter.due("cal", NOW) == NOW + timedelta(seconds=20)
    assert limiter.due("other", NOW) == NOW  # per calendar
    later = NOW + timedelta(minutes=5)
    assert limiter.due("cal", later) == later  # refilled, up to the burst
    for _ in range(3):
        limiter.take("cal", later)
    assert limiter.due("cal", later) > later


def test_limiter_forgets_the_least_recent_calendars() -> None:
    limiter = SyncRequestLimiter(burst=1, interval=timedelta(seconds=10), max_keys=2)
    for key in ("a", "b", "c"):
        limiter.take(key, NOW)
    assert limiter.due("a", NOW) == NOW  # forgotten: full again
    assert limiter.due("c", NOW) > NOW
    with pytest.raises(ValueError):
        SyncRequestLimiter(burst=0, interval=timedelta(seconds=1))
