"""Standard Webhooks signing: secrets, headers, rotation, tampering, tolerance, interop."""

from __future__ import annotations

import base64
import hmac
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from showup.webhooks.signing import (
    SignatureError,
    build_headers,
    generate_secret,
    parse_secret,
    sign,
    verify,
)

TS = 1_700_000_000
MSG_ID = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"
BODY = b'{"type":"bot.scheduled","timestamp":"2026-11-02T09:00:00Z","data":{"id":"b1"}}'
OLD = "whsec_" + base64.b64encode(bytes(range(32))).decode()
NEW = "whsec_" + base64.b64encode(bytes(range(100, 132))).decode()
OTHER = "whsec_" + base64.b64encode(b"\xff" * 32).decode()


def _b64(n: int, fill: int = 7) -> str:
    return base64.b64encode(bytes([fill]) * n).decode()


# --- secrets -------------------------------------------------------------------------------


def test_generate_secret_shape() -> None:
    secret = generate_secret()
    assert secret.startswith("whsec_")
    key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    assert len(key) == 32
    assert parse_secret(secret) == key


def test_generate_secret_is_random() -> None:
    assert len({generate_secret() for _ in range(50)}) == 50


@pytest.mark.parametrize("n", [24, 32, 48, 64])
def test_parse_secret_lengths_in_range(n: int) -> None:
    text = _b64(n)
    assert parse_secret("whsec_" + text) == b"\x07" * n
    assert parse_secret(text) == b"\x07" * n
    assert parse_secret(text.rstrip("=")) == b"\x07" * n


@pytest.mark.parametrize(
    ("secret", "match"),
    [
        ("", "empty"),
        ("whsec_", "empty"),
        (_b64(23), "24-64 bytes"),
        ("whsec_" + _b64(65), "24-64 bytes"),
        ("whsec_" + _b64(16), "24-64 bytes"),
        ("not base64 at all!", "base64"),
        ("whsec_" + _b64(32) + "\n", "base64"),  # a pasted newline is refused, not ignored
        (" " + _b64(32), "base64"),
        ("whsec_" + _b64(32).replace("B", "-"), "base64"),  # URL-safe alphabet
        ("whsec_" + _b64(32)[:-1] + "_", "base64"),
        ("A" * 41, "base64"),  # 41 % 4 == 1: a dangling 6 bits
        (_b64(32) + "=", "padding"),  # _b64(32) already ends in one "="
        ("AAAA" * 8 + "=", "base64"),  # padding where none fits
        ("AAAA" * 4 + "=AAAA" * 4, "base64"),  # padding in the middle
        ("WHSEC_" + _b64(32), "base64"),  # the prefix is case-sensitive
    ],
)
def test_parse_secret_rejects(secret: str, match: str) -> None:
    with pytest.raises(ValueError, match=match) as err:
        parse_secret(secret)
    # Secrets end up in logs through error messages: never echo them.
    if len(secret) > 8:
        assert secret.strip() not in str(err.value)


# --- signing and headers -------------------------------------------------------------------


def _expected(secret: str, msg_id: str = MSG_ID, ts: int = TS, body: bytes = BODY) -> str:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{ts}.".encode() + body, "sha256").digest()
    return "v1," + base64.b64encode(mac).decode()


def test_sign_one_secret() -> None:
    assert sign([OLD], MSG_ID, TS, BODY) == _expected(OLD)


def test_sign_rotation_one_entry_per_secret_in_order() -> None:
    header = sign([OLD, NEW], MSG_ID, TS, BODY)
    assert header == f"{_expected(OLD)} {_expected(NEW)}"
    assert sign((NEW, OLD), MSG_ID, TS, BODY) == f"{_expected(NEW)} {_expected(OLD)}"


def test_sign_accepts_unprefixed_secret() -> None:
    assert sign([OLD.removeprefix("whsec_")], MSG_ID, TS, BODY) == _expected(OLD)


def test_sign_covers_raw_bytes_not_text() -> None:
    # Non-UTF-8 and whitespace differences are part of the signed content.
    assert sign([OLD], MSG_ID, TS, b"\xff\x00") == _expected(OLD, body=b"\xff\x00")
    assert sign([OLD], MSG_ID, TS, b'{"a": 1}') != sign([OLD], MSG_ID, TS, b'{"a":1}')
    assert sign([OLD], MSG_ID, TS, b"") == _expected(OLD, body=b"")


def test_sign_refuses_a_bare_string() -> None:
    with pytest.raises(TypeError, match="single str"):
        sign(OLD, MSG_ID, TS, BODY)


def test_sign_needs_a_secret() -> None:
    with pytest.raises(ValueError, match="at least one"):
        sign([], MSG_ID, TS, BODY)


def test_sign_validates_every_secret() -> None:
    with pytest.raises(ValueError, match="24-64 bytes"):
        sign([OLD, _b64(10)], MSG_ID, TS, BODY)


@pytest.mark.parametrize(
    "msg_id",
    ["", "msg.1", "msg 1", "msg\r\nx-evil: 1", "msg\t1", "msg\x001", "msg\x7f", "msg_\u00e9"],
)
def test_sign_refuses_ambiguous_or_unsafe_ids(msg_id: str) -> None:
    # Spec: ids must not contain "."; whitespace, controls, non-ASCII would break headers.
    with pytest.raises(ValueError, match="msg_id"):
        sign([OLD], msg_id, TS, BODY)


@pytest.mark.parametrize("timestamp", [-1, True, 1.5, "1700000000", None])
def test_sign_refuses_bad_timestamps(timestamp: Any) -> None:
    with pytest.raises(ValueError, match="timestamp"):
        sign([OLD], MSG_ID, timestamp, BODY)


def test_sign_timestamp_zero_is_allowed() -> None:
    assert sign([OLD], MSG_ID, 0, BODY) == _expected(OLD, ts=0)


def test_build_headers() -> None:
    headers = build_headers([OLD, NEW], MSG_ID, TS, BODY)
    assert headers == {
        "webhook-id": MSG_ID,
        "webhook-timestamp": str(TS),
        "webhook-signature": sign([OLD, NEW], MSG_ID, TS, BODY),
        "content-type": "application/json",
    }


def test_build_headers_retry_keeps_id_changes_timestamp() -> None:
    first = build_headers([OLD], MSG_ID, TS, BODY)
    retry = build_headers([OLD], MSG_ID, TS + 5, BODY)
    assert first["webhook-id"] == retry["webhook-id"]
    assert first["webhook-signature"] != retry["webhook-signature"]
    verify(OLD, retry, BODY, now=TS + 5)
    with pytest.raises(SignatureError):
        # A replay of the first attempt with the retry's timestamp does not verify.
        verify(OLD, {**first, "webhook-timestamp": str(TS + 5)}, BODY, now=TS + 5)


# --- verification --------------------------------------------------------------------------


def _code(secret: str, headers: dict[str, str], body: bytes = BODY, now: int = TS) -> str:
    with pytest.raises(SignatureError) as err:
        verify(secret, headers, body, now=now)
    return err.value.code


def test_verify_round_trip() -> None:
    verify(OLD, build_headers([OLD], MSG_ID, TS, BODY), BODY, now=TS)


@pytest.mark.parametrize("receiver", [OLD, NEW])
def test_rotation_receiver_with_either_secret_verifies(receiver: str) -> None:
    headers = build_headers([OLD, NEW], MSG_ID, TS, BODY)
    verify(receiver, headers, BODY, now=TS)
    verify(receiver.removeprefix("whsec_"), headers, BODY, now=TS)


def test_rotation_receiver_with_neither_secret_fails() -> None:
    headers = build_headers([OLD, NEW], MSG_ID, TS, BODY)
    assert _code(OTHER, headers) == "no_matching_signature"


def test_after_rotation_old_receiver_fails() -> None:
    assert _code(OLD, build_headers([NEW], MSG_ID, TS, BODY)) == "no_matching_signature"


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda h, b: (h, b + b" "), id="body-appended"),
        pytest.param(lambda h, b: (h, b.replace(b"b1", b"b2")), id="body-changed"),
        pytest.param(lambda h, b: (h, b""), id="body-emptied"),
        pytest.param(lambda h, b: ({**h, "webhook-id": MSG_ID + "x"}, b), id="id"),
        pytest.param(
            lambda h, b: ({**h, "webhook-timestamp": str(TS + 1)}, b), id="timestamp-plus-1"
        ),
        pytest.param(
            lambda h, b: ({**h, "webhook-timestamp": str(TS - 1)}, b), id="timestamp-minus-1"
        ),
        pytest.param(
            lambda h, b: ({**h, "webhook-signature": h["webhook-signature"][:-2] + "A="}, b),
            id="signature-last-char",
        ),
        pytest.param(
            lambda h, b: (
                {**h, "webhook-signature": h["webhook-signature"].replace("v1", "v2")},
                b,
            ),
            id="signature-version",
        ),
    ],
)
def test_tampering_fails(tamper: Any) -> None:
    headers, body = tamper(build_headers([OLD], MSG_ID, TS, BODY), BODY)
    assert _code(OLD, headers, body) == "no_matching_signature"


def test_signature_for_other_message_does_not_transfer() -> None:
    # The "msg_id.timestamp.body" framing: moving the boundary does not keep the signature.
    headers = build_headers([OLD], "msg_a", TS, b"1.x")
    moved = {**headers, "webhook-id": "msg_a.1"}
    assert _code(OLD, moved, b"x") == "no_matching_signature"


@pytest.mark.parametrize(
    ("now", "outcome"),
    [
        (TS, None),
        (TS + 300, None),  # exactly at the edge passes, as in the reference library
        (TS + 301, "timestamp_too_old"),
        (TS - 300, None),
        (TS - 301, "timestamp_too_new"),
        (TS + 10**9, "timestamp_too_old"),
        (0, "timestamp_too_new"),
    ],
)
def test_default_tolerance_edges(now: int, outcome: str | None) -> None:
    headers = build_headers([OLD], MSG_ID, TS, BODY)
    if outcome is None:
        verify(OLD, headers, BODY, now=now)
    else:
        assert _code(OLD, headers, now=now) == outcome


@pytest.mark.parametrize(
    ("tolerance", "offset", "ok"),
    [
        (timedelta(0), 0, True),
        (timedelta(0), 1, False),
        (timedelta(0), -1, False),
        (timedelta(seconds=10), 10, True),
        (timedelta(seconds=10), 11, False),
        (timedelta(seconds=10), -10, True),
        (timedelta(seconds=10), -11, False),
        (timedelta(seconds=0.5), 1, False),
        (timedelta(hours=1), 3600, True),
        (timedelta(hours=1), 3601, False),
    ],
)
def test_custom_tolerance(tolerance: timedelta, offset: int, ok: bool) -> None:
    headers = build_headers([OLD], MSG_ID, TS, BODY)
    if ok:
        verify(OLD, headers, BODY, now=TS + offset, tolerance=tolerance)
    else:
        with pytest.raises(SignatureError, match=r"too (old|new)"):
            verify(OLD, headers, BODY, now=TS + offset, tolerance=tolerance)


def test_negative_tolerance_is_a_bug() -> None:
    with pytest.raises(ValueError, match="tolerance"):
        verify(OLD, build_headers([OLD], MSG_ID, TS, BODY), BODY, now=TS, tolerance=-timedelta(1))


def test_timestamp_checked_before_signature() -> None:
    # A stale message is reported as stale even when its signature is also wrong.
    headers = {**build_headers([NEW], MSG_ID, TS, BODY)}
    assert _code(OLD, headers, now=TS + 1000) == "timestamp_too_old"


@pytest.mark.parametrize(
    "value",
    [
        "hello",
        "",
        "1700000000.0",
        "+1700000000",
        "-1700000000",
        " 1700000000",
        "1700000000 ",
        "1_700_000_000",
        "".join(chr(0xFF10 + int(c)) for c in "1700000000"),  # fullwidth: isdigit() is True
        "1" * 16,
        "9" * 5000,  # would hit int()'s digit limit without the length cap
    ],
)
def test_invalid_timestamp_header(value: str) -> None:
    headers = {**build_headers([OLD], MSG_ID, TS, BODY), "webhook-timestamp": value}
    expected = "missing_header" if value == "" else "invalid_timestamp"
    assert _code(OLD, headers) == expected


def test_timestamp_with_leading_zeros_is_read_as_its_number() -> None:
    # The reference library parses the number and signs its canonical form; so do we.
    headers = {**build_headers([OLD], MSG_ID, TS, BODY), "webhook-timestamp": f"000{TS}"}
    verify(OLD, headers, BODY, now=TS)


@pytest.mark.parametrize("name", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_or_empty_header(name: str) -> None:
    headers = build_headers([OLD], MSG_ID, TS, BODY)
    assert _code(OLD, {k: v for k, v in headers.items() if k != name}) == "missing_header"
    assert _code(OLD, {**headers, name: ""}) == "missing_header"


def test_header_names_are_case_insensitive() -> None:
    headers = build_headers([OLD], MSG_ID, TS, BODY)
    verify(OLD, {k.upper(): v for k, v in headers.items()}, BODY, now=TS)
    verify(OLD, {k.title(): v for k, v in headers.items()}, BODY, now=TS)


def test_same_header_twice_with_same_value_is_fine() -> None:
    headers = build_headers([OLD], MSG_ID, TS, BODY)
    verify(OLD, {**headers, "Webhook-Id": MSG_ID}, BODY, now=TS)


def test_conflicting_duplicate_headers_are_refused() -> None:
    headers = build_headers([OLD], MSG_ID, TS, BODY)
    assert _code(OLD, {**headers, "Webhook-Id": "msg_other"}) == "invalid_header"


def test_httpx_headers_work_as_mapping() -> None:
    # What a receiver built on httpx or Starlette hands us: a case-insensitive multi-dict.
    headers = httpx.Headers(build_headers([OLD, NEW], MSG_ID, TS, BODY))
    verify(NEW, headers, BODY, now=TS)


@pytest.mark.parametrize(
    "junk",
    [
        "v1",
        "v1,",
        ",abc",
        "v1,!!!!",
        "v1,AAAA",
        "v1,===",
        "v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg==",
        "v2,{good}",
        "V1,{good}",
        "{good}",
        "v1,{good}x",
        "v1,,{good}",
    ],
)
def test_malformed_entries_are_skipped_not_fatal(junk: str) -> None:
    good = sign([OLD], MSG_ID, TS, BODY)
    junk = junk.replace("{good}", good.removeprefix("v1,"))
    headers = build_headers([OLD], MSG_ID, TS, BODY)
    # Alone, the junk entry does not verify...
    assert _code(OLD, {**headers, "webhook-signature": junk}) == "no_matching_signature"
    # ...and next to a good entry, in either order, it does not spoil it.
    verify(OLD, {**headers, "webhook-signature": f"{junk} {good}"}, BODY, now=TS)
    verify(OLD, {**headers, "webhook-signature": f"{good} {junk}"}, BODY, now=TS)


def test_extra_whitespace_between_entries_is_tolerated() -> None:
    headers = build_headers([OLD, NEW], MSG_ID, TS, BODY)
    spaced = "  " + headers["webhook-signature"].replace(" ", "   ") + " "
    verify(NEW, {**headers, "webhook-signature": spaced}, BODY, now=TS)


def test_verify_with_invalid_secret_is_a_value_error_not_signature_error() -> None:
    headers = build_headers([OLD], MSG_ID, TS, BODY)
    with pytest.raises(ValueError, match="24-64 bytes") as err:
        verify(_b64(8), headers, BODY, now=TS)
    assert not isinstance(err.value, SignatureError)


def test_verify_compares_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    # signing looks compare_digest up on the hmac module at call time.
    monkeypatch.setattr(hmac, "compare_digest", spy)
    verify(NEW, build_headers([OLD, NEW], MSG_ID, TS, BODY), BODY, now=TS)
    # Both entries were compared, through compare_digest, even though the second matched.
    assert len(calls) == 2


# --- interoperability with the official library ------------------------------------------------


def test_official_library_verifies_our_headers_with_either_rotated_secret() -> None:
    # The official library reads the wall clock, so sign for "now".
    now = int(time.time())
    body = BODY.decode()
    headers = build_headers([OLD, NEW], MSG_ID, now, BODY)
    for secret in (OLD, NEW):
        assert Webhook(secret).verify(body, headers) == {
            "type": "bot.scheduled",
            "timestamp": "2026-11-02T09:00:00Z",
            "data": {"id": "b1"},
        }
    with pytest.raises(WebhookVerificationError):
        Webhook(OTHER).verify(body, headers)


def test_we_verify_the_official_librarys_signature() -> None:
    signature = Webhook(OLD).sign(MSG_ID, datetime.fromtimestamp(TS, UTC), BODY.decode())
    assert signature == sign([OLD], MSG_ID, TS, BODY)
    headers = {"webhook-id": MSG_ID, "webhook-timestamp": str(TS), "webhook-signature": signature}
    verify(OLD, headers, BODY, now=TS)


def test_official_library_rejects_what_we_reject_for_staleness() -> None:
    now = int(time.time())
    stale = build_headers([OLD], MSG_ID, now - 301, BODY)
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(OLD).verify(BODY.decode(), stale)
    with pytest.raises(SignatureError, match="too old"):
        verify(OLD, stale, BODY, now=now)
