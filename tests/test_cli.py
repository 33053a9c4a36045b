from __future__ import annotations

import json
from pathlib import Path

import pytest

from showup.cli import main
from tests.conftest import TEST_MASTER_KEY


def test_tenant_create_prints_id_and_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SHOWUP_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SHOWUP_MASTER_KEY", TEST_MASTER_KEY)
    main(["tenant", "create", "Acme"])
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"tenant_id", "api_key"}
    assert out["api_key"].startswith("sk_")
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("showup.db*"))
    assert b"api_keys" in raw or len(raw) > 0
    assert out["api_key"].encode() not in raw  # stored hashed only
