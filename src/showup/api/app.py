"""The FastAPI application."""

from __future__ import annotations

import json
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


_NUL_ESCAPE = b"\\u0000"


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_nul(v) for v in value)
    return False


class NoNul:
    """Refuse text holding U+0000 (NUL) in the path, the query or a JSON body, with 400.

    PostgreSQL cannot store or even compare NUL in text (the statement fails, which was a
    500), SQLite stored it, and providers would get it in OAuth requests. Checked here,
    once, for every route and every field. A body is read whole (``BodyLimit`` bounds it),
    searched for the escape ``\\u0000`` (a raw NUL is not valid JSON, refused by the
    parser as ever), parsed only when that is found, and handed on unchanged.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if "\x00" in scope["path"] or b"%00" in scope.get("query_string", b""):
            await _nul_refused().response()(scope, receive, send)
            return
        body, more, first = b"", True, None
        try:
            while more:
                message = await receive()
                if message["type"] != "http.request":
                    first = message  # a disconnect: hand it on as it came
                    break
                body += message.get("body", b"")
                more = message.get("more_body", False)
        except ApiError as refused:  # BodyLimit's 413, outside the app's own handlers
            await refused.response()(scope, receive, send)
            return
        if first is None and _NUL_ESCAPE in body and _body_holds_nul(body):
            await _nul_refused().response()(scope, receive, send)
            return
        replay: Message = first or {"type": "http.request", "body": body, "more_body": False}
        sent = False

        async def replayed() -> Message:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return replay

        await self.app(scope, replayed, send)


def _body_holds_nul(body: bytes) -> bool:
    try:
        return _holds_nul(json.loads(body))
    except ValueError:  # not JSON: the route's own parsing answers
        return False


def _nul_refused() -> ApiError:
    return ApiError(400, "invalid_request", "Text may not contain the NUL character (U+0000).")


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

    app.add_middleware(NoNul)
    app.add_middleware(BodyLimit)
    app.add_middleware(RecallPaths)
    return app
