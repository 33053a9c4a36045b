"""The emulator for the push-latency benchmark, in its own process, on the real clock.

``python -m bench.push_emulator --google G --microsoft M --meetings K --handshake FILE
--stats FILE``

Seeds one user per calendar (Google users granted to a Google OAuth client, Microsoft
users to a Microsoft one), each with ``K`` upcoming 30-minute meetings that have their own
Meet link and no other world user as attendee (so each meeting is on one calendar only),
binds 127.0.0.1 on a free port and writes the handshake JSON (base URL, clients, users
and their refresh tokens) atomically before serving.

The emulator queues Google push pings and Graph notifications in ``world.outbox`` and
sends nothing until someone calls ``world.outbox.deliver`` (docs/emulator.md). Real
providers send at once, so this process runs a *pump* next to the server, in the same
event loop: whenever something is pending it starts a ``deliver`` call (the emulator's own
delivery, unchanged), up to ``--pump-concurrency`` (8) at once, else it sleeps
``--pump-interval`` (2 ms). The pump's HTTP client records the start and answer time of
every notification POST; they are written with the pump's counters to ``--stats`` when
the server stops.

It stops on SIGTERM/SIGINT, when its parent dies, or after ``--max-seconds``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from showup.clock import SystemClock
from showup.emulator import World, create_app

DOMAIN = "push-bench.example"
_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def _log(msg: str) -> None:
    print(f"[push-emulator] {msg}", file=sys.stderr, flush=True)


def user_email(i: int) -> str:
    return f"user{i:05d}@{DOMAIN}"


def meet_link(n: int) -> str:
    """A distinct Meet link per meeting (``abc-defg-hij``)."""
    chars = []
    for _ in range(10):
        n, r = divmod(n, 26)
        chars.append(_LETTERS[r])
    s = "".join(chars)
    return f"https://meet.google.com/{s[:3]}-{s[3:7]}-{s[7:]}"


def meeting_start(user: int, k: int, now: datetime) -> datetime:
    """Meeting ``k`` of ``user``: whole hours 1 to 6 days ahead, never within the benchmark
    (no bot becomes due while it runs)."""
    base = now.replace(minute=0, second=0, microsecond=0) + timedelta(days=1 + k)
    return base + timedelta(hours=(user * 7 + k * 3) % 48, minutes=15 * (user % 4))


def meeting_item(user: int, k: int, n: int, start: datetime) -> dict[str, Any]:
    end = start + timedelta(minutes=30)
    return {
        "summary": f"Customer call {user}-{k}",
        "description": "Agenda:\n1. Status\n2. Open questions\n3. Next steps",
        "start": {"dateTime": start.isoformat()},
        "end": {"dateTime": end.isoformat()},
        "hangoutLink": meet_link(n),
        "attendees": [
            {"email": user_email(user), "responseStatus": "accepted"},
            {"email": f"guest{n}@customer.example", "responseStatus": "accepted"},
        ],
    }


def seed(world: World, google: int, microsoft: int, meetings: int) -> dict[str, Any]:
    """Clients, users (Google first, then Microsoft), their meetings and grants."""
    now = datetime.now(UTC)
    g_id, g_secret = world.add_oauth_client()
    m_id, m_secret = world.add_oauth_client(provider="microsoft")
    users: list[dict[str, Any]] = []
    n = 0
    for i in range(google + microsoft):
        platform = "google_calendar" if i < google else "microsoft_outlook"
        email = user_email(i)
        world.add_user(email, name=f"User {i}", time_zone="UTC")
        items = []
        for k in range(meetings):
            items.append(meeting_item(i, k, n, meeting_start(i, k, now)))
            n += 1
        world.create_events(email, items)
        client = g_id if platform == "google_calendar" else m_id
        users.append(
            {"email": email, "platform": platform, "refresh_token": world.grant(client, email)}
        )
    return {
        "google_client": [g_id, g_secret],
        "microsoft_client": [m_id, m_secret],
        "users": users,
    }


class PumpLog:
    """Every notification POST the pump makes: when it left, when it was answered."""

    def __init__(self) -> None:
        # (sent at, answered at or None, status or None, label, key)
        self.posts: list[list[Any]] = []
        self.rounds = 0
        self.busy_s = 0.0

    async def on_request(self, request: httpx.Request) -> None:
        request.extensions["bench_sent"] = time.time()

    async def on_response(self, response: httpx.Response) -> None:
        req = response.request
        key = req.headers.get("x-goog-channel-id")
        label = "google-push"
        if key is None:
            label = "graph"
            with contextlib.suppress(ValueError, KeyError, TypeError, IndexError):
                body = json.loads(req.content or b"{}")
                key = ",".join(sorted({str(v["subscriptionId"]) for v in body["value"]}))
        self.posts.append(
            [req.extensions.get("bench_sent"), time.time(), response.status_code, label, key]
        )


async def _round(world: World, client: httpx.AsyncClient, log: PumpLog) -> None:
    t0 = time.perf_counter()
    await world.outbox.deliver(client)
    log.rounds += 1
    log.busy_s += time.perf_counter() - t0


async def pump(
    world: World, log: PumpLog, interval: float, concurrency: int, stop: asyncio.Event
) -> None:
    """Deliver the outbox as soon as something is in it, until ``stop``.

    Each ``deliver`` call takes what is pending at that moment and POSTs it in turn; a new
    call starts whenever more is pending, up to ``concurrency`` at once. Providers do not
    wait for one calendar's notification to be answered before sending another's.
    """
    hooks: dict[str, list[Callable[..., Any]]] = {
        "request": [log.on_request],
        "response": [log.on_response],
    }
    rounds: set[asyncio.Task[None]] = set()
    async with httpx.AsyncClient(
        timeout=15.0,
        trust_env=False,
        event_hooks=hooks,
        limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
    ) as client:
        while not stop.is_set():
            if world.outbox.pending and len(rounds) < concurrency:
                task = asyncio.create_task(_round(world, client, log))
                rounds.add(task)
                task.add_done_callback(rounds.discard)
                await asyncio.sleep(0)  # it takes the pending messages before its first await
            else:
                await asyncio.sleep(interval)
        if rounds:
            await asyncio.wait(rounds, timeout=30)


def _watch(server: uvicorn.Server, parent: int, deadline: float) -> None:
    while not server.should_exit:
        if (parent and os.getppid() != parent) or time.monotonic() > deadline:
            _log("parent gone or time limit reached; stopping")
            server.should_exit = True
            return
        time.sleep(0.5)


async def serve(args: argparse.Namespace, world: World, handshake: dict[str, Any]) -> PumpLog:
    # IPPROTO_TCP: asyncio sets TCP_NODELAY on accepted sockets only when the listener says
    # it is TCP; without it a keep-alive answer can wait ~40 ms for a delayed ACK.
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
        timeout_keep_alive=120,
    )
    server = uvicorn.Server(config)
    deadline = time.monotonic() + args.max_seconds
    parent = os.getppid() if args.parent_pid is None else args.parent_pid
    threading.Thread(target=_watch, args=(server, parent, deadline), daemon=True).start()

    log = PumpLog()
    stop = asyncio.Event()
    pumping = asyncio.create_task(pump(world, log, args.pump_interval, args.pump_concurrency, stop))
    handshake = {**handshake, "base_url": f"http://127.0.0.1:{port}", "pid": os.getpid()}
    tmp = args.handshake.with_suffix(".tmp")
    tmp.write_text(json.dumps(handshake))
    tmp.replace(args.handshake)  # the parent sees all of it or nothing
    try:
        await server.serve(sockets=[sock])
    finally:
        stop.set()
        await asyncio.wait_for(pumping, 30)
        sock.close()
    return log


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.push_emulator")
    p.add_argument("--google", type=int, required=True)
    p.add_argument("--microsoft", type=int, required=True)
    p.add_argument("--meetings", type=int, default=2)
    p.add_argument("--handshake", type=Path, required=True)
    p.add_argument("--stats", type=Path, required=True)
    p.add_argument("--pump-interval", type=float, default=0.002)
    p.add_argument("--pump-concurrency", type=int, default=8)
    p.add_argument("--max-seconds", type=float, default=3600)
    p.add_argument("--parent-pid", type=int, default=None, help="stop when it is gone (0: never)")
    args = p.parse_args(argv)

    world = World(SystemClock())
    t0 = time.perf_counter()
    handshake = seed(world, args.google, args.microsoft, args.meetings)
    gc.collect()
    gc.freeze()  # the seeded world lives as long as the process
    _log(
        f"seeded {args.google} Google + {args.microsoft} Microsoft users in "
        f"{time.perf_counter() - t0:.1f} s"
    )
    # uvicorn re-raises the signal that stopped it once it has shut down: let that one
    # land here, so that the stats below are still written.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    log = asyncio.run(serve(args, world, handshake))
    stats = {
        "posts": log.posts,
        "rounds": log.rounds,
        "busy_s": log.busy_s,
        "outbox": world.outbox.state(),
        "given_up": sum(
            1 for m in world.outbox.sent if not m.statuses or not 200 <= (m.statuses[-1] or 0) < 300
        ),
    }
    tmp = args.stats.with_suffix(".tmp")
    tmp.write_text(json.dumps(stats))
    tmp.replace(args.stats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
