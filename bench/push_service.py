"""Our service for the push-latency benchmark: API and worker in one process, as
``showup serve --with-worker`` runs them (a child of ``bench.push_latency``).

``python -m bench.push_service --config C --out O``

On a fresh SQLite database (WAL) migrated to head, with the real clock:

1. binds 127.0.0.1 on a free port and serves the API (``showup.api.app.create_app``)
   there, with ``SHOWUP_PUBLIC_URL`` = that address and ``push_allow_http`` (push over
   plain HTTP on loopback; real providers want HTTPS), and runs ``Worker.run_forever``
   with the default job kinds beside it;
2. one tenant, one webhook endpoint (every event type) at the benchmark's receiver, one
   calendar per emulator user (``calendars.service.create_calendar``, what
   ``POST /api/v2/calendars/`` does), then waits for every first sync and every push
   channel (Google ``events.watch``, Graph subscriptions) to be open;
3. one bot per synced meeting (``bots.schedule.schedule_event_bot``, behind
   ``POST /api/v2/calendar-events/{id}/bot/``), then waits until every ``bot.scheduled``
   was delivered;
4. writes the ready file: per calendar its id, e-mail, platform, push status and meetings
   (event id, provider id, bot id, start), and its own base URL.

Then it idles until the driver calls ``/_bench/mark`` (the measured phase begins: optional
cProfile on) and ``/_bench/stop``; it stops the worker and writes ``--out``: the stage
timestamps of ``bench.push_probe``, the webhook messages created after the mark with their
deliveries, the push channels, CPU time and event-loop lag. Bounded by ``max_seconds`` and
by its parent's life.

``poll_interval`` is one hour here (the default is 5 minutes): in production a calendar
with a channel goes on the 24-hour safety schedule at its next poll; within the benchmark's
few minutes the 5-minute polls would otherwise sync calendars behind push's back.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import cProfile
import json
import os
import signal
import socket
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from pydantic import SecretStr
from sqlalchemy import func, select

from bench.common import write_json
from bench.push_probe import BenchControl, LockStats, Stages, instrument, watch_loop_lag
from showup.api.app import create_app
from showup.bots.bot_config import parse_bot_config
from showup.bots.policy import BotPolicy
from showup.bots.schedule import schedule_event_bot
from showup.calendars.service import NewCalendar, create_calendar
from showup.config import Settings
from showup.db.bot_models import Bot, BotEvent
from showup.db.channel_models import PushChannel
from showup.db.migrate import upgrade
from showup.db.models import Calendar, Event
from showup.db.webhook_models import WebhookAttempt, WebhookDelivery, WebhookMessage
from showup.jobs.worker import Worker
from showup.providers.base import PushProvider
from showup.runtime import Runtime, build_runtime
from showup.server import tune_gc
from showup.tenants import create_tenant
from showup.webhooks.endpoints import create_endpoint

_BATCH = 100
_POLL = 0.5


def _log(msg: str) -> None:
    print(f"[push-service] {msg}", file=sys.stderr, flush=True)


def _settings(cfg: dict[str, Any], data_dir: Path, port: int) -> Settings:
    emu = cfg["emulator_url"]
    return Settings(
        data_dir=data_dir,
        master_key=SecretStr(base64.b64encode(b"showup-bench-master-key-32-bytes").decode()),
        public_url=f"http://127.0.0.1:{port}",
        push_allow_http=True,
        allow_http_loopback_webhooks=True,
        google_api_url=f"{emu}/calendar/v3",
        google_token_url=f"{emu}/token",
        microsoft_graph_url=f"{emu}/graph/v1.0",
        microsoft_login_url=f"{emu}/login",
        poll_interval=timedelta(hours=1),
        log_level="WARNING",
    )


def push_platforms(rt: Runtime) -> list[str]:
    return sorted(p for p, prov in rt.providers.items() if isinstance(prov, PushProvider))


async def _count(rt: Runtime, query: Any) -> int:
    async with rt.sessions() as session:
        return int(await session.scalar(query) or 0)


async def _wait(
    rt: Runtime, what: str, query: Any, want: int, deadline: float, stop: asyncio.Event
) -> float:
    """Poll ``query`` (a count) until it reaches ``want``; seconds waited."""
    t0 = time.monotonic()
    while (have := await _count(rt, query)) < want:
        if time.monotonic() > deadline or stop.is_set():
            raise RuntimeError(f"setup: {what}: {have}/{want} at the deadline")
        await asyncio.sleep(_POLL)
    _log(f"{what}: {want} in {time.monotonic() - t0:.1f} s")
    return time.monotonic() - t0


async def _endpoint(rt: Runtime, tenant_id: str, receiver_url: str) -> None:
    url = f"{receiver_url}/hook"
    await rt.outbound.check(url, rt.settings)  # what the endpoints API does first
    async with rt.sessions() as session:
        created = await create_endpoint(
            session,
            rt.vault,
            tenant_id=tenant_id,
            url=url,
            event_types=None,
            description="push-latency benchmark receiver",
            now=rt.clock.now(),
        )
        await session.commit()
    async with httpx.AsyncClient(trust_env=False) as client:
        r = await client.post(f"{receiver_url}/control/secret", content=created.secret)
        r.raise_for_status()


async def _calendars(rt: Runtime, tenant_id: str, cfg: dict[str, Any]) -> None:
    clients = {
        "google_calendar": cfg["google_client"],
        "microsoft_outlook": cfg["microsoft_client"],
    }
    async with rt.sessions() as session:
        for user in cfg["users"]:
            client_id, secret = clients[user["platform"]]
            await create_calendar(
                session,
                rt.clock,
                rt.vault,
                tenant_id,
                NewCalendar(
                    platform=user["platform"],
                    oauth_client_id=client_id,
                    oauth_client_secret=secret,
                    oauth_refresh_token=user["refresh_token"],
                    external_user_id=user["email"],
                ),
            )
        await session.commit()
    rt.notifier.notify()


async def _schedule(rt: Runtime, tenant_id: str) -> int:
    policy = BotPolicy.from_settings(rt.settings)
    config = parse_bot_config({"bot_name": "Notetaker"})
    async with rt.sessions() as session:
        event_ids = list(
            await session.scalars(
                select(Event.id)
                .where(Event.meeting_url.is_not(None), Event.is_deleted.is_(False))
                .order_by(Event.id)
            )
        )
    for k in range(0, len(event_ids), _BATCH):
        async with rt.sessions() as session:
            for event_id in event_ids[k : k + _BATCH]:
                await schedule_event_bot(
                    session,
                    tenant_id=tenant_id,
                    event_id=event_id,
                    deduplication_key=f"bench-{event_id}",
                    config=config,
                    now=rt.clock.now(),
                    policy=policy,
                )
            await session.commit()
        rt.notifier.notify()
    return len(event_ids)


async def _ready_map(rt: Runtime) -> list[dict[str, Any]]:
    async with rt.sessions() as session:
        cals = (
            await session.execute(
                select(
                    Calendar.id, Calendar.external_user_id, Calendar.platform, Calendar.push_status
                )
            )
        ).all()
        rows = (
            await session.execute(
                select(
                    Event.calendar_id,
                    Event.id,
                    Event.platform_id,
                    Event.start_time,
                    BotEvent.bot_id,
                )
                .join(BotEvent, BotEvent.event_id == Event.id)
                .where(BotEvent.state == "active")
                .order_by(Event.start_time)
            )
        ).all()
    meetings: dict[str, list[dict[str, Any]]] = {}
    for cal_id, event_id, platform_id, start, bot_id in rows:
        meetings.setdefault(cal_id, []).append(
            {
                "event_id": event_id,
                "platform_id": platform_id,
                "bot_id": bot_id,
                "start": start.isoformat(),
            }
        )
    return [
        {
            "calendar_id": cal_id,
            "email": email,
            "platform": platform,
            "push_status": push_status,
            "meetings": meetings.get(cal_id, []),
        }
        for cal_id, email, platform, push_status in cals
    ]


async def setup(rt: Runtime, cfg: dict[str, Any], stages: Stages) -> dict[str, Any]:
    deadline = time.monotonic() + cfg["setup_timeout_s"]
    stop = stages.stop
    t0 = time.monotonic()
    await upgrade(rt.engine)
    async with rt.sessions() as session:
        tenant = await create_tenant(session, rt.clock, "push-latency-bench")
        await session.commit()
    await _endpoint(rt, tenant.tenant_id, cfg["receiver_url"])
    await _calendars(rt, tenant.tenant_id, cfg)
    n = len(cfg["users"])
    synced = select(func.count()).where(
        Calendar.sync_cursor.is_not(None), Calendar.status == "connected"
    )
    first_sync_s = await _wait(rt, "first syncs", synced, n, deadline, stop)
    platforms = push_platforms(rt)
    n_push = sum(1 for u in cfg["users"] if u["platform"] in platforms)
    active = select(func.count()).where(Calendar.push_status == "active")
    channels_s = await _wait(rt, "push channels active", active, n_push, deadline, stop)
    bots = await _schedule(rt, tenant.tenant_id)
    pending = select(func.count()).where(WebhookDelivery.status != "delivered")
    scheduled = select(func.count()).select_from(Bot).where(Bot.status == "scheduled")
    await _wait(rt, "bots scheduled", scheduled, bots, deadline, stop)
    t_pending = time.monotonic()
    while await _count(rt, pending):
        if time.monotonic() > deadline or stop.is_set():
            raise RuntimeError("setup: webhooks still pending at the deadline")
        await asyncio.sleep(_POLL)
    _log(f"setup webhooks delivered in {time.monotonic() - t_pending:.1f} s")
    return {
        "tenant_id": tenant.tenant_id,
        "push_platforms": platforms,
        "calendars": n,
        "push_calendars": n_push,
        "bots": bots,
        "setup_s": time.monotonic() - t0,
        "first_sync_s": first_sync_s,
        "channels_s": channels_s,
    }


def _ms(values: list[float]) -> dict[str, float] | None:
    """Count, total and p50/p99/max in ms of a list of seconds."""
    if not values:
        return None
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "total": 1000 * sum(ordered),
        "p50": 1000 * statistics.median(ordered),
        "p99": 1000 * ordered[int(0.99 * (len(ordered) - 1))],
        "max": 1000 * ordered[-1],
    }


def _iso(dt: datetime | None) -> float | None:
    return None if dt is None else dt.timestamp()


def _key(event_type: str, payload: str) -> str | None:
    data = json.loads(payload)["data"]
    return str(data["id"] if event_type.startswith("bot.") else data.get("calendar_id"))


async def collect(rt: Runtime, since: float) -> dict[str, Any]:
    """What the database says about everything after ``since`` (the mark)."""
    after = datetime.fromtimestamp(since, UTC)
    async with rt.sessions() as session:
        messages = (
            await session.execute(
                select(
                    WebhookMessage.id,
                    WebhookMessage.event_type,
                    WebhookMessage.created_at,
                    WebhookMessage.payload,
                ).where(WebhookMessage.created_at >= after)
            )
        ).all()
        deliveries = (
            await session.execute(
                select(
                    WebhookDelivery.message_id,
                    WebhookDelivery.status,
                    WebhookDelivery.attempts,
                    WebhookDelivery.delivered_at,
                    func.min(WebhookAttempt.attempted_at),
                )
                .join(
                    WebhookAttempt, WebhookAttempt.delivery_id == WebhookDelivery.id, isouter=True
                )
                .where(WebhookDelivery.created_at >= after)
                .group_by(WebhookDelivery.id)
            )
        ).all()
        channels = (
            await session.execute(
                select(
                    PushChannel.calendar_id,
                    PushChannel.channel_id,
                    PushChannel.resource_id,
                    PushChannel.status,
                )
            )
        ).all()
        statuses = dict(
            (await session.execute(select(Bot.status, func.count()).group_by(Bot.status))).all()
        )
    by_message = {m: (s, a, _iso(d), _iso(f)) for m, s, a, d, f in deliveries}
    return {
        "messages": [
            [mid, kind, _iso(created), _key(kind, payload), *by_message.get(mid, (None,) * 4)]
            for mid, kind, created, payload in messages
        ],
        "channels": [list(row) for row in channels],
        "bot_statuses": statuses,
    }


async def run(cfg: dict[str, Any], data_dir: Path) -> dict[str, Any]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    port = sock.getsockname()[1]
    rt = build_runtime(_settings(cfg, data_dir, port))
    stages = Stages()
    app = BenchControl(create_app(rt), stages)
    instrument(stages)  # after create_app: its routers have imported what it wraps
    locks = LockStats(rt.engine)
    server = uvicorn.Server(
        uvicorn.Config(
            app, log_level="warning", access_log=False, lifespan="off", timeout_keep_alive=120
        )
    )
    # The driver stops us over HTTP. A SIGTERM/SIGINT stops uvicorn (which handles them
    # while serving, then raises them again: the no-op handlers here take that) and so us.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    loop = asyncio.get_running_loop()
    parent, deadline = os.getppid(), time.monotonic() + cfg["max_seconds"]

    def watch() -> None:
        while not stages.stop.is_set():
            if os.getppid() != parent or time.monotonic() > deadline:
                _log("parent gone or time limit reached; stopping")
                loop.call_soon_threadsafe(stages.stop.set)
                return
            time.sleep(0.5)

    threading.Thread(target=watch, daemon=True).start()
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    serving.add_done_callback(lambda _: stages.stop.set())
    stop_worker = asyncio.Event()
    tune_gc()  # as `showup serve --with-worker` does once set up
    worker = asyncio.create_task(Worker(rt, owner="bench-worker").run_forever(stop_worker))
    out: dict[str, Any] = {"port": port}
    try:
        info = await setup(rt, cfg, stages)
        out.update(info)
        ready = {**info, "base_url": f"http://127.0.0.1:{port}", "map": await _ready_map(rt)}
        tmp = Path(cfg["ready"]).with_suffix(".tmp")
        tmp.write_text(json.dumps(ready))
        tmp.replace(cfg["ready"])
        lagging = asyncio.create_task(watch_loop_lag(stages))
        profile = cProfile.Profile() if cfg.get("profile") else None
        waits = [asyncio.ensure_future(e.wait()) for e in (stages.marked, stages.stop)]
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for w in waits:
            w.cancel()
        stages.lags.clear()
        locks.on = True
        cpu0, wall0 = time.process_time(), time.monotonic()
        if profile is not None:
            profile.enable()
        await stages.stop.wait()
        locks.on = False
        if profile is not None:
            profile.disable()
            profile.dump_stats(cfg["profile"])
        out["cpu_s"] = time.process_time() - cpu0
        out["measured_s"] = time.monotonic() - wall0
        await lagging
    finally:
        stages.stop.set()
        stop_worker.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(worker, 60)
    out["loop_lag_ms"] = _ms(stages.lags)
    out["lock_wait_ms"] = _ms(locks.waits)
    out["lock_hold_ms"] = _ms(locks.holds)
    out["statements"] = locks.statements
    out["transactions"] = locks.transactions
    out["mark"] = stages.mark
    out["pushes"] = stages.pushes
    out["requests"] = stages.requests
    out["syncs"] = stages.syncs
    try:
        out.update(await collect(rt, stages.mark or 0.0))
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(serving, 30)
        await rt.aclose()
        sock.close()
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.push_service")
    p.add_argument("--config", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    cfg = json.loads(args.config.read_text())
    with tempfile.TemporaryDirectory(prefix="showup-bench-db-", dir=cfg.get("workdir")) as tmp:
        result = asyncio.run(run(cfg, Path(tmp)))
    result["pid"] = os.getpid()
    write_json(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
