"""Standard Webhooks v1 signatures (symmetric, HMAC-SHA256).

Follows the Standard Webhooks specification 1.0.0, "Verifying webhook authenticity"
(https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md)
and the behaviour of its reference Python library (``standardwebhooks``):

- The signed content is ``f"{msg_id}.{timestamp}.{body}"`` over the exact raw body bytes.
- The signature is ``base64(HMAC-SHA256(key, content))``, serialized as ``v1,<base64>``.
- The ``webhook-signature`` header is a *space-delimited* list of such entries, so a sender
  can sign with an old and a new secret during rotation; a receiver accepts if any matches.
- A secret is ``whsec_`` + base64 of 24-64 random bytes; the HMAC key is the decoded bytes,
  not the text.
- Receivers compare in constant time and reject timestamps outside a tolerance (the
  reference library uses +/- 5 minutes), which is what stops replays.

Headers (spec "Webhook headers"): ``webhook-id`` (stable across retries: the receiver's
idempotency key), ``webhook-timestamp`` (integer Unix seconds, set per attempt) and
``webhook-signature``.

Secrets are never echoed in error messages: they end up in logs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets as _secrets
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Final, Literal

__all__ = [
    "DEFAULT_TOLERANCE",
    "SECRET_PREFIX",
    "SignatureError",
    "build_headers",
    "generate_secret",
    "parse_secret",
    "sign",
    "verify",
]

SECRET_PREFIX: Final = "whsec_"
# Spec, "Symmetric vs asymmetric": secrets are 24 to 64 random bytes.
MIN_SECRET_BYTES: Final = 24
MAX_SECRET_BYTES: Final = 64
# 32 bytes = 256 bits, the HMAC-SHA256 block-size sweet spot and the middle of the range.
GENERATED_SECRET_BYTES: Final = 32
# The reference library's tolerance; the spec itself only asks for "some allowable tolerance".
DEFAULT_TOLERANCE: Final = timedelta(minutes=5)

HEADER_ID: Final = "webhook-id"
HEADER_TIMESTAMP: Final = "webhook-timestamp"
HEADER_SIGNATURE: Final = "webhook-signature"

_VERSION: Final = "v1"
_STD_B64: Final = re.compile(r"[A-Za-z0-9+/]*={0,2}")
# Visible ASCII except ".": the spec warns that a "." in the id makes "id.timestamp.body"
# ambiguous, and whitespace, controls or non-ASCII would break or smuggle header lines.
_MSG_ID: Final = re.compile(r"[\x21-\x2d\x2f-\x7e]+")

SignatureErrorCode = Literal[
    "missing_header",
    "invalid_header",
    "invalid_timestamp",
    "timestamp_too_old",
    "timestamp_too_new",
    "no_matching_signature",
]


class SignatureError(Exception):
    """A received webhook failed verification. ``code`` says why, for logs and tests."""

    def __init__(self, code: SignatureErrorCode, message: str) -> None:
        super().__init__(message)
        self.code: SignatureErrorCode = code
        self.message = message


def generate_secret() -> str:
    """A fresh endpoint secret: ``whsec_`` + base64 of 32 bytes from the OS CSPRNG."""
    return SECRET_PREFIX + base64.b64encode(_secrets.token_bytes(GENERATED_SECRET_BYTES)).decode(
        "ascii"
    )


def parse_secret(secret: str) -> bytes:
    """Return the HMAC key of ``secret`` (the base64-decoded bytes after ``whsec_``).

    The prefix is optional and missing ``=`` padding is accepted, as in the reference
    library (its test ``test_signature_verification_with_unpadded_secret``). Unlike the
    reference library, which silently skips non-alphabet characters, anything that is not
    strict standard base64 is refused, and so is a key outside the spec's 24-64 bytes.

    Raises:
        ValueError: the secret is empty, not base64, or decodes to the wrong length.
    """
    text = secret.removeprefix(SECRET_PREFIX)
    if not text:
        raise ValueError("webhook secret is empty")
    stripped = text.rstrip("=")
    # One leftover base64 character (len % 4 == 1) can never encode a whole byte.
    if not _STD_B64.fullmatch(text) or len(stripped) % 4 == 1:
        raise ValueError("webhook secret is not valid standard base64")
    padded = stripped + "=" * (-len(stripped) % 4)
    if len(text) > len(stripped) and text != padded:
        # Padding was given but is wrong ("abc==="); refuse rather than guess.
        raise ValueError("webhook secret has incorrect base64 padding")
    try:
        key = base64.b64decode(padded, validate=True)
    except binascii.Error as exc:
        raise ValueError("webhook secret is not valid standard base64") from exc
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise ValueError(
            f"webhook secret must decode to {MIN_SECRET_BYTES}-{MAX_SECRET_BYTES} bytes, "
            f"got {len(key)}"
        )
    return key


def _signed_content(msg_id: str, timestamp: int, body: bytes) -> bytes:
    # Spec "Signature scheme": msg_id.timestamp.payload, payload as the raw bytes sent.
    return b"%s.%d.%s" % (msg_id.encode("utf-8"), timestamp, body)


def _digest(key: bytes, msg_id: str, timestamp: int, body: bytes) -> bytes:
    return hmac.new(key, _signed_content(msg_id, timestamp, body), hashlib.sha256).digest()


def _check_sign_inputs(secrets: Sequence[str], msg_id: str, timestamp: int) -> None:
    # A bare str is a Sequence[str] too; signing each character would be a silent disaster.
    if isinstance(secrets, str):
        raise TypeError("secrets must be a sequence of secrets, not a single str")
    if not secrets:
        raise ValueError("at least one secret is needed to sign")
    if not _MSG_ID.fullmatch(msg_id):
        raise ValueError("msg_id must be non-empty visible ASCII without '.'")
    # bool is an int subclass; a True timestamp is a bug, not second 1 of 1970.
    if isinstance(timestamp, bool) or not isinstance(timestamp, int) or timestamp < 0:
        raise ValueError("timestamp must be a non-negative integer of Unix seconds")


def sign(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """Return the ``webhook-signature`` header value for one message.

    One ``v1,<base64>`` entry per secret, space-delimited and in the given order (spec
    "Signature scheme", rotation: sign with both the old and the new secret for a grace
    period, so receivers holding either one keep verifying).

    Raises:
        TypeError: ``secrets`` is a single ``str`` instead of a sequence.
        ValueError: no secret, an invalid secret, an id the spec forbids (contains ``.``)
            or that is not visible ASCII, or a timestamp that is not a non-negative int.
    """
    _check_sign_inputs(secrets, msg_id, timestamp)
    entries = []
    for secret in secrets:
        digest = _digest(parse_secret(secret), msg_id, timestamp, body)
        entries.append(f"{_VERSION},{base64.b64encode(digest).decode('ascii')}")
    return " ".join(entries)


def build_headers(
    secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """Headers for one delivery attempt, with the spec's exact lowercase names.

    ``msg_id`` must stay the same across retries; ``timestamp`` is the attempt's time.
    """
    return {
        HEADER_ID: msg_id,
        HEADER_TIMESTAMP: str(timestamp),
        HEADER_SIGNATURE: sign(secrets, msg_id, timestamp, body),
        "content-type": "application/json",
    }


def _header(headers: Mapping[str, str], name: str) -> str:
    """Case-insensitive lookup (HTTP header names are case-insensitive, RFC 9110 §5.1)."""
    values = {value for key, value in headers.items() if key.lower() == name}
    if not values:
        raise SignatureError("missing_header", f"missing {name} header")
    if len(values) > 1:
        # Two spellings with different values: which one was signed is unknowable.
        raise SignatureError("invalid_header", f"conflicting {name} headers")
    value = values.pop()
    if not value:
        raise SignatureError("missing_header", f"empty {name} header")
    return value


def _decode_signature(encoded: str) -> bytes | None:
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return None


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: int,
    tolerance: timedelta = DEFAULT_TOLERANCE,
) -> None:
    """Check that ``body`` with ``headers`` was signed with ``secret`` recently enough.

    ``now`` is the receiver's clock in Unix seconds (injected: DESIGN invariant 6). A
    timestamp exactly ``tolerance`` away still passes, as in the reference library. Only
    ``v1`` entries are considered; other versions (``v1a`` ed25519, future ones) and
    malformed entries are skipped, so one bad entry cannot hide a good one.

    Raises:
        SignatureError: a header is missing or empty (``missing_header``), repeated with
            different values (``invalid_header``);
            the timestamp is not an integer, too old or too new; or no entry matches.
        ValueError: ``secret`` itself is invalid (a configuration error, not a bad request).
    """
    if tolerance < timedelta(0):
        raise ValueError("tolerance must not be negative")
    key = parse_secret(secret)
    msg_id = _header(headers, HEADER_ID)
    timestamp_text = _header(headers, HEADER_TIMESTAMP)
    signature_header = _header(headers, HEADER_SIGNATURE)

    # The spec says "integer unix timestamp"; refuse floats, signs and non-ASCII digits
    # (str.isdigit accepts "²"), and cap the length before int() does any work.
    if not (timestamp_text.isascii() and timestamp_text.isdigit()) or len(timestamp_text) > 15:
        raise SignatureError("invalid_timestamp", "webhook-timestamp is not integer seconds")
    timestamp = int(timestamp_text)
    window = tolerance.total_seconds()
    if timestamp < now - window:
        raise SignatureError("timestamp_too_old", "message timestamp too old")
    if timestamp > now + window:
        raise SignatureError("timestamp_too_new", "message timestamp too new")

    expected = _digest(key, msg_id, timestamp, body)
    matched = False
    for entry in signature_header.split():
        version, sep, encoded = entry.partition(",")
        if not sep or version != _VERSION:
            continue
        candidate = _decode_signature(encoded)
        # compare_digest runs in time independent of where the bytes differ (spec:
        # "use a constant time comparison function"); keep scanning after a match so the
        # time does not reveal which entry matched either.
        if candidate is not None and hmac.compare_digest(expected, candidate):
            matched = True
    if not matched:
        raise SignatureError("no_matching_signature", "no matching signature found")
