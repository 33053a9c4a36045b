"""A webhook receiver for tests, reached through the runtime's ``webhook_transport``.

The receiver is a small Starlette app that records every request and answers from a
script (status, headers, body), or raises ``httpx.ReadTimeout`` through an
``httpx.MockTransport`` when the script says ``TIMEOUT``. The DNS resolver is a fake the
test can rebind. Fixtures here are imported by ``tests/webhooks/conftest.py`` and by
``tests/api/test_webhooks.py``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from showup.clock import FakeClock
from showup.config import Settings
from showup.webhooks import signing
from tests.conftest import make_settings

HOOK_URL = "http://127.0.0.1:9/hook"
TIMEOUT = "timeout"


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
    at: datetime  # the FakeClock's time when it arrived

    @property
    def json(self) -> Any:
        import json

        return json.loads(self.body)


class Receiver:
    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.requests: list[Received] = []
        self.script: deque[Reply | str] = deque()
        self.scripts: dict[str, deque[Reply | str]] = {}
        self.app: Any = Starlette(routes=[Route("/{path:path}", self._handle, methods=["POST"])])

    def answer(self, *replies: Reply | str, path: str | None = None) -> None:
        """Queue replies for requests to ``path`` (or to any path); then 200 "ok"."""
        if path is None:
            self.script.extend(replies)
        else:
            self.scripts.setdefault(path, deque()).extend(replies)

    def _queue(self, path: str) -> deque[Reply | str]:
        return self.scripts.get(path) or self.script

    def peek(self, path: str) -> Reply | str | None:
        queue = self._queue(path)
        return queue[0] if queue else None

    def _next(self, path: str) -> Reply | str:
        queue = self._queue(path)
        return queue.popleft() if queue else Reply()

    def _record(self, url: str, headers: Mapping[str, str], body: bytes) -> None:
        self.requests.append(Received(url, dict(headers), body, self.clock.now()))

    async def _handle(self, request: Request) -> Response:
        body = await request.body()
        self._record(str(request.url), request.headers, body)
        reply = self._next(request.url.path)
        assert isinstance(reply, Reply)
        return Response(reply.body, status_code=reply.status, headers=dict(reply.headers))


class ReceiverTransport(httpx.AsyncBaseTransport):
    """ASGI to the receiver app, or a MockTransport raising ReadTimeout when scripted."""

    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver
        self.timeouts = httpx.MockTransport(self._time_out)

    async def _time_out(self, request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("receiver too slow", request=request)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.receiver.peek(request.url.path) == TIMEOUT:
            self.receiver._next(request.url.path)
            body = await request.aread()
            self.receiver._record(str(request.url), request.headers, body)
            return await self.timeouts.handle_async_request(request)
        # Built per request, so a test may swap ``receiver.app``.
        return await httpx.ASGITransport(app=self.receiver.app).handle_async_request(request)


class FakeResolver:
    """DNS answers by host name; a test rebinds a name by assigning a new answer."""

    def __init__(self) -> None:
        self.answers: dict[str, list[str]] = {}
        self.calls: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append(host)
        if host not in self.answers:
            raise OSError("no such host")
        return list(self.answers[host])


class ClockedWebhook(Webhook):
    """The official ``standardwebhooks`` verifier, with its tolerance check run against the
    FakeClock instead of the wall clock (the only thing replaced; signatures are its own)."""

    def __init__(self, secret: str, clock: FakeClock) -> None:
        super().__init__(secret)
        self._clock = clock

    def _Webhook__verify_timestamp(self, timestamp_header: str) -> datetime:
        from datetime import UTC

        ts = datetime.fromtimestamp(float(timestamp_header), tz=UTC)
        if abs(ts - self._clock.now()) > timedelta(minutes=5):
            raise WebhookVerificationError("timestamp outside tolerance")
        return ts


def verify_both(secret: str, req: Received, clock: FakeClock) -> Any:
    """Verify with our ``signing.verify`` and with the official library; return the JSON."""
    signing.verify(secret, req.headers, req.body, now=int(clock.now().timestamp()))
    return ClockedWebhook(secret, clock).verify(req.body, req.headers)


def verifies(secret: str, req: Received, clock: FakeClock) -> bool:
    ours = theirs = True
    try:
        signing.verify(secret, req.headers, req.body, now=int(clock.now().timestamp()))
    except signing.SignatureError:
        ours = False
    try:
        ClockedWebhook(secret, clock).verify(req.body, req.headers)
    except WebhookVerificationError:
        theirs = False
    assert ours == theirs, "our verifier and the reference library disagree"
    return ours


# --- fixtures (override the top-level ones of the same name) ------------------------------


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, allow_http_loopback_webhooks=True)


@pytest.fixture
def receiver(clock: FakeClock) -> Receiver:
    return Receiver(clock)


@pytest.fixture
def resolver() -> FakeResolver:
    return FakeResolver()


@pytest.fixture
async def runtime(
    engine: AsyncEngine,
    clock: FakeClock,
    settings: Settings,
    receiver: Receiver,
    resolver: FakeResolver,
) -> AsyncIterator[Any]:
    from showup.runtime import build_runtime

    rt = build_runtime(
        settings, clock=clock, engine=engine, webhook_transport=ReceiverTransport(receiver)
    )
    rt.outbound.resolver = resolver
    try:
        yield rt
    finally:
        await rt.http.aclose()
        await rt.webhook_http.aclose()
