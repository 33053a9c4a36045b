"""Stand-ins for worker processes in ``tests/test_worker_processes.py``: spawned by
``showup.cli.run_workers`` as its ``target``, so importable by name and cheap to start.

Each writes ``<dir>/<worker id>.ready`` once its signal handling is in place, where
``<dir>`` is ``SHOWUP_TEST_CHILD_DIR``, and waits.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from showup.cli import watch_parent


def _ready(worker_id: str) -> Path:
    folder = Path(os.environ["SHOWUP_TEST_CHILD_DIR"])
    (folder / f"{worker_id}.ready").write_text(str(os.getpid()))
    return folder


def _idle(seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.05)


def stops_on_sigterm(worker_id: str, sync_concurrency: int) -> None:
    """Like a worker: SIGTERM stops it cleanly (exit 0), noting ``<id>.stopped``; notes
    its share of the sync concurrency in ``<id>.share``."""

    def stop(*_: Any) -> None:
        (folder / f"{worker_id}.stopped").write_text("")
        sys.exit(0)

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, stop)
    watch_parent()  # as a worker does
    folder = Path(os.environ["SHOWUP_TEST_CHILD_DIR"])
    (folder / f"{worker_id}.share").write_text(str(sync_concurrency))
    folder = _ready(worker_id)
    _idle()


def first_crashes(worker_id: str, sync_concurrency: int) -> None:
    """Worker 1 exits with status 3 once worker 2 is ready; the others as above."""
    if not worker_id.endswith("-1"):
        stops_on_sigterm(worker_id, sync_concurrency)
        return
    folder = _ready(worker_id)
    deadline = time.monotonic() + 60
    while not any(folder.glob("*-2.ready")) and time.monotonic() < deadline:
        time.sleep(0.01)
    sys.exit(3)


def ignores_sigterm(worker_id: str, sync_concurrency: int) -> None:
    """A worker that does not stop: only SIGKILL ends it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _ready(worker_id)
    _idle()


def run_workers_with_stand_ins(data_dir: str) -> None:
    """``run_workers`` with :func:`stops_on_sigterm` workers, as a parent process to kill."""
    from showup.cli import run_workers
    from showup.config import Settings

    settings = Settings(data_dir=Path(data_dir), worker_id="tw")
    sys.exit(run_workers(settings, 2, target=stops_on_sigterm))


if __name__ == "__main__":
    run_workers_with_stand_ins(sys.argv[1])
