"""The Microsoft identity platform v2.0 token endpoint (PROTOCOLS §2.1), mounted at
``/login/{tenant}/oauth2/v2.0/token``.

Only the refresh_token grant is emulated (tests mint grants with ``World.grant``). Every
refresh returns a **new refresh token** (§2.1 "Refresh"); the old one keeps working
unless ``settings.graph_old_refresh_tokens`` is off. There is no revoke endpoint (§2.1).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from showup.emulator.google.oauth import _basic_auth, _form
from showup.emulator.graph.errors import oauth_error
from showup.emulator.world import OAuthError, World

GRAPH = "https://graph.microsoft.com/"
# Scopes that are not Graph permissions: asking for them never needs consent.
_OIDC = frozenset({"openid", "profile", "email", "offline_access"})


def normalize_scope(scope: str) -> str:
    """``Calendars.Read`` and ``https://graph.microsoft.com/Calendars.Read`` are one."""
    if scope.lower() in _OIDC or "://" in scope:
        return scope
    return GRAPH + scope


def missing_consent(requested: str, granted: tuple[str, ...]) -> list[str]:
    """Requested Graph permissions outside the grant (``/.default`` means "as granted")."""
    have = {s.lower() for s in granted}
    out = []
    for raw in requested.split():
        scope = normalize_scope(raw)
        if scope.lower() in _OIDC or scope.endswith("/.default"):
            continue
        if scope.lower() not in have:
            out.append(scope)
    return out


def routes(world: World) -> list[BaseRoute]:
    async def token(request: Request) -> Response:
        now = world.clock.now()
        form = await _form(request)
        basic = _basic_auth(request)
        client_id = basic[0] if basic else form.get("client_id", "")
        client_secret = basic[1] if basic else form.get("client_secret", "")
        grant_type = form.get("grant_type")
        if grant_type != "refresh_token":
            return oauth_error(
                400,
                "unsupported_grant_type",
                f"The provided grant_type '{grant_type or ''}' is not supported.",
                now,
            )
        refresh_token = form.get("refresh_token", "")
        if not refresh_token:
            return oauth_error(
                400,
                "invalid_request",
                "The request body must contain the following parameter: 'refresh_token'.",
                now,
            )
        with world.lock:
            grant = world.grants.get(refresh_token)
            missing = missing_consent(form.get("scope", ""), grant.scopes) if grant else []
        if missing:
            return oauth_error(
                400,
                "invalid_grant",
                "The user or administrator has not consented to use the application "
                f"for {' '.join(missing)}.",
                now,
                65001,
            )
        try:
            access = world.refresh(client_id, client_secret, refresh_token, provider="microsoft")
        except OAuthError as exc:
            if exc.error == "invalid_client":
                return oauth_error(
                    401,
                    "invalid_client",
                    "Invalid client secret provided, or the application was not found.",
                    now,
                )
            return oauth_error(
                400,
                exc.error,
                "The provided authorization code or refresh token has expired due to "
                "inactivity or was revoked.",
                now,
                70008 if "replaced" in exc.description else 70000,
            )
        ttl = int(world.settings.access_token_ttl.total_seconds())
        scopes = [s for s in access.grant.scopes if s != "offline_access"]
        return JSONResponse(
            {
                "token_type": "Bearer",
                "scope": " ".join(scopes),
                "expires_in": ttl,
                "ext_expires_in": ttl,
                "access_token": access.token,
                "refresh_token": access.refresh_token,
            },
            headers={"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"},
        )

    return [Route("/login/{tenant}/oauth2/v2.0/token", token, methods=["POST"])]
