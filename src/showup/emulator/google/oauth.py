"""Google's OAuth token and revoke endpoints (PROTOCOLS §1.1), mounted at ``/token``
and ``/revoke``. Only the refresh_token grant is emulated: tests mint refresh tokens
with :meth:`World.grant` instead of walking the consent screen.
"""

from __future__ import annotations

import base64
import binascii
from urllib.parse import parse_qs, unquote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from showup.emulator.model import NotFound
from showup.emulator.world import OAuthError, World


def oauth_error(status: int, error: str, description: str) -> JSONResponse:
    """RFC 6749 §5.2 body, as Google sends it (§1.1 "Error")."""
    return JSONResponse({"error": error, "error_description": description}, status_code=status)


async def _form(request: Request) -> dict[str, str]:
    # Parsed by hand: Starlette's form parser needs python-multipart, not installed.
    raw = (await request.body()).decode("utf-8", "replace")
    return {k: v[-1] for k, v in parse_qs(raw, keep_blank_values=True).items()}


def _basic_auth(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return unquote(user), unquote(password)


def routes(world: World) -> list[BaseRoute]:
    async def token(request: Request) -> Response:
        form = await _form(request)
        basic = _basic_auth(request)
        client_id = basic[0] if basic else form.get("client_id", "")
        client_secret = basic[1] if basic else form.get("client_secret", "")
        grant_type = form.get("grant_type")
        if grant_type != "refresh_token":
            return oauth_error(
                400, "unsupported_grant_type", f"Invalid grant_type: {grant_type or ''}"
            )
        if not form.get("refresh_token"):
            return oauth_error(400, "invalid_request", "Missing required parameter: refresh_token")
        try:
            access = world.refresh(
                client_id, client_secret, form["refresh_token"], provider="google"
            )
        except OAuthError as exc:
            return oauth_error(exc.status, exc.error, exc.description)
        ttl = int(world.settings.access_token_ttl.total_seconds())
        return JSONResponse(
            {
                "access_token": access.token,
                "expires_in": ttl,
                "scope": " ".join(access.grant.scopes),
                "token_type": "Bearer",
            },
            headers={"Cache-Control": "no-cache, no-store, max-age=0, must-revalidate"},
        )

    async def revoke(request: Request) -> Response:
        form = await _form(request)
        value = request.query_params.get("token") or form.get("token", "")
        try:
            world.revoke(value)
        except NotFound:
            return oauth_error(400, "invalid_token", "Token expired or revoked")
        return JSONResponse({})

    return [
        Route("/token", token, methods=["POST"]),
        Route("/revoke", revoke, methods=["POST"]),
    ]
