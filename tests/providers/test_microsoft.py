"""MicrosoftCalendarProvider against hand-made httpx.MockTransport handlers.

These pin the wire details (token URL and form, Prefer headers, whole-URL delta links),
the PROTOCOLS §2 error mapping, the cursor guard (a stored delta link never sends a token
outside ``graph_url``) and rotation. Normalization lives in test_microsoft_normalize.py;
behaviour against a whole fake Graph in the contract suite (test_microsoft_contract.py).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from showup.clock import FakeClock
from showup.providers.base import ChangePage, OAuthCredentials, SyncWindow
from showup.providers.errors import (
    AuthRevoked,
    CursorExpired,
    NotFound,
    RateLimited,
    Rejected,
    Transient,
)
from showup.providers.microsoft import SCOPE, MicrosoftCalendarProvider

GRAPH = "https://graph.microsoft.com/v1.0"
LOGIN = "https://login.microsoftonline.com"
CREDS = OAuthCredentials(client_id="cid", client_secret="csecret", refresh_token="rt-1")
WINDOW = SyncWindow(start=datetime(2026, 11, 1, tzinfo=UTC), end=datetime(2026, 12, 1, tzinfo=UTC))
ME = {"id": "u1", "mail": "Ada@Contoso.com", "userPrincipalName": "ada@contoso.onmicrosoft.com"}

Handler = Callable[[httpx.Request], httpx.Response]


class Tokens:
    def __init__(self) -> None:
        self.generation = 0
        self.forced = 0

    async def __call__(self, force: bool = False) -> str:
        if force:
            self.generation += 1
            self.forced += 1
        return f"at-{self.generation}"


def make(handler: Handler, *, page_size: int = 50) -> tuple[MicrosoftCalendarProvider, FakeClock]:
    clock = FakeClock(datetime(2026, 11, 2, 9, 0, tzinfo=UTC))
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    provider = MicrosoftCalendarProvider(
        http, graph_url=GRAPH, login_url=LOGIN, page_size=page_size, clock=clock
    )
    return provider, clock


def with_me(handler: Handler) -> Handler:
    """Answer ``GET /me`` with ME and pass everything else to ``handler``."""

    def wrapped(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1.0/me":
            return httpx.Response(200, json=ME)
        return handler(request)

    return wrapped


def graph_error(status: int, code: str, message: str = "nope", **headers: str) -> httpx.Response:
    return httpx.Response(
        status, json={"error": {"code": code, "message": message}}, headers=headers
    )


def item(event_id: str, start: str = "2026-11-03T10:00:00.0000000", **extra: Any) -> dict[str, Any]:
    return {
        "id": event_id,
        "subject": event_id,
        "start": {"dateTime": start, "timeZone": "UTC"},
        "end": {"dateTime": start.replace("T10", "T11"), "timeZone": "UTC"},
        **extra,
    }


async def collect(
    provider: MicrosoftCalendarProvider,
    cursor: str | None = None,
    calendar_id: str = "primary",
    tokens: Tokens | None = None,
) -> list[ChangePage]:
    return [
        page
        async for page in provider.list_changes(
            tokens or Tokens(), calendar_id, cursor=cursor, window=WINDOW
        )
    ]


# -- OAuth refresh (PROTOCOLS §2.1) ------------------------------------------------------------


@pytest.mark.parametrize(
    ("tenant", "path"),
    [
        (None, "/common/oauth2/v2.0/token"),
        ("contoso.onmicrosoft.com", "/contoso.onmicrosoft.com/oauth2/v2.0/token"),
    ],
)
async def test_refresh_posts_the_v2_refresh_grant(tenant: str | None, path: str) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200,
            json={
                "access_token": "eyJ.x",
                "token_type": "Bearer",
                "expires_in": 3599,
                "scope": "https://graph.microsoft.com/Calendars.Read",
                "refresh_token": "rt-2",
            },
        )

    provider, clock = make(handler)
    creds = OAuthCredentials("cid", "csecret", "rt-1", oauth_tenant=tenant)
    token = await provider.refresh_access_token(creds)
    assert token.token == "eyJ.x"
    assert token.expires_at == clock.now() + timedelta(seconds=3599)
    # Graph rotates on every refresh: the new one must reach the caller for storing.
    assert token.rotated_refresh_token == "rt-2"
    (request,) = seen
    assert request.method == "POST"
    assert str(request.url) == LOGIN + path
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert parse_qs(request.content.decode()) == {
        "grant_type": ["refresh_token"],
        "client_id": ["cid"],
        "client_secret": ["csecret"],
        "refresh_token": ["rt-1"],
        "scope": [SCOPE],
    }
    assert "offline_access" in SCOPE and "Calendars.Read" in SCOPE


async def test_refresh_tenant_cannot_escape_its_path_segment() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"access_token": "a", "refresh_token": "rt-1"})

    provider, _ = make(handler)
    token = await provider.refresh_access_token(
        OAuthCredentials("cid", "s", "rt-1", oauth_tenant="../evil?x=")
    )
    assert token.rotated_refresh_token is None  # the same token back: nothing to store
    assert seen[0].url.host == "login.microsoftonline.com"
    assert seen[0].url.raw_path.startswith(b"/..%2Fevil%3Fx%3D/oauth2/v2.0/token")


AADSTS = (
    "AADSTS70000: The provided grant has expired due to it being revoked.\r\n"
    "Trace ID: 0000\r\nCorrelation ID: 1111\r\nTimestamp: 2026-11-02 09:00:00Z"
)


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (400, {"error": "invalid_grant", "error_description": AADSTS}, AuthRevoked),
        (
            400,
            {"error": "interaction_required", "error_description": "AADSTS50076: MFA"},
            AuthRevoked,
        ),
        (
            400,
            {"error": "consent_required", "error_description": "AADSTS65001: consent"},
            AuthRevoked,
        ),
        (
            401,
            {"error": "invalid_client", "error_description": "AADSTS7000215: secret"},
            AuthRevoked,
        ),
        (400, {"error": "invalid_scope"}, Rejected),
        (400, {"error": "invalid_request"}, Rejected),
        (503, {"error": "temporarily_unavailable"}, Transient),
        (400, {"error": "temporarily_unavailable"}, Transient),
        (500, {}, Transient),
        (429, {}, RateLimited),
    ],
)
async def test_refresh_errors(status: int, body: dict[str, Any], expected: type[Exception]) -> None:
    provider, _ = make(lambda r: httpx.Response(status, json=body))
    with pytest.raises(expected) as info:
        await provider.refresh_access_token(CREDS)
    message = str(info.value)
    assert "rt-1" not in message and "csecret" not in message
    if "error_description" in body:
        first_line = body["error_description"].splitlines()[0]
        assert first_line in message
        assert "Trace ID" not in message


async def test_refresh_rate_limit_and_timeouts() -> None:
    provider, _ = make(lambda r: httpx.Response(429, headers={"Retry-After": "7"}))
    with pytest.raises(RateLimited) as info:
        await provider.refresh_access_token(CREDS)
    assert info.value.retry_after == timedelta(seconds=7)

    def timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectTimeout("slow", request=request)

    provider, _ = make(timeout)
    with pytest.raises(Transient):
        await provider.refresh_access_token(CREDS)


# -- get_calendar ------------------------------------------------------------------------------


async def test_get_primary_calendar() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        if request.url.path == "/v1.0/me/calendar":
            return httpx.Response(200, json={"id": "AAMkCal=", "name": "Calendar"})
        if request.url.path == "/v1.0/me/mailboxSettings":
            return httpx.Response(200, json={"timeZone": "W. Europe Standard Time"})
        return httpx.Response(404)

    provider, _ = make(with_me(handler))
    info = await provider.get_calendar(Tokens(), "primary")
    assert info.platform_calendar_id == "AAMkCal="
    assert info.email == "ada@contoso.com"  # mail first, lower-cased
    assert info.summary == "Calendar"
    assert info.time_zone == "Europe/Berlin"  # Windows name mapped
    assert seen == ["/v1.0/me/calendar", "/v1.0/me/mailboxSettings"]


async def test_get_secondary_calendar_by_encoded_id_without_mailbox_scope() -> None:
    seen: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.raw_path)
        if request.url.path == "/v1.0/me":
            return httpx.Response(200, json={"mail": None, "userPrincipalName": "bo@x.test"})
        if request.url.path == "/v1.0/me/mailboxSettings":
            return graph_error(403, "ErrorAccessDenied")
        return httpx.Response(200, json={"id": "AQ/x=", "name": "Team"})

    provider, _ = make(handler)
    info = await provider.get_calendar(Tokens(), "AQ/x=")
    assert info.email == "bo@x.test"
    assert info.time_zone is None
    assert b"/v1.0/me/calendars/AQ%2Fx%3D" in seen


async def test_unknown_calendar_is_not_found() -> None:
    provider, _ = make(with_me(lambda r: graph_error(404, "ErrorItemNotFound")))
    with pytest.raises(NotFound):
        await provider.get_calendar(Tokens(), "nope")
    with pytest.raises(NotFound):
        await collect(provider, calendar_id="nope")


# -- API error mapping (PROTOCOLS §2.2, §2.5) --------------------------------------------------


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (
            graph_error(410, "SyncStateNotFound", "The sync state generation is not found"),
            CursorExpired,
        ),
        (graph_error(410, "resyncRequired"), CursorExpired),
        (httpx.Response(410, headers={"Location": f"{GRAPH}/d?$deltatoken="}), CursorExpired),
        (graph_error(400, "SyncStateInvalid"), CursorExpired),
        (graph_error(403, "ErrorAccessDenied", "Access is denied."), AuthRevoked),
        (graph_error(403, "ErrorQuotaExceeded"), Rejected),
        (graph_error(404, "ErrorItemNotFound"), NotFound),
        (graph_error(429, "ApplicationThrottled", **{"Retry-After": "12"}), RateLimited),
        (graph_error(503, "ServiceUnavailable"), Transient),
        (graph_error(504, "GatewayTimeout"), Transient),
        (httpx.Response(408), Transient),
        (graph_error(400, "ErrorInvalidRequest"), Rejected),
        (httpx.Response(200, text="<html>proxy</html>"), Transient),
    ],
)
async def test_api_errors_on_an_incremental_round(
    response: httpx.Response, expected: type[Exception]
) -> None:
    provider, _ = make(with_me(lambda r: response))
    with pytest.raises(expected) as info:
        await collect(provider, cursor=f"{GRAPH}/me/calendarView/delta?$deltatoken=SECRET")
    assert "SECRET" not in str(info.value)
    if expected is RateLimited:
        assert isinstance(info.value, RateLimited)
        assert info.value.retry_after == timedelta(seconds=12)


async def test_401_refreshes_once_then_auth_revoked() -> None:
    auths: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        auths.append(request.headers["Authorization"])
        if request.headers["Authorization"] == "Bearer at-0":
            return graph_error(401, "InvalidAuthenticationToken")
        if request.url.path == "/v1.0/me":
            return httpx.Response(200, json=ME)
        return httpx.Response(200, json={"value": [], "@odata.deltaLink": f"{GRAPH}/d"})

    provider, _ = make(handler)
    tokens = Tokens()
    await collect(provider, tokens=tokens)
    assert tokens.forced == 1
    assert auths[:2] == ["Bearer at-0", "Bearer at-1"]

    provider, _ = make(lambda r: graph_error(401, "InvalidAuthenticationToken"))
    with pytest.raises(AuthRevoked):
        await collect(provider)


async def test_transport_failure_is_transient() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1.0/me":
            return httpx.Response(200, json=ME)
        raise httpx.ConnectError("reset", request=request)

    provider, _ = make(handler)
    with pytest.raises(Transient):
        await collect(provider)


def test_page_size_bounds() -> None:
    http = httpx.AsyncClient()
    with pytest.raises(ValueError, match="page_size"):
        MicrosoftCalendarProvider(http, graph_url=GRAPH, login_url=LOGIN, page_size=0)
