"""``showup demo | serve | worker | migrate | tenant | emulator``."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable
from multiprocessing.connection import wait
from typing import Any

from pydantic import ValidationError

from showup.config import ConfigError, Settings, sync_concurrency_share

log = logging.getLogger("showup")


def _settings(**overrides: Any) -> Settings:
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SystemExit(f"showup: invalid configuration:\n{exc}") from None


async def _migrate(settings: Settings) -> None:
    from showup.db.engine import engine_from_settings
    from showup.db.migrate import upgrade

    engine = engine_from_settings(settings)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


async def _tenant_create(settings: Settings, name: str) -> dict[str, str]:
    from showup.clock import SystemClock
    from showup.db.engine import engine_from_settings, make_sessionmaker
    from showup.db.migrate import upgrade
    from showup.tenants import create_tenant

    engine = engine_from_settings(settings)
    try:
        await upgrade(engine)
        async with make_sessionmaker(engine)() as session:
            created = await create_tenant(session, SystemClock(), name)
            await session.commit()
        return {"tenant_id": created.tenant_id, "api_key": created.api_key}
    finally:
        await engine.dispose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="showup", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run API, worker and emulator with seeded data")
    demo.add_argument("--port", type=int, default=8080)
    demo.add_argument(
        "--speed",
        type=float,
        default=None,
        help="how much faster than real time the demo's clock runs (default 20)",
    )
    demo.add_argument("--data-dir", default=None)

    serve = sub.add_parser("serve", help="run the HTTP API")
    serve.add_argument("--with-worker", action="store_true", help="also run the worker")
    worker = sub.add_parser("worker", help="run the worker")
    worker.add_argument(
        "--processes",
        type=_positive,
        default=None,
        help="worker processes to run (default: SHOWUP_WORKER_PROCESSES, 1)",
    )
    sub.add_parser("migrate", help="apply database migrations")

    tenant = sub.add_parser("tenant", help="manage tenants")
    tsub = tenant.add_subparsers(dest="tenant_command", required=True)
    tcreate = tsub.add_parser("create", help="create a tenant and print its API key")
    tcreate.add_argument("name")

    emu = sub.add_parser("emulator", help="run the provider emulator alone")
    emu.add_argument("--host", default="127.0.0.1")
    emu.add_argument("--port", type=int, default=8090)

    args = parser.parse_args(argv)
    try:
        _dispatch(args)
    except ConfigError as exc:
        raise SystemExit(f"showup: {exc}") from None
    except KeyboardInterrupt:
        pass


def _dispatch(args: argparse.Namespace) -> None:
    from showup.server import setup_logging

    if args.command == "emulator":
        from showup.emulator import run_standalone

        setup_logging("INFO")
        run_standalone(args.host, args.port)
        return
    if args.command == "demo":
        from showup.demo import run_demo

        run_demo(port=args.port, speed=args.speed, data_dir=args.data_dir)
        return
    settings = _settings()
    setup_logging(settings.log_level)
    if args.command == "migrate":
        asyncio.run(_migrate(settings))
        print("migrations applied")
    elif args.command == "tenant":
        print(json.dumps(asyncio.run(_tenant_create(settings, args.name))))
    elif args.command == "serve":
        from showup.server import serve

        asyncio.run(serve(settings, with_worker=args.with_worker))
    elif args.command == "worker":
        processes = args.processes or settings.worker_processes
        if processes == 1:
            from showup.server import worker_only

            asyncio.run(worker_only(settings))
        else:
            sys.exit(run_workers(settings, processes))
    else:  # pragma: no cover - argparse enforces the choices
        sys.exit(2)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def _worker_process(worker_id: str, sync_concurrency: int) -> None:
    """One worker process of ``run_workers`` (spawned): the normal worker loop, with its
    share of the per-provider sync concurrency."""
    from showup.server import setup_logging, worker_only

    # The parent stops its workers with SIGTERM (a terminal's Ctrl-C reaches them too,
    # once the worker loop handles it); until the loop does, SIGTERM exits at once.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    watch_parent()
    settings = _settings(worker_id=worker_id, sync_concurrency_per_provider=sync_concurrency)
    setup_logging(settings.log_level)
    asyncio.run(worker_only(settings))


def watch_parent() -> None:
    """In a spawned worker process: SIGTERM this process (a clean stop) when its parent
    is gone, so that a parent killed without stopping its workers leaves none behind."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch(sentinel: int) -> None:
        wait([sentinel])
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(
        target=watch, args=(parent.sentinel,), name="showup-parent-watch", daemon=True
    ).start()


def _exit_status(code: int | None) -> str:
    return f"signal {-code}" if code is not None and code < 0 else f"status {code}"


def run_workers(
    settings: Settings, processes: int, *, target: Callable[[str, int], None] = _worker_process
) -> int:
    """``showup worker --processes N``: N worker processes until stopped; the exit status.

    Migrations run once, here, before the workers start. Each worker is a spawned process
    running the normal worker loop, with the lease owner name ``<SHOWUP_WORKER_ID>-<i>``
    (leases keep two of them off the same row; on SQLite their transactions take turns
    on the writer lock, ``db/sqlite_adapter.py``). SIGINT or SIGTERM stops them all
    cleanly (SIGTERM to each; they finish their running jobs); a second one kills them.
    A worker that exits while the command is not stopping is reported, the others are
    stopped, and the command exits with status 1, for a supervisor (systemd, Docker)
    to restart it: a worker is not restarted here.

    ``SHOWUP_SYNC_CONCURRENCY_PER_PROVIDER`` bounds the command as a whole: each process
    gets its share (:func:`~showup.config.sync_concurrency_share`), so that running more
    processes does not put more concurrent load on a provider.

    ``target`` is what each process runs, given its worker id and its share of the sync
    concurrency (tests replace it).
    """
    share = sync_concurrency_share(settings.sync_concurrency_per_provider, processes)
    asyncio.run(_migrate(settings))
    context = multiprocessing.get_context("spawn")
    wake_r, wake_w = socket.socketpair()
    wake_r.setblocking(False)
    wake_w.setblocking(False)
    handled = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in handled}
    previous_fd = signal.set_wakeup_fd(wake_w.fileno())
    workers: dict[int, tuple[int, Any]] = {}  # sentinel -> (number, process)
    stopping = failed = False

    def stop(kill: bool = False) -> None:
        for _, process in workers.values():
            if process.exitcode is not None:
                continue
            if kill:
                process.kill()
            else:
                process.terminate()

    try:
        for number in range(1, processes + 1):
            process = context.Process(
                target=target,
                args=(f"{settings.worker_id}-{number}", share),
                name=f"showup-worker-{number}",
            )
            process.start()
            workers[process.sentinel] = (number, process)
            log.info("worker process %d started (pid %s)", number, process.pid)
        while workers:
            for ready in wait([wake_r, *workers]):
                if ready is wake_r:
                    try:
                        signals = wake_r.recv(64)  # one byte per signal (its number)
                    except BlockingIOError:
                        continue
                    for _ in signals:
                        if stopping:
                            log.warning("killing %d worker processes", len(workers))
                        else:
                            log.info("stopping %d worker processes", len(workers))
                        stop(kill=stopping)
                        stopping = True
                    continue
                assert isinstance(ready, int)
                number, process = workers.pop(ready)
                process.join()
                if not stopping:
                    log.error(
                        "worker process %d (pid %s) exited with %s; stopping the others",
                        number,
                        process.pid,
                        _exit_status(process.exitcode),
                    )
                    failed = stopping = True
                    stop()
                elif process.exitcode != 0:
                    log.error(
                        "worker process %d (pid %s) exited with %s while stopping",
                        number,
                        process.pid,
                        _exit_status(process.exitcode),
                    )
                    failed = True
    finally:
        stop(kill=True)  # none left, unless this raised
        for _, process in workers.values():
            process.join(5)
        signal.set_wakeup_fd(previous_fd)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        wake_r.close()
        wake_w.close()
    return 1 if failed else 0
