"""``showup demo``: API, worker and Google emulator in one process, seeded, narrated.

Nothing to configure: a master key is generated into the data directory (and the demo
says so), the database is a fresh SQLite file there, the emulator listens on a free
loopback port and the service talks to it over real HTTP, exactly as it would to Google.
A short storyline then edits the emulator's calendars so changes can be watched flowing
through sync into the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from showup.api.app import create_app
from showup.clock import Clock, ScaledClock
from showup.config import Settings, load_or_create_master_key
from showup.db.migrate import upgrade
from showup.emulator import World
from showup.emulator import create_app as create_emulator
from showup.jobs.worker import Worker
from showup.runtime import Runtime, build_runtime
from showup.tenants import create_tenant
from showup.webhooks.signing import SignatureError, verify

ALICE = "alice@acme.example"
BOB = "bob@acme.example"
CAROL = "carol@acme.example"
USERS = {ALICE: "Europe/Berlin", BOB: "America/New_York", CAROL: "Europe/London"}
PLATFORMS = {BOB: "microsoft_outlook"}

_TTY = sys.stdout.isatty()
# Demo time runs this much faster than real time, so the first bots launch within a minute.
DEFAULT_SPEED = 20.0


def _c(code: str, text: str) -> str:
    return f"\033[{code}m{text}\033[0m" if _TTY else text


def say(text: str = "") -> None:
    print(text, flush=True)


def _free_port(preferred: int | None = None) -> int:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", preferred or 0))
        except OSError:
            s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _at(day: datetime, tz: str, hour: int, minute: int = 0) -> dict[str, str]:
    local = day.astimezone(ZoneInfo(tz)).replace(hour=hour, minute=minute, second=0, microsecond=0)
    return {"dateTime": local.replace(tzinfo=None).isoformat(), "timeZone": tz}


def _soon(now: datetime, *, minutes: int, duration: int) -> dict[str, dict[str, str]]:
    """start/end ``minutes`` from ``now`` (on the minute), so bots launch during the demo."""
    start = (now + timedelta(minutes=minutes)).replace(second=0, microsecond=0)
    end = start + timedelta(minutes=duration)
    return {
        "start": {"dateTime": start.isoformat().replace("+00:00", "Z")},
        "end": {"dateTime": end.isoformat().replace("+00:00", "Z")},
    }


def _weekday_starts(day: datetime, tz: str, hour: int, minute: int, n: int) -> list[datetime]:
    """The first ``n`` weekday starts at hour:minute local from ``day``, in UTC."""
    local = day.astimezone(ZoneInfo(tz)).replace(hour=hour, minute=minute, second=0, microsecond=0)
    out: list[datetime] = []
    while len(out) < n:
        if local.weekday() < 5:
            out.append(local.astimezone(UTC))
        local = (local + timedelta(days=1)).replace(hour=hour, minute=minute)
    return out


@dataclass
class Seeded:
    standup: str
    zoom_call: str
    teams_call: str
    one_on_one: str


def seed_world(world: World, now: datetime) -> Seeded:
    """Realistic calendars for three colleagues, relative to ``now``."""
    for email, tz in USERS.items():
        world.add_user(email, name=email.split("@")[0].title(), time_zone=tz)
    today = now
    while today.astimezone(ZoneInfo("Europe/Berlin")).weekday() >= 5:  # start on a weekday
        today += timedelta(days=1)
    tomorrow = now + timedelta(days=1)
    standup = world.create_event(
        ALICE,
        {
            "summary": "Daily standup",
            "start": _at(today, "Europe/Berlin", 9, 30),
            "end": _at(today, "Europe/Berlin", 9, 45),
            "recurrence": ["RRULE:FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR;COUNT=20"],
            "attendees": [{"email": ALICE}, {"email": BOB}],
            "conferenceData": {
                "conferenceId": "std-daly-mtg",
                "conferenceSolution": {"key": {"type": "hangoutsMeet"}, "name": "Google Meet"},
                "entryPoints": [
                    {"entryPointType": "video", "uri": "https://meet.google.com/std-daly-mtg"},
                    {"entryPointType": "phone", "uri": "tel:+1-555-0100", "pin": "123456"},
                ],
            },
        },
    )
    # One instance moved an hour later, one cancelled (instance ids per PROTOCOLS §1.3).
    starts = _weekday_starts(today, "Europe/Berlin", 9, 30, 4)
    third = f"{standup['id']}_{starts[2].strftime('%Y%m%dT%H%M%SZ')}"
    fourth = f"{standup['id']}_{starts[3].strftime('%Y%m%dT%H%M%SZ')}"
    world.move_event(
        ALICE, third, starts[2] + timedelta(hours=1), starts[2] + timedelta(hours=1, minutes=15)
    )
    world.cancel_event(ALICE, fourth)
    zoom = world.create_event(
        ALICE,
        {
            "summary": "Acme / Globex: intro call",
            **_soon(now, minutes=35, duration=45),
            "location": "https://globex.zoom.us/j/86120934512?pwd=QmV0dGVyTWVldGluZ3M",
            "attendees": [{"email": ALICE}, {"email": "hank@globex.example"}],
        },
    )
    teams = world.create_event(
        BOB,
        {
            "summary": "Quarterly review with Initech",
            **_soon(now, minutes=180, duration=60),
            "description": (
                '<p>Microsoft Teams meeting</p><p><a href="https://teams.microsoft.com/l/'
                "meetup-join/19%3ameeting_NjQ5ZTg3%40thread.v2/0?context=%7b%22Tid%22%3a%22"
                '72f988bf%22%2c%22Oid%22%3a%22a1b2c3%22%7d">Join the meeting now</a></p>'
                "<p>Dial in by phone +1 323-555-0199,,123456789#</p>"
            ),
            "attendees": [{"email": BOB}, {"email": "peter@initech.example"}],
        },
    )
    one_on_one = world.create_event(
        CAROL,
        {
            "summary": "1:1 Carol / Alice",
            **_soon(now, minutes=20, duration=30),
            "hangoutLink": "https://meet.google.com/cal-aliz-one",
            "attendees": [{"email": CAROL}, {"email": ALICE}],
        },
    )
    world.create_event(
        ALICE,
        {
            "summary": "Company offsite",
            "start": {"date": (now + timedelta(days=5)).date().isoformat()},
            "end": {"date": (now + timedelta(days=6)).date().isoformat()},
        },
    )
    world.create_event(
        BOB,
        {
            "summary": "Deep work (no link)",
            "start": _at(tomorrow, "America/New_York", 13),
            "end": _at(tomorrow, "America/New_York", 15),
        },
    )
    pitch = world.create_event(
        BOB,
        {
            "summary": "Vendor pitch",
            "start": _at(tomorrow, "America/New_York", 16),
            "end": _at(tomorrow, "America/New_York", 16, 30),
            "location": "https://whereby.com/vendor-pitch",
            "attendees": [{"email": BOB}, {"email": CAROL}],
        },
    )
    world.respond(CAROL, pitch["id"], "declined")
    return Seeded(standup["id"], zoom["id"], teams["id"], one_on_one["id"])


class Narrator:
    """Polls the API like a tenant would and prints what changed."""

    def __init__(self, api: httpx.AsyncClient, clock: Clock) -> None:
        self.api = api
        self.clock = clock
        self.since: str | None = None
        self.calendars: dict[str, tuple[str, str | None, str | None]] = {}
        self.owners: dict[str, str] = {}
        self.shown: dict[str, str] = {}  # event id -> updated_at already printed

    async def tick(self) -> None:
        r = await self.api.get("/api/v2/calendars/", params={"page_size": 500})
        for cal in r.json()["results"]:
            self.owners[cal["id"]] = (cal["platform_email"] or cal["external_user_id"]).split("@")[
                0
            ]
            push = cal.get("push") or {}
            state = (cal["status"], cal["sync"]["last_error"], push.get("status"))
            if self.calendars.get(cal["id"]) != state:
                self.calendars[cal["id"]] = state
                colour = {"connected": "32", "disconnected": "31"}.get(cal["status"], "33")
                error = f"  ({state[1]})" if state[1] else ""
                pushing = ", push notifications on" if state[2] == "active" else ""
                say(
                    f"  {self.owners[cal['id']]:<6} calendar "
                    f"{_c(colour, cal['status'])}{pushing}{error}"
                )
        params: dict[str, Any] = {"page_size": 500}
        if self.since:
            params["updated_at__gte"] = self.since
        r = await self.api.get("/api/v2/calendar-events/", params=params)
        # ``updated_at__gte`` is inclusive: skip what was already shown at that instant.
        events = [e for e in r.json()["results"] if self.shown.get(e["id"]) != e["updated_at"]]
        for e in events:
            self.shown[e["id"]] = e["updated_at"]
        # A series arrives as many occurrences: show its first and count the rest.
        groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for ev in sorted(events, key=lambda e: e["start_time"]):
            key = (ev["calendar_id"], ev["recurring_event_id"] or ev["id"])
            groups.setdefault(key, []).append(ev)
        for group in groups.values():
            self._show(group[0], more=len(group) - 1)
        if events:
            self.since = max(e["updated_at"] for e in events)

    def _show(self, ev: dict[str, Any], more: int) -> None:
        owner = self.owners.get(ev["calendar_id"], "?")
        start = datetime.fromisoformat(ev["start_time"]).strftime("%a %d %b %H:%M UTC")
        title = (ev["title"] or "(no title)")[:32]
        extra = _c("90", f"  (+{more} more occurrences)") if more else ""
        if ev["is_deleted"]:
            say(f"  {owner:<6} {_c('31', 'cancelled')}  {start}  {title:<32}{extra}")
            return
        declined = any(
            a.get("is_self") and a["response_status"] == "declined" for a in ev["attendees"]
        )
        link = (
            f"{_c('36', ev['meeting_platform'])} {ev['meeting_url']}"
            if ev["meeting_url"]
            else _c("90", "no join link")
        )
        if declined:
            link += _c("90", "  [declined]")
        say(f"  {owner:<6} {_c('32', 'meeting')}    {start}  {title:<32}  {link}{extra}")


class Receiver:
    """The tenant's side: a webhook endpoint that verifies every message's signature
    (Standard Webhooks, PROTOCOLS §4) and shows what it was told."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.secret: str | None = None
        self.titles: dict[str, str] = {}  # event id -> title, for display

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/hooks", self.handle, methods=["POST"])])

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        if self.secret is None:
            return Response(status_code=503)
        try:
            # The service signs with its clock's time; the demo's clock runs fast.
            verify(self.secret, request.headers, body, now=int(self.clock.now().timestamp()))
        except SignatureError as exc:
            say(f"  {_c('31', 'webhook REJECTED')}: {exc}")
            return Response(status_code=400)
        try:
            msg = json.loads(body)
            self.show(msg["type"], msg["data"])
        except (ValueError, KeyError, TypeError) as exc:  # a display problem is ours alone
            say(f"  (could not display a webhook: {exc!r})")
        return Response(status_code=204)

    def show(self, kind: str, data: dict[str, Any]) -> None:
        if kind.startswith("calendar."):
            return  # the narrator already shows what changed
        if kind == "bot.dispatch":  # the dispatch message carries the events themselves
            titles = sorted({e["title"] or "?" for e in data["events"]})
        else:
            titles = sorted({self.titles.get(e, "?") for e in data.get("events", [])})
        what = ", ".join(titles)[:40]
        join = datetime.fromisoformat(data["join_at"]).strftime("%H:%M UTC")
        signed = _c("90", "signature ok")
        if kind == "bot.scheduled":
            n = len(data["events"])
            shared = f" ({n} calendars, one bot)" if n > 1 else ""
            say(f"  {_c('34', 'bot scheduled')}   {what:<34} joins {join}{shared}  {signed}")
        elif kind == "bot.updated":
            say(f"  {_c('34', 'bot moved')}       {what:<34} now joins {join}  {signed}")
        elif kind == "bot.cancelled":
            why = data.get("status_reason") or ""
            say(f"  {_c('31', 'bot cancelled')}   {what:<34} {why}  {signed}")
        elif kind == "bot.dispatch":
            now = self.clock.now().strftime("%H:%M:%S")
            users = ", ".join(data["calendar_users"])
            say(
                f"  {_c('1;32', 'BOT DISPATCHED')}  {what:<34} at {now} for {users}: "
                f"{data['meeting_platform']} {data['meeting_url']}  {signed}"
            )
        elif kind == "bot.failed":
            say(f"  {_c('31', 'bot failed')}      {what:<34} {data.get('error')}  {signed}")


async def schedule_bots(
    api: httpx.AsyncClient, receiver: Receiver, clock: Clock, horizon: timedelta
) -> int:
    """What a tenant's app does after sync: one bot per meeting with a link, keyed on
    ``{start_time}-{meeting_url}`` (Recall's recommended key), so a meeting on two
    colleagues' calendars gets one bot."""
    r = await api.get("/api/v2/calendar-events/", params={"page_size": 500, "is_deleted": "false"})
    scheduled = 0
    until = clock.now() + horizon
    for ev in r.json()["results"]:
        receiver.titles[ev["id"]] = ev["title"] or "(no title)"
        start = datetime.fromisoformat(ev["start_time"])
        declined = any(
            a.get("is_self") and a["response_status"] == "declined" for a in ev["attendees"]
        )
        if not ev["meeting_url"] or declined or not clock.now() < start < until:
            continue
        key = f"{ev['start_time']}-{ev['meeting_url']}"
        res = await api.post(
            f"/api/v2/calendar-events/{ev['id']}/bot/",
            json={"deduplication_key": key, "bot_config": {"bot_name": "showup notetaker"}},
        )
        if res.status_code == 200:
            scheduled += 1
    return scheduled


async def storyline(world: World, seeded: Seeded, clock: Clock, pace: float) -> None:
    """Edit the emulator's calendars now and then, as real users would."""
    steps: list[tuple[str, Callable[[], object]]] = [
        (
            "Alice moves the Globex intro call 30 minutes later",
            lambda: _move(world, ALICE, seeded.zoom_call, timedelta(minutes=30)),
        ),
        (
            "Bob cancels the Initech quarterly review",
            lambda: world.cancel_event(BOB, seeded.teams_call),
        ),
        (
            "Carol adds a Webex call with a customer",
            lambda: world.create_event(
                CAROL,
                {
                    "summary": "Customer escalation (Webex)",
                    "start": _at(clock.now() + timedelta(days=2), "Europe/London", 14),
                    "end": _at(clock.now() + timedelta(days=2), "Europe/London", 14, 30),
                    "location": "https://acme.webex.com/acme/j.php?MTID=m0123456789abcdef",
                },
            ),
        ),
    ]
    for text, action in steps:
        await asyncio.sleep(pace)
        say(f"\n{_c('35', 'emulator')}: {text}")
        action()


def _move(world: World, email: str, event_id: str, by: timedelta) -> None:
    ev = world.get_event(email, event_id)
    start = datetime.fromisoformat(ev["start"]["dateTime"])
    end = datetime.fromisoformat(ev["end"]["dateTime"])
    world.move_event(email, event_id, start + by, end + by)


async def _serve(
    app: Any, port: int, *, lifespan: bool = False
) -> tuple[uvicorn.Server, asyncio.Task[None]]:
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on" if lifespan else "off",
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn exposes no "started" event
        await asyncio.sleep(0.02)
    return server, task


def _fresh_database(db: Path) -> None:
    """The demo seeds anew each run, so it starts from an empty database."""
    for old in db.parent.glob(db.name + "*"):
        old.unlink()


async def _demo(port: int, speed: float, data_dir: Path) -> None:
    key, created = load_or_create_master_key(data_dir)
    if created:
        say(f"generated a master key into {data_dir / 'master.key'} (keep it to reuse the data)")
    db = data_dir / "demo.db"
    _fresh_database(db)
    clock = ScaledClock(speed)
    world = World(clock)
    emu_port = _free_port()
    api_port = _free_port(port)
    if api_port != port:
        say(f"port {port} is busy; using {api_port}")
    emu_url = f"http://127.0.0.1:{emu_port}"
    settings = Settings(
        microsoft_graph_url=f"{emu_url}/graph/v1.0",
        microsoft_login_url=f"{emu_url}/login",
        data_dir=data_dir,
        database_url=f"sqlite+aiosqlite:///{db.resolve()}",
        master_key=key,
        port=api_port,
        public_url=f"http://127.0.0.1:{api_port}",
        google_api_url=f"{emu_url}/calendar/v3",
        google_token_url=f"{emu_url}/token",
        poll_interval=timedelta(seconds=60),
        allow_http_loopback_webhooks=True,
        # Push over plain http is for loopback demos only (the emulator calls us back here).
        push_allow_http=True,
    )
    runtime: Runtime = build_runtime(settings, clock=clock)
    await upgrade(runtime.engine)
    async with runtime.sessions() as session:
        tenant = await create_tenant(session, clock, "Demo tenant")
        await session.commit()
    seeded = seed_world(world, clock.now())
    # The emulator sends Google's push pings (and Graph's notifications) on its own.
    emu_server, emu_task = await _serve(
        create_emulator(world, deliver_push=True), emu_port, lifespan=True
    )
    api_server, api_task = await _serve(create_app(runtime), api_port)
    receiver = Receiver(clock)
    hook_port = _free_port()
    hook_server, hook_task = await _serve(receiver.app(), hook_port)
    stop = asyncio.Event()
    worker_task = asyncio.create_task(Worker(runtime).run_forever(stop))
    base = f"http://127.0.0.1:{api_port}"
    say()
    say(_c("1", "showup demo is running"))
    say(f"  API          {base}/api/v2/   (docs: {base}/docs)")
    say(f"  API key      {tenant.api_key}")
    auth = f"Authorization: Token {tenant.api_key}"
    say(f"  try          curl -H '{auth}' {base}/api/v2/calendar-events/")
    say(f"  emulator     {emu_url}  (Google Calendar API + OAuth, control API at /_emulator/)")
    poll = settings.poll_interval.total_seconds()
    say(
        f"  webhooks     http://127.0.0.1:{hook_port}/hooks (a local receiver verifying signatures)"
    )
    say(f"  clock speed  {speed}x (demo time)")
    say(f"  sync         push notifications; polling every {poll:.0f}s of demo time as fallback")
    say("  stop with Ctrl-C")
    say()
    # Bob's company runs on Microsoft 365; Alice and Carol use Google Workspace.
    apps = {
        "google_calendar": world.add_oauth_client(),
        "microsoft_outlook": world.add_oauth_client(provider="microsoft"),
    }
    async with httpx.AsyncClient(
        base_url=base, headers={"Authorization": f"Token {tenant.api_key}"}, timeout=30
    ) as api:
        r = await api.post(
            "/api/v2/webhook-endpoints/",
            json={"url": f"http://127.0.0.1:{hook_port}/hooks", "description": "demo receiver"},
        )
        r.raise_for_status()
        receiver.secret = r.json()["secret"]
        say("registered the receiver through POST /api/v2/webhook-endpoints/")
        for email in USERS:
            platform = PLATFORMS.get(email, "google_calendar")
            client_id, client_secret = apps[platform]
            r = await api.post(
                "/api/v2/calendars/",
                json={
                    "platform": platform,
                    "oauth_client_id": client_id,
                    "oauth_client_secret": client_secret,
                    "oauth_refresh_token": world.grant(client_id, email),
                    "external_user_id": email.split("@")[0],
                },
            )
            r.raise_for_status()
            kind = "Outlook calendar" if platform == "microsoft_outlook" else "Google Calendar"
            say(f"connected {email}'s {kind} through POST /api/v2/calendars/")
        narrator = Narrator(api, clock)
        while (
            not stop.is_set()
            and any(state[0] != "connected" for state in narrator.calendars.values())
        ) or len(narrator.calendars) < len(USERS):
            await narrator.tick()
            await asyncio.sleep(0.2)
        await narrator.tick()
        n = await schedule_bots(api, receiver, clock, horizon=timedelta(hours=36))
        say(
            f"\nscheduled bots for {n} meetings with links in the next 36 h "
            "(POST /api/v2/calendar-events/{id}/bot/)"
        )
        story = asyncio.create_task(storyline(world, seeded, clock, pace=15.0))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        try:
            while not stop.is_set():
                await narrator.tick()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)
        finally:
            story.cancel()
            stop.set()
            await worker_task
            for server in (api_server, emu_server, hook_server):
                server.should_exit = True
            await asyncio.gather(api_task, emu_task, hook_task, return_exceptions=True)
            await runtime.aclose()
            say("\nstopped.")


def run_demo(port: int = 8080, speed: float | None = None, data_dir: str | None = None) -> None:
    logging.basicConfig(level=os.environ.get("SHOWUP_LOG_LEVEL", "WARNING"))
    path = Path(data_dir or os.environ.get("SHOWUP_DATA_DIR", "showup-data")) / "demo"
    asyncio.run(_demo(port, speed or DEFAULT_SPEED, path))
