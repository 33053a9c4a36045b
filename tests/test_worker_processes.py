"""``showup worker --processes N``: N worker processes on one database.

End to end: two real worker processes sync calendars from the emulator (served over HTTP
on loopback, as they are separate processes) into one SQLite file, at the same time, each
calendar once. The supervision rules (a clean stop on SIGTERM, a crashed worker stops the
command with status 1, a second signal kills) are checked with stand-in processes
(``tests/worker_children.py``), which start in a fraction of the time a worker takes.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from sqlalchemy import update

from showup.calendars.service import NewCalendar, create_calendar
from showup.cli import run_workers
from showup.clock import SystemClock
from showup.config import Settings, sync_concurrency_share
from showup.db.migrate import upgrade
from showup.db.models import Calendar
from showup.emulator import World, create_app
from showup.emulator.world import AuthError
from showup.runtime import build_runtime
from showup.tenants import create_tenant
from tests import worker_children
from tests.conftest import TEST_MASTER_KEY, make_settings
from tests.sync.helpers import gtime

CALENDARS = 8
EVENTS = 3
# Per provider for the command: each of its 2 processes gets half (2), so the 4 lists in
# flight that the gate waits for need both processes at once.
CONCURRENCY = 4
DEADLINE = 60.0  # seconds, for anything the processes must do


class ListGate:
    """ASGI wrapper of the emulator: counts event list requests per user, and holds them
    until ``need`` are in flight at once (or ``hold`` seconds passed), so that reaching
    ``need`` shows that both processes were syncing at the same time."""

    def __init__(self, app: Any, world: World, need: int, hold: float = 30.0) -> None:
        self.app, self.world, self.need, self.hold = app, world, need, hold
        self.lists: Counter[str] = Counter()
        self.in_flight = self.most_in_flight = 0
        self._open: asyncio.Event | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or scope["method"] != "GET" or not path.endswith("/events"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        token = headers.get(b"authorization", b"").decode().removeprefix("Bearer ")
        with suppress(AuthError):
            self.lists[self.world.authenticate(token).grant.email] += 1
        if self._open is None:
            self._open = asyncio.Event()
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        if self.in_flight >= self.need:
            self._open.set()
        try:
            try:
                await asyncio.wait_for(self._open.wait(), self.hold)
            except TimeoutError:
                self._open.set()  # shown by most_in_flight; let the test end
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """``app`` on 127.0.0.1 (a free port) in a thread; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + DEADLINE
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "emulator did not start"
            time.sleep(0.01)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def _seed(world: World, now: datetime) -> tuple[str, str, list[tuple[str, str]]]:
    client_id, client_secret = world.add_oauth_client()
    grants = []
    for i in range(CALENDARS):
        email = f"user{i}@example.com"
        world.add_user(email)
        for j in range(EVENTS):
            start = now + timedelta(days=1 + j, hours=i)
            world.create_event(
                email,
                {
                    "summary": f"meeting {i}.{j}",
                    "start": gtime(start),
                    "end": gtime(start + timedelta(minutes=30)),
                },
            )
        grants.append((email, world.grant(client_id, email)))
    return client_id, client_secret, grants


async def _connect_calendars(settings: Settings, client: tuple[str, str, list[Any]]) -> None:
    client_id, client_secret, grants = client
    rt = build_runtime(settings)
    try:
        await upgrade(rt.engine)
        async with rt.sessions() as session:
            tenant = await create_tenant(session, rt.clock, "Acme")
            for email, refresh_token in grants:
                await create_calendar(
                    session,
                    rt.clock,
                    rt.vault,
                    tenant.tenant_id,
                    NewCalendar(
                        platform="google_calendar",
                        oauth_client_id=client_id,
                        oauth_client_secret=client_secret,
                        oauth_refresh_token=refresh_token,
                        external_user_id=email,
                    ),
                )
            await session.execute(update(Calendar).values(next_sync_at=rt.clock.now()))
            await session.commit()
    finally:
        await rt.aclose()


def _query(db: Path, sql: str) -> list[Any]:
    with sqlite3.connect(db, timeout=DEADLINE) as conn:
        return conn.execute(sql).fetchall()


async def test_two_worker_processes_sync_every_calendar_once(tmp_path: Path) -> None:
    world = World(SystemClock())
    client = _seed(world, datetime.now(UTC))
    gate = ListGate(create_app(world), world, need=CONCURRENCY)
    with serve(gate) as base_url:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHOWUP_")}
        env |= {
            "SHOWUP_DATA_DIR": str(tmp_path),
            "SHOWUP_MASTER_KEY": TEST_MASTER_KEY,
            "SHOWUP_GOOGLE_API_URL": f"{base_url}/calendar/v3",
            "SHOWUP_GOOGLE_TOKEN_URL": f"{base_url}/token",
            "SHOWUP_SYNC_CONCURRENCY_PER_PROVIDER": str(CONCURRENCY),
            "SHOWUP_WORKER_IDLE_POLL": "0.2",
            "SHOWUP_WORKER_ID": "tw",
        }
        settings = make_settings(
            tmp_path,
            google_api_url=env["SHOWUP_GOOGLE_API_URL"],
            google_token_url=env["SHOWUP_GOOGLE_TOKEN_URL"],
        )
        await _connect_calendars(settings, client)
        log = tmp_path / "worker.log"
        with log.open("wb") as out:
            proc = await asyncio.create_subprocess_exec(
                *(sys.executable, "-m", "showup", "worker", "--processes", "2"),
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            db = tmp_path / "showup.db"
            deadline = time.monotonic() + DEADLINE
            while _query(db, "SELECT count(*) FROM calendars WHERE sync_cursor IS NULL")[0][0]:
                assert proc.returncode is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                await asyncio.sleep(0.1)
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), DEADLINE) == 0, log.read_text()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    output = log.read_text()
    for n in (1, 2):
        assert f"worker process {n} started" in output
        assert f"worker tw-{n} started" in output
        assert f"worker tw-{n} stopped" in output
    # Both processes had syncs in flight at once (each can have CONCURRENCY / 2).
    assert gate.most_in_flight == CONCURRENCY, output
    # Every calendar listed once (its first sync), every event stored once.
    assert gate.lists == Counter({email: 1 for email, _ in client[2]})
    assert _query(
        db, "SELECT count(*), count(DISTINCT calendar_id || platform_id) FROM events"
    ) == [(CALENDARS * EVENTS, CALENDARS * EVENTS)]
    assert _query(db, "SELECT status, count(*) FROM calendars GROUP BY status") == [
        ("connected", CALENDARS)
    ]
    # No worker process holds a lease any more.
    assert _query(db, "SELECT count(*) FROM calendars WHERE lease_owner IS NOT NULL") == [(0,)]


# ---- supervision, with stand-in processes --------------------------------------------------


@pytest.fixture
def children(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "children"
    folder.mkdir()
    monkeypatch.setenv("SHOWUP_TEST_CHILD_DIR", str(folder))
    return folder


def _signal_when_ready(folder: Path, count: int, signals: list[signal.Signals]) -> None:
    """From a thread: once ``count`` children are ready, signal this process."""

    def run() -> None:
        deadline = time.monotonic() + DEADLINE
        while len(list(folder.glob("*.ready"))) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        for sig in signals:
            os.kill(os.getpid(), sig)
            time.sleep(0.2)

    threading.Thread(target=run, daemon=True).start()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _pids(folder: Path) -> list[int]:
    return [int(p.read_text()) for p in sorted(folder.glob("*.ready"))]


def _run(
    tmp_path: Path,
    target: Callable[[str, int], None],
    processes: int = 2,
    **settings: Any,
) -> int:
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    config = make_settings(tmp_path, worker_id="tw", **settings)
    status = run_workers(config, processes, target=target)
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before
    return status


def test_sigterm_stops_every_worker_process_cleanly(tmp_path: Path, children: Path) -> None:
    _signal_when_ready(children, 3, [signal.SIGTERM])
    assert _run(tmp_path, worker_children.stops_on_sigterm, 3, sync_concurrency_per_provider=8) == 0
    # The per-provider sync concurrency bounds the command: split among its processes.
    shares = {p.stem: int(p.read_text()) for p in children.glob("*.share")}
    assert shares == {"tw-1": 3, "tw-2": 3, "tw-3": 3}
    assert sorted(p.name for p in children.glob("*.stopped")) == [
        "tw-1.stopped",
        "tw-2.stopped",
        "tw-3.stopped",
    ]
    assert not any(_alive(pid) for pid in _pids(children))


def test_the_sync_concurrency_is_shared_not_multiplied() -> None:
    assert [sync_concurrency_share(8, n) for n in (1, 2, 3, 4, 8, 9)] == [8, 4, 3, 2, 1, 1]
    assert sync_concurrency_share(1, 4) == 1


def test_a_crashed_worker_process_stops_the_others_and_the_command_fails(
    tmp_path: Path, children: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert _run(tmp_path, worker_children.first_crashes) == 1
    assert "worker process 1" in caplog.text and "exited with status 3" in caplog.text
    assert [p.name for p in children.glob("*.stopped")] == ["tw-2.stopped"]
    assert not any(_alive(pid) for pid in _pids(children))


def test_a_second_signal_kills_worker_processes_that_do_not_stop(
    tmp_path: Path, children: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _signal_when_ready(children, 2, [signal.SIGINT, signal.SIGTERM])
    assert _run(tmp_path, worker_children.ignores_sigterm) == 1
    assert "exited with signal 9 while stopping" in caplog.text
    assert not any(_alive(pid) for pid in _pids(children))


def test_worker_processes_stop_when_their_parent_is_killed(tmp_path: Path, children: Path) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-m", "tests.worker_children", str(tmp_path)],
        cwd=Path(__file__).resolve().parents[1],
    )
    try:
        deadline = time.monotonic() + DEADLINE
        while len(list(children.glob("*.ready"))) < 2:
            assert parent.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
    finally:
        parent.kill()
        parent.wait()
    pids = _pids(children)
    while any(_alive(pid) for pid in pids):
        assert time.monotonic() < deadline, "worker processes outlived their parent"
        time.sleep(0.01)
    assert sorted(p.name for p in children.glob("*.stopped")) == ["tw-1.stopped", "tw-2.stopped"]
