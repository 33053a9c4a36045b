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


@pytest.mark.parametrize(
    ("argv", "env", "expected"),
    [
        (["worker", "--processes", "3"], None, 3),
        (["worker"], "4", 4),
        (["worker", "--processes", "2"], "4", 2),  # the option wins over the setting
    ],
)
def test_worker_processes_come_from_the_option_or_the_setting(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    env: str | None,
    expected: int,
) -> None:
    import showup.cli

    monkeypatch.setenv("SHOWUP_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SHOWUP_MASTER_KEY", TEST_MASTER_KEY)
    if env is not None:
        monkeypatch.setenv("SHOWUP_WORKER_PROCESSES", env)
    calls: list[int] = []

    def run_workers(settings: object, processes: int) -> int:
        calls.append(processes)
        return 0

    monkeypatch.setattr(showup.cli, "run_workers", run_workers)
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 0
    assert calls == [expected]


def test_worker_processes_must_be_positive(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["worker", "--processes", "0"])
    assert exited.value.code == 2
    assert "must be 1 or more" in capsys.readouterr().err
