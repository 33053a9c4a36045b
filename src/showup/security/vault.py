"""Secrets at rest (DESIGN invariant 7).

Each tenant's secrets are sealed with AES-256-GCM under a key derived from the master key
with HKDF-SHA256 (RFC 5869), the tenant id bound in as associated data, so a ciphertext
copied to another tenant's row does not open. Layout: ``0x01 | nonce(12) | ciphertext+tag``.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_VERSION = b"\x01"
_NONCE_LEN = 12


class VaultError(Exception):
    """A ciphertext could not be opened (wrong key, wrong tenant, or tampered)."""


class Vault:
    def __init__(self, master_key: bytes) -> None:
        if len(master_key) != 32:
            raise ValueError("master key must be 32 bytes")
        self._master = master_key
        self._keys: dict[str, AESGCM] = {}

    def _aead(self, tenant_id: str) -> AESGCM:
        aead = self._keys.get(tenant_id)
        if aead is None:
            key = HKDF(
                algorithm=hashes.SHA256(),
                length=32,
                salt=b"showup-vault-v1",
                info=b"tenant:" + tenant_id.encode(),
            ).derive(self._master)
            aead = AESGCM(key)
            self._keys[tenant_id] = aead
        return aead

    def seal(self, tenant_id: str, plaintext: str) -> bytes:
        nonce = os.urandom(_NONCE_LEN)
        ct = self._aead(tenant_id).encrypt(nonce, plaintext.encode(), tenant_id.encode())
        return _VERSION + nonce + ct

    def open(self, tenant_id: str, blob: bytes) -> str:
        if len(blob) < 1 + _NONCE_LEN + 16 or blob[:1] != _VERSION:
            raise VaultError("not a vault ciphertext")
        nonce, ct = blob[1 : 1 + _NONCE_LEN], blob[1 + _NONCE_LEN :]
        try:
            return self._aead(tenant_id).decrypt(nonce, ct, tenant_id.encode()).decode()
        except InvalidTag as exc:
            raise VaultError("ciphertext does not open under this tenant's key") from exc
