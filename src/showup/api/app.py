"""The FastAPI application."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from showup import __version__
from showup.api.errors import ApiError, install_error_handlers
from showup.api.routers import bots, calendars, events, push
from showup.api.routers import webhooks as webhook_routes
from showup.runtime import Runtime

MAX_BODY_BYTES = 1024 * 1024


class RecallPaths:
    """Serve ``/api/v2/x`` like ``/api/v2/x/`` without a redirect.

    Recall spells every path with a trailing slash and clients follow it; some HTTP
    clients strip it or refuse to re-send a body on redirect, so we answer both forms.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if path.startswith("/api/") and not path.endswith("/"):
                scope = dict(scope)
                scope["path"] = path + "/"
                scope["raw_path"] = scope["path"].encode()
        await self.app(scope, receive, send)


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes with 413 before reading them whole."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            await ApiError(413, "payload_too_large", "Request body too large.").response()(
                scope, receive, send
            )
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise ApiError(413, "payload_too_large", "Request body too large.")
            return message

        await self.app(scope, limited, send)


def create_app(runtime: Runtime, **kwargs: Any) -> FastAPI:
    app = FastAPI(
        title="showup",
        version=__version__,
        description="Calendar integration for meeting-bot products. "
        "A superset of Recall.ai's Calendar V2 API.",
        redirect_slashes=False,
        **kwargs,
    )
    app.state.runtime = runtime
    install_error_handlers(app)
    app.include_router(calendars.router)
    app.include_router(events.router)
    app.include_router(webhook_routes.router)
    app.include_router(bots.router)
    app.include_router(push.router)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    app.add_middleware(BodyLimit)
    app.add_middleware(RecallPaths)
    return app
