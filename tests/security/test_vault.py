from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from showup.security.vault import Vault, VaultError

KEY = b"m" * 32


@given(st.text(max_size=300), st.uuids())
def test_round_trip(plain: str, tenant: object) -> None:
    v = Vault(KEY)
    blob = v.seal(str(tenant), plain)
    assert v.open(str(tenant), blob) == plain
    if len(plain.encode()) >= 8:  # shorter strings may occur in random bytes by chance
        assert plain.encode() not in blob


def test_other_tenant_or_key_cannot_open() -> None:
    v = Vault(KEY)
    blob = v.seal("tenant-a", "secret")
    with pytest.raises(VaultError):
        v.open("tenant-b", blob)
    with pytest.raises(VaultError):
        Vault(b"n" * 32).open("tenant-a", blob)


def test_tampering_is_detected() -> None:
    v = Vault(KEY)
    blob = bytearray(v.seal("t", "secret"))
    blob[-1] ^= 1
    with pytest.raises(VaultError):
        v.open("t", bytes(blob))
    with pytest.raises(VaultError):
        v.open("t", b"\x02" + bytes(blob[1:]))


def test_nonces_differ() -> None:
    v = Vault(KEY)
    assert v.seal("t", "same") != v.seal("t", "same")
