"""API keys: shown once, stored as SHA-256 hashes.

Keys carry 256 bits of randomness, so a fast hash is enough: there is nothing to
brute-force, and lookups stay one indexed query.
"""

from __future__ import annotations

import hashlib
import secrets

KEY_PREFIX = "sk_"


def generate_api_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def display_prefix(key: str) -> str:
    return key[:10]
