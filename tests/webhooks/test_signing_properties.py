"""Property tests: round trips, agreement with the official library, tamper detection, and
that arbitrary input never escapes as anything but SignatureError."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook

from showup.webhooks.signing import (
    SignatureError,
    build_headers,
    parse_secret,
    sign,
    verify,
)

keys = st.binary(min_size=24, max_size=64)
secrets_ = keys.map(lambda k: "whsec_" + base64.b64encode(k).decode())
# The spec forbids "." in ids; header values must be visible ASCII.
msg_ids = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="."),
    min_size=1,
    max_size=40,
)
# Up to the last second of year 9999, the most the official library's datetime can hold.
MAX_TS = 253_402_300_799
timestamps = st.integers(min_value=0, max_value=MAX_TS)
bodies = st.binary(max_size=512)


@given(key=keys, padded=st.booleans(), prefixed=st.booleans())
def test_parse_secret_inverts_encoding(key: bytes, padded: bool, prefixed: bool) -> None:
    text = base64.b64encode(key).decode()
    if not padded:
        text = text.rstrip("=")
    if prefixed:
        text = "whsec_" + text
    assert parse_secret(text) == key


@given(text=st.text(max_size=120))
def test_parse_secret_only_raises_value_error(text: str) -> None:
    try:
        key = parse_secret(text)
    except ValueError:
        return
    assert 24 <= len(key) <= 64


@given(secret=secrets_, msg_id=msg_ids, ts=timestamps, body=bodies)
def test_round_trip(secret: str, msg_id: str, ts: int, body: bytes) -> None:
    verify(secret, build_headers([secret], msg_id, ts, body), body, now=ts)


@given(
    secrets=st.lists(secrets_, min_size=1, max_size=4),
    pick=st.integers(min_value=0),
    msg_id=msg_ids,
    ts=timestamps,
    body=bodies,
)
def test_rotation_any_listed_secret_verifies(
    secrets: list[str], pick: int, msg_id: str, ts: int, body: bytes
) -> None:
    headers = build_headers(secrets, msg_id, ts, body)
    assert len(headers["webhook-signature"].split(" ")) == len(secrets)
    verify(secrets[pick % len(secrets)], headers, body, now=ts)


@given(secret=secrets_, msg_id=msg_ids, ts=timestamps, text=st.text(max_size=200))
def test_same_signature_as_official_library(secret: str, msg_id: str, ts: int, text: str) -> None:
    official = Webhook(secret).sign(msg_id, datetime.fromtimestamp(ts, UTC), text)
    assert sign([secret], msg_id, ts, text.encode()) == official


@given(secret=secrets_, msg_id=msg_ids, ts=timestamps, body=bodies, data=st.data())
def test_any_body_change_fails(
    secret: str, msg_id: str, ts: int, body: bytes, data: st.DataObject
) -> None:
    headers = build_headers([secret], msg_id, ts, body)
    other = data.draw(bodies.filter(lambda b: b != body), label="other body")
    with pytest.raises(SignatureError) as err:
        verify(secret, headers, other, now=ts)
    assert err.value.code == "no_matching_signature"


@given(secret=secrets_, msg_id=msg_ids, other_id=msg_ids, ts=timestamps, body=bodies)
def test_any_id_change_fails(secret: str, msg_id: str, other_id: str, ts: int, body: bytes) -> None:
    assume(other_id != msg_id)
    headers = {**build_headers([secret], msg_id, ts, body), "webhook-id": other_id}
    with pytest.raises(SignatureError):
        verify(secret, headers, body, now=ts)


@given(
    secret=secrets_,
    msg_id=msg_ids,
    ts=st.integers(min_value=300, max_value=MAX_TS),
    shift=st.integers(min_value=-300, max_value=300).filter(bool),
    body=bodies,
)
def test_any_timestamp_change_inside_tolerance_fails(
    secret: str, msg_id: str, ts: int, shift: int, body: bytes
) -> None:
    headers = {**build_headers([secret], msg_id, ts, body), "webhook-timestamp": str(ts + shift)}
    with pytest.raises(SignatureError) as err:
        verify(secret, headers, body, now=ts)
    # Within the window, so it is the signature that fails, not the clock.
    assert err.value.code == "no_matching_signature"


@given(secret=secrets_, other=secrets_, msg_id=msg_ids, ts=timestamps, body=bodies)
def test_other_secret_fails(secret: str, other: str, msg_id: str, ts: int, body: bytes) -> None:
    assume(parse_secret(other) != parse_secret(secret))
    with pytest.raises(SignatureError):
        verify(other, build_headers([secret], msg_id, ts, body), body, now=ts)


@given(
    ts=timestamps,
    now=timestamps,
    seconds=st.integers(min_value=0, max_value=10**6),
)
def test_window_decision(ts: int, now: int, seconds: int) -> None:
    secret = "whsec_" + base64.b64encode(b"k" * 32).decode()
    headers = build_headers([secret], "msg_1", ts, b"{}")
    tolerance = timedelta(seconds=seconds)
    if abs(now - ts) <= seconds:
        verify(secret, headers, b"{}", now=now, tolerance=tolerance)
    else:
        with pytest.raises(SignatureError) as err:
            verify(secret, headers, b"{}", now=now, tolerance=tolerance)
        assert err.value.code == ("timestamp_too_old" if ts < now else "timestamp_too_new")


@given(
    headers=st.dictionaries(
        st.sampled_from(
            ["webhook-id", "Webhook-Id", "webhook-timestamp", "webhook-signature", "x-other"]
        ),
        st.text(max_size=80),
    ),
    body=bodies,
    now=timestamps,
)
def test_arbitrary_headers_only_raise_signature_error(
    headers: dict[str, str], body: bytes, now: int
) -> None:
    secret = "whsec_" + base64.b64encode(b"k" * 32).decode()
    with pytest.raises(SignatureError):
        verify(secret, headers, body, now=now)
