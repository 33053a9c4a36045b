"""Channel ids and channel tokens (PROTOCOLS §1.5: id at most 64 chars, token at most 256).

A channel id names the calendar it watches plus 64 random bits: ``su-<calendar hex>-<hex>``
(52 chars). Its token is an HMAC of the id under a key derived from the master key, so a
notification from a channel we opened but lost track of (a crash between Google accepting
the watch and our commit) can still be proven ours and stopped: DESIGN invariant 8 (check
every outside input) without trusting the id alone. The token is also stored sealed on
the channel row, and known channels are checked against that stored copy.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import uuid
from functools import lru_cache

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_CHANNEL_ID = re.compile(r"su-([0-9a-f]{32})-[0-9a-f]{16}")


def new_channel_id(calendar_id: str) -> str:
    """A fresh id for a channel on ``calendar_id`` (a UUID string). Never reused."""
    return f"su-{uuid.UUID(calendar_id).hex}-{secrets.token_hex(8)}"


def calendar_of_channel_id(channel_id: str) -> str | None:
    """The calendar id a channel id of ours names, or None if it is not one of ours."""
    match = _CHANNEL_ID.fullmatch(channel_id)
    return str(uuid.UUID(match.group(1))) if match else None


@lru_cache(maxsize=4)
def _token_key(master_key: bytes) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=b"showup-push-v1", info=b"channel-token"
    ).derive(master_key)


def channel_token(master_key: bytes, channel_id: str) -> str:
    """The channel's secret token: base64url HMAC-SHA256 of its id (43 chars)."""
    mac = hmac.new(_token_key(master_key), channel_id.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def same_token(given: str | None, expected: str) -> bool:
    """Constant-time comparison; a missing token never matches."""
    if given is None:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())
