"""Test kit for bots: a webhook receiver reached through the runtime's webhook transport,
verification with the official ``standardwebhooks`` library, and helpers that connect
emulator users (on Google or, with ``platform="microsoft_outlook"``, on Outlook) and
schedule bots through the HTTP API.

The receiver answers from a script (status, headers, body) or, for ``TIMEOUT``, raises
``httpx.ReadTimeout`` the way a slow tenant would. Nothing sleeps: tests move the
FakeClock and drain the worker.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from showup.clock import FakeClock
from showup.config import Settings
from showup.db.bot_models import Bot
from showup.webhooks.endpoints import create_endpoint
from tests.conftest import make_settings
from tests.sync.helpers import Connector, all_events

HOOK_URL = "http://127.0.0.1:9/hook"
TIMEOUT = "timeout"
MEET = "https://meet.google.com/abc-defg-hij"


@dataclass(frozen=True)
class Reply:
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b"ok"


@dataclass(frozen=True)
class Received:
    url: str
    headers: dict[str, str]
    body: bytes
    at: datetime

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def type(self) -> str:
        return str(self.json["type"])


class Receiver:
    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.requests: list[Received] = []
        self.script: deque[Reply | str] = deque()
        self.app = Starlette(routes=[Route("/{path:path}", self._handle, methods=["POST"])])

    def answer(self, *replies: Reply | str) -> None:
        self.script.extend(replies)

    def record(self, url: str, headers: Mapping[str, str], body: bytes) -> None:
        self.requests.append(Received(url, dict(headers), body, self.clock.now()))

    async def _handle(self, request: Request) -> Response:
        body = await request.body()
        self.record(str(request.url), request.headers, body)
        reply = self.script.popleft() if self.script else Reply()
        assert isinstance(reply, Reply)
        return Response(reply.body, status_code=reply.status, headers=dict(reply.headers))

    def of_type(self, kind: str) -> list[Received]:
        return [r for r in self.requests if r.type == kind]

    def types(self) -> list[str]:
        return [r.type for r in self.requests]


class ReceiverTransport(httpx.AsyncBaseTransport):
    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver
        self.asgi = httpx.ASGITransport(app=receiver.app)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.receiver.script and self.receiver.script[0] == TIMEOUT:
            self.receiver.script.popleft()
            self.receiver.record(str(request.url), request.headers, await request.aread())
            raise httpx.ReadTimeout("receiver too slow", request=request)
        return await self.asgi.handle_async_request(request)


class ClockedWebhook(Webhook):
    """The official verifier; only its timestamp tolerance uses the FakeClock's time the
    message arrived at, instead of the wall clock."""

    def __init__(self, secret: str, now: datetime) -> None:
        super().__init__(secret)
        self._now = now

    def _Webhook__verify_timestamp(self, timestamp_header: str) -> datetime:
        ts = datetime.fromtimestamp(float(timestamp_header), tz=UTC)
        if abs(ts - self._now) > timedelta(minutes=5):
            raise WebhookVerificationError("timestamp outside tolerance")
        return ts


def verify(secret: str, req: Received) -> Any:
    """The parsed body, once ``standardwebhooks`` accepted its signature at arrival."""
    return ClockedWebhook(secret, req.at).verify(req.body, req.headers)


async def add_endpoint(
    runtime: Any, tenant_id: str, url: str = HOOK_URL, event_types: list[str] | None = None
) -> str:
    async with runtime.sessions() as session:
        created = await create_endpoint(
            session,
            runtime.vault,
            tenant_id=tenant_id,
            url=url,
            event_types=event_types,
            description=None,
            now=runtime.clock.now(),
        )
        await session.commit()
    return created.secret


def meeting(
    summary: str,
    start: str,
    end: str,
    *,
    link: str | None = MEET,
    attendees: list[str] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "summary": summary,
        "start": {"dateTime": start},
        "end": {"dateTime": end},
    }
    if link:
        body["hangoutLink"] = link
    if attendees:
        body["attendees"] = [{"email": a} for a in attendees]
    return body


async def event_of(api: httpx.AsyncClient, calendar_id: str, title: str) -> dict[str, Any]:
    [ev] = [e for e in await all_events(api, calendar_id=calendar_id) if e["title"] == title]
    return ev


async def schedule(
    api: httpx.AsyncClient, event_id: str, key: str, config: dict[str, Any] | None = None
) -> httpx.Response:
    return await api.post(
        f"/api/v2/calendar-events/{event_id}/bot/",
        json={"deduplication_key": key, "bot_config": config if config is not None else {}},
    )


async def get_bot(api: httpx.AsyncClient, bot_id: str) -> dict[str, Any]:
    r = await api.get(f"/api/v2/bots/{bot_id}/")
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    return data


async def all_bots(runtime: Any) -> list[Bot]:
    async with runtime.sessions() as session:
        return list(await session.scalars(select(Bot).order_by(Bot.created_at, Bot.id)))


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def connect(
    api: httpx.AsyncClient, world: Any, *emails: str, platform: str = "google_calendar"
) -> list[str]:
    """Connect each user's primary calendar on ``platform`` (one OAuth client); their ids."""
    conn = Connector(api, world, platform)
    return [await conn.connect(e) for e in emails]


# --- fixtures (override the top-level ones of the same name) ------------------------------


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, allow_http_loopback_webhooks=True)


@pytest.fixture
def receiver(clock: FakeClock) -> Receiver:
    return Receiver(clock)


@pytest.fixture
async def runtime(
    engine: AsyncEngine, clock: FakeClock, emulator_app: Any, settings: Settings, receiver: Receiver
) -> AsyncIterator[Any]:
    from showup.runtime import build_runtime

    rt = build_runtime(
        settings,
        clock=clock,
        engine=engine,
        transport=httpx.ASGITransport(app=emulator_app),
        webhook_transport=ReceiverTransport(receiver),
    )
    try:
        yield rt
    finally:
        await rt.http.aclose()
        await rt.webhook_http.aclose()


@pytest.fixture
async def secret(runtime: Any, tenant: Any) -> str:
    """A webhook endpoint of the tenant receiving every event type; its secret."""
    return await add_endpoint(runtime, tenant.tenant_id)
