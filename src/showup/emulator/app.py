"""The emulator ASGI app: Google OAuth, Calendar v3 and the control API over one world.

Layout (paths relative to the base URL; see docs/emulator.md):

- ``/token``, ``/revoke``: Google OAuth (PROTOCOLS §1.1)
- ``/calendar/v3/...``: Google Calendar API v3 (PROTOCOLS §1.2 to §1.5)
- ``/login/{tenant}/oauth2/v2.0/token``: Microsoft identity platform (PROTOCOLS §2.1)
- ``/graph/v1.0/...``: Microsoft Graph calendars and subscriptions (PROTOCOLS §2.2 to §2.5)
- ``/_emulator/...``: the control API (never faulted)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount
from starlette.types import ASGIApp, Receive, Scope, Send

from showup.emulator import control
from showup.emulator.faults import Fault
from showup.emulator.google import oauth
from showup.emulator.google import routes as google_routes
from showup.emulator.google.errors import error_body
from showup.emulator.google.push import hub_for
from showup.emulator.graph import errors as graph_errors
from showup.emulator.graph import oauth as graph_oauth
from showup.emulator.graph import routes as graph_routes
from showup.emulator.graph.subscriptions import hub_for as graph_hub_for
from showup.emulator.world import World

CONTROL_PREFIX = "/_emulator"
GRAPH_PREFIX = "/graph/v1.0"
LOGIN_PREFIX = "/login"
_OAUTH_PATHS = ("/token", "/revoke")
_FAULT_MESSAGES = {
    403: "Rate Limit Exceeded",
    429: "Rate Limit Exceeded",
    500: "Backend Error",
    503: "Backend Error",
}


def fault_response(fault: Fault, path: str, world: World) -> Response:
    """The injected failure, in the shape the faulted endpoint would use (§1.1, §1.6,
    §2.1, §2.5)."""
    assert fault.status is not None
    headers = {}
    if fault.retry_after is not None:
        seconds = fault.retry_after
        headers["Retry-After"] = str(int(seconds)) if seconds == int(seconds) else str(seconds)
    now = world.clock.now()
    if path.startswith(GRAPH_PREFIX + "/"):
        graph = graph_errors.error_body(fault.status, fault.reason, fault.message, now)
        return JSONResponse(graph, status_code=fault.status, headers=headers)
    if path.startswith(LOGIN_PREFIX + "/"):
        error = fault.reason or (
            "temporarily_unavailable" if fault.status >= 500 else "invalid_request"
        )
        description = fault.message or "Injected fault."
        login = graph_errors.oauth_body(error, description, now)
        return JSONResponse(login, status_code=fault.status, headers=headers)
    message = fault.message or _FAULT_MESSAGES.get(fault.status, "Injected fault")
    if path.endswith(_OAUTH_PATHS):
        error = fault.reason or ("server_error" if fault.status >= 500 else "invalid_request")
        body: dict[str, object] = {"error": error, "error_description": message}
    else:
        body = error_body(fault.status, message, fault.reason)
    return JSONResponse(body, status_code=fault.status, headers=headers)


class FaultMiddleware:
    """Consumes matching faults before the request reaches a provider route."""

    def __init__(self, app: ASGIApp, world: World) -> None:
        self.app = app
        self.world = world

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path.startswith(CONTROL_PREFIX):
            await self.app(scope, receive, send)
            return
        fault = self.world.faults.take(scope["method"], path)
        if fault is not None:
            if fault.latency is not None:
                # Spent on the world's clock: a FakeClock advances instead of waiting.
                await self.world.clock.sleep(fault.latency)
            if fault.status is not None:
                await fault_response(fault, path, self.world)(scope, receive, send)
                return
        await self.app(scope, receive, send)


@contextlib.asynccontextmanager
async def _pump(world: World) -> AsyncIterator[None]:
    """Deliver queued push pings and Graph notifications about once a second
    (standalone servers only).

    This polls in wall time on purpose: it is a delivery loop, not a schedule, and a
    FakeClock's sleep would not wait at all. Tests call ``world.outbox.deliver``.
    """

    async def loop() -> None:
        async with httpx.AsyncClient(timeout=15.0) as client:
            while True:
                await world.outbox.deliver(client)
                await asyncio.sleep(1.0)

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def create_app(world: World, *, deliver_push: bool = False) -> Starlette:
    """Mount every emulated surface over ``world``; see docs/emulator.md.

    ``deliver_push=True`` starts a background sender for push pings on app startup
    (needs the ASGI lifespan, as uvicorn runs it); otherwise pings wait in
    ``world.outbox`` until the caller delivers them.
    """
    app = Starlette(
        lifespan=(lambda _app: _pump(world)) if deliver_push else None,
        routes=[
            *oauth.routes(world),
            *graph_oauth.routes(world),
            Mount("/calendar/v3", routes=google_routes.routes(world)),
            Mount(GRAPH_PREFIX, routes=graph_routes.routes(world)),
            Mount(CONTROL_PREFIX, routes=control.routes(world)),
        ],
        middleware=[Middleware(FaultMiddleware, world=world)],
    )
    app.state.world = world
    hub_for(world)  # channels listen to the world from the start
    graph_hub_for(world)  # and so do Graph subscriptions
    return app


def run_standalone(host: str, port: int) -> None:
    """Serve an empty world on real time (``showup emulator --port N``)."""
    import uvicorn

    from showup.clock import SystemClock

    app = create_app(World(SystemClock()), deliver_push=True)
    uvicorn.run(app, host=host, port=port, log_level="info")
