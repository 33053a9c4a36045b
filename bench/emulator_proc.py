"""The Google emulator in its own process for benchmarks: seed, warm, serve on loopback.

``python -m bench.emulator_proc --users N --events M --seed S --handshake FILE``

Seeds the world in-process (over HTTP it would take longer than the benchmark), renders
every calendar once so that no measured run pays the emulator's first-render cost, binds
127.0.0.1 on a free port and writes the handshake JSON (base URL, OAuth client, refresh
tokens) to FILE atomically before serving. It stops on SIGTERM/SIGINT, when its parent
dies, or after ``--max-seconds``, whichever comes first.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import socket
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import uvicorn

from bench.seed import seed_world, window_listing
from showup.clock import SystemClock
from showup.emulator import World, create_app
from showup.emulator.google.listing import EventLister


def _log(msg: str) -> None:
    print(f"[emulator] {msg}", file=sys.stderr, flush=True)


def warm(world: World, emails: list[str], now: datetime) -> None:
    """List every calendar once over the sync window: fills the rendering caches."""
    lister = EventLister(world)
    # A day of slack: the syncs' windows start later than now.
    query = window_listing(now, max_results=2500, slack=timedelta(days=1))
    for email in emails:
        lister.list_events(world.calendar(email), query)


def _watch(server: uvicorn.Server, parent: int, deadline: float) -> None:
    while not server.should_exit:
        if (parent and os.getppid() != parent) or time.monotonic() > deadline:
            _log("parent gone or time limit reached; stopping")
            server.should_exit = True
            return
        time.sleep(0.5)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.emulator_proc")
    p.add_argument("--users", type=int, required=True)
    p.add_argument("--events", type=int, required=True)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--handshake", type=Path, required=True)
    p.add_argument("--max-seconds", type=float, default=4 * 3600)
    p.add_argument(
        "--parent-pid", type=int, default=None, help="stop when this process is gone (0: never)"
    )
    args = p.parse_args(argv)
    parent = os.getppid() if args.parent_pid is None else args.parent_pid
    deadline = time.monotonic() + args.max_seconds

    world = World(SystemClock())
    now = datetime.now(UTC)
    t0 = time.perf_counter()
    client_id, client_secret, grants = seed_world(
        world, users=args.users, events=args.events, seed=args.seed, now=now
    )
    seeded = time.perf_counter() - t0
    warm(world, [email for email, _ in grants], now)
    warmed = time.perf_counter() - t0 - seeded
    # The seeded world is immortal: keep the cyclic GC from walking it on every full pass.
    gc.collect()
    gc.freeze()
    _log(f"seeded {args.users}x{args.events} in {seeded:.1f} s, warmed in {warmed:.1f} s")

    # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY on accepted connections only when
    # the listening socket says it is TCP, and without it every keep-alive response (headers
    # and body written separately) waits ~40 ms for the client's delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(world),
        log_level="warning",
        access_log=False,
        lifespan="off",
        # Google's front ends keep idle connections open for minutes. uvicorn's default (5 s)
        # equals httpx's keep-alive expiry, so under load a request could go out on a
        # connection the server was just closing (ReadError, a retried sync).
        timeout_keep_alive=120,
    )
    server = uvicorn.Server(config)
    threading.Thread(target=_watch, args=(server, parent, deadline), daemon=True).start()

    handshake = {
        "base_url": f"http://127.0.0.1:{port}",
        "client_id": client_id,
        "client_secret": client_secret,
        "users": grants,
        "events_per_user": args.events,
        "seed": args.seed,
        "seed_seconds": round(seeded, 2),
        "warm_seconds": round(warmed, 2),
        "pid": os.getpid(),
    }
    tmp = args.handshake.with_suffix(".tmp")
    tmp.write_text(json.dumps(handshake))
    tmp.replace(args.handshake)  # the parent sees all of it or nothing
    server.run(sockets=[sock])
    sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
