"""MicrosoftCalendarProvider against hand-made httpx.MockTransport handlers.

These pin the wire details (token URL and form, Prefer headers, whole-URL delta links),
the PROTOCOLS §2 error mapping, the cursor guard (a stored delta link never sends a token
outside ``graph_url``) and rotation. Normalization lives in test_microsoft_normalize.py;
behaviour against a whole fake Graph in the contract suite (test_microsoft_contract.py).
"""

from __future__ import annotations

import json
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
from tests.conftest import corpus_path

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


# -- delta rounds (PROTOCOLS §2.2) -------------------------------------------------------------


async def test_full_round_follows_next_links_to_the_delta_link() -> None:
    seen: list[httpx.Request] = []
    next1 = f"{GRAPH}/me/calendarView/delta?$skiptoken=one"
    next2 = f"{GRAPH}/me/calendarView/delta?$skiptoken=two"
    delta = f"{GRAPH}/me/calendarView/delta?$deltatoken=three"

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        token = request.url.params.get("$skiptoken")
        if token is None:
            return httpx.Response(
                200, json={"value": [item("a"), item("b")], "@odata.nextLink": next1}
            )
        if token == "one":  # an empty page that still carries a nextLink
            return httpx.Response(200, json={"value": [], "@odata.nextLink": next2})
        return httpx.Response(
            200,
            json={
                "value": [item("c"), {"id": "z", "@removed": {"reason": "deleted"}}],
                "@odata.deltaLink": delta,
            },
        )

    provider, _ = make(with_me(handler), page_size=2)
    pages = await collect(provider)
    assert [[e.platform_id for e in p.upserts] for p in pages] == [["a", "b"], [], ["c"]]
    assert [d.platform_id for d in pages[2].deletions] == ["z"]
    assert [p.is_last for p in pages] == [False, False, True]
    assert pages[2].next_cursor == delta
    assert all(p.next_cursor is None for p in pages[:2])

    first = seen[0]
    assert first.url.path == "/v1.0/me/calendarView/delta"
    assert dict(first.url.params) == {
        "startDateTime": "2026-11-01T00:00:00Z",
        "endDateTime": "2026-12-01T00:00:00Z",
    }
    assert str(seen[1].url) == next1 and str(seen[2].url) == next2  # followed as is
    for request in seen:
        prefer = request.headers["Prefer"]
        assert "odata.maxpagesize=2" in prefer
        assert 'outlook.timezone="UTC"' in prefer
        assert 'IdType="ImmutableId"' in prefer
        assert request.headers["Authorization"] == "Bearer at-0"


async def test_secondary_calendar_uses_its_own_delta() -> None:
    seen: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.raw_path)
        return httpx.Response(200, json={"value": [], "@odata.deltaLink": f"{GRAPH}/d?x=1"})

    provider, _ = make(with_me(handler))
    await collect(provider, calendar_id="AQ/x=")
    assert seen[0].startswith(b"/v1.0/me/calendars/AQ%2Fx%3D/calendarView/delta?")


async def test_incremental_calls_the_stored_delta_link_unchanged() -> None:
    cursor = f"{GRAPH}/me/calendar/calendarView/delta?$deltatoken=R0us%2Bmc&x=1"
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200, json={"value": [item("a")], "@odata.deltaLink": cursor.replace("R0us", "S1")}
        )

    provider, _ = make(with_me(handler))
    (page,) = await collect(provider, cursor=cursor)
    assert str(seen[0].url) == cursor
    assert page.is_last and page.next_cursor == cursor.replace("R0us", "S1")
    assert [e.platform_id for e in page.upserts] == ["a"]


@pytest.mark.parametrize(
    "cursor",
    [
        "https://evil.test/v1.0/me/calendarView/delta?$deltatoken=x",
        "https://graph.microsoft.com.evil.test/v1.0/me/calendarView/delta",
        "http://graph.microsoft.com/v1.0/me/calendarView/delta",  # downgraded scheme
        "https://graph.microsoft.com:8443/v1.0/me/calendarView/delta",
        "https://user:pw@graph.microsoft.com/v1.0/me/calendarView/delta",
        "https://graph.microsoft.com/beta/me/calendarView/delta",
        "https://graph.microsoft.com/v1.0/../beta/me/events",
        "https://graph.microsoft.com/v1.0/%2e%2e/beta/me/events",
        "https://graph.microsoft.com/v1.0",
        "/v1.0/me/calendarView/delta?$deltatoken=x",
        "nextSyncToken-from-google",
        "",
    ],
)
async def test_tampered_cursor_never_receives_the_token(cursor: str) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"value": [], "@odata.deltaLink": f"{GRAPH}/d"})

    provider, _ = make(handler)
    with pytest.raises(CursorExpired):  # the engine drops it and runs a full sync
        await collect(provider, cursor=cursor)
    assert seen == []


@pytest.mark.parametrize("key", ["@odata.nextLink", "@odata.deltaLink"])
async def test_links_outside_graph_are_refused(key: str) -> None:
    hosts: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        hosts.append(request.url.host)
        return httpx.Response(200, json={"value": [], key: "https://evil.test/v1.0/steal"})

    provider, _ = make(with_me(handler))
    with pytest.raises(Rejected):
        await collect(provider)
    assert set(hosts) == {"graph.microsoft.com"}


async def test_page_without_links_or_with_a_looping_link_is_transient() -> None:
    provider, _ = make(with_me(lambda r: httpx.Response(200, json={"value": []})))
    with pytest.raises(Transient):
        await collect(provider)

    loop = f"{GRAPH}/me/calendarView/delta?$skiptoken=same"
    provider, _ = make(
        with_me(lambda r: httpx.Response(200, json={"value": [], "@odata.nextLink": loop}))
    )
    pages = provider.list_changes(Tokens(), "primary", cursor=None, window=WINDOW)
    await anext(pages)
    with pytest.raises(Transient):
        await anext(pages)
        await anext(pages)


async def test_replays_within_a_page_keep_the_last_word() -> None:
    delta = f"{GRAPH}/d?t=1"
    value = [
        item("a"),
        {"id": "a", "@removed": {"reason": "deleted"}},
        {"id": "b", "@removed": {"reason": "deleted"}},
        item("b", subject="back"),
        item("c"),
        item("c", subject="c2"),
    ]
    provider, _ = make(
        with_me(lambda r: httpx.Response(200, json={"value": value, "@odata.deltaLink": delta}))
    )
    (page,) = await collect(provider)
    assert [d.platform_id for d in page.deletions] == ["a"]
    assert [(e.platform_id, e.title) for e in page.upserts] == [("b", "back"), ("c", "c2")]


async def test_owner_is_asked_once_per_access_token() -> None:
    paths: list[str] = []
    delta = f"{GRAPH}/d?t=1"

    def handler(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.path)
        if request.url.path == "/v1.0/me":
            return httpx.Response(200, json=ME)
        value = [
            item(
                "a",
                attendees=[
                    {
                        "emailAddress": {"address": "ADA@contoso.com"},
                        "status": {"response": "none"},
                    }
                ],
                responseStatus={"response": "accepted"},
            )
        ]
        return httpx.Response(200, json={"value": value, "@odata.deltaLink": delta})

    provider, _ = make(handler)
    tokens = Tokens()
    (page,) = await collect(provider, tokens=tokens)
    await collect(provider, cursor=delta, tokens=tokens)
    assert paths.count("/v1.0/me") == 1
    (attendee,) = page.upserts[0].attendees
    assert attendee.is_self and attendee.response_status == "accepted"


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


# -- the documented delta round, replayed (corpus) ---------------------------------------------


async def test_documented_delta_round_replays() -> None:
    """The Graph docs' calendarView delta example (3 pages, then a tombstone), served as is."""
    steps = json.loads(
        corpus_path(
            "provider_payloads", "microsoft_graph", "calendarview-delta_sync-round.json"
        ).read_text(encoding="utf-8")
    )["steps"]
    answers = {step["request"].split(" ", 1)[1].lower(): step["response"] for step in steps}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1.0/me":
            return httpx.Response(200, json={"mail": "samanthab@contoso.onmicrosoft.com"})
        url = str(request.url).lower()
        if "/me/calendarview/delta?start" in url:  # our full-sync query: first step
            return httpx.Response(200, json=steps[0]["response"])
        return httpx.Response(200, json=answers[url])

    provider, _ = make(handler, page_size=2)
    pages = await collect(provider)
    assert [e.title for p in pages for e in p.upserts] == [
        "Plan shopping list",
        "Pick up car",
        "Get food",
        "Prepare food",
        "Rest!",
    ]
    first = pages[0].upserts[0]
    assert first.start_time == datetime(2016, 12, 9, 20, 30, tzinfo=UTC)
    assert first.organizer_email == "samanthab@contoso.onmicrosoft.com"
    cursor = pages[-1].next_cursor
    assert cursor == steps[2]["response"]["@odata.deltaLink"]

    (page,) = await collect(provider, cursor=cursor)
    assert [d.platform_id for d in page.deletions] == [steps[3]["response"]["value"][0]["id"]]
    assert [e.title for e in page.upserts] == ["Attend service"]
    assert page.next_cursor == steps[3]["response"]["@odata.deltaLink"]


def test_page_size_bounds() -> None:
    http = httpx.AsyncClient()
    with pytest.raises(ValueError, match="page_size"):
        MicrosoftCalendarProvider(http, graph_url=GRAPH, login_url=LOGIN, page_size=0)


async def test_masters_of_sparse_occurrences_are_fetched_when_the_round_lacks_them() -> None:
    paths: list[str] = []
    master = {
        "id": "M1",
        "type": "seriesMaster",
        "subject": "Weekly",
        "start": {"dateTime": "2026-11-04T14:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2026-11-04T15:00:00", "timeZone": "UTC"},
    }

    def occurrence(event_id: str, master_id: str) -> dict[str, Any]:
        return {
            "id": event_id,
            "type": "occurrence",
            "seriesMasterId": master_id,
            "start": {"dateTime": "2026-11-11T14:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2026-11-11T15:00:00", "timeZone": "UTC"},
        }

    def handler(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.path)
        if request.url.path == "/v1.0/me/events/M1":
            return httpx.Response(200, json=master)
        if request.url.path == "/v1.0/me/events/GONE":
            return graph_error(404, "ErrorItemNotFound")
        value = [occurrence("O1", "M1"), occurrence("O2", "M1"), occurrence("O3", "GONE")]
        return httpx.Response(200, json={"value": value, "@odata.deltaLink": f"{GRAPH}/d"})

    provider, _ = make(with_me(handler))
    (page,) = await collect(provider)
    assert paths.count("/v1.0/me/events/M1") == 1
    titles = {e.platform_id: e.title for e in page.upserts}
    assert titles == {"O1": "Weekly", "O2": "Weekly", "O3": None}
