"""GoogleCalendarProvider against hand-made httpx.MockTransport handlers.

These pin the wire details (query parameters, form bodies, PROTOCOLS §1.6 error mapping) and
the event normalization (§1.3). Behaviour against a whole fake Google lives in the contract
suite (test_google_contract.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from showup.clock import FakeClock
from showup.providers.base import (
    ChangePage,
    OAuthCredentials,
    RemoteDeletion,
    RemoteEvent,
    SyncWindow,
)
from showup.providers.errors import (
    AuthRevoked,
    CursorExpired,
    NotFound,
    ProviderError,
    RateLimited,
    Rejected,
    Transient,
)
from showup.providers.google import GoogleCalendarProvider
from showup.providers.google_normalize import normalize_item

API = "https://calendar.test/calendar/v3"
TOKEN_URL = "https://oauth.test/token"
CREDS = OAuthCredentials(client_id="cid", client_secret="csecret", refresh_token="rt-1")
WINDOW = SyncWindow(start=datetime(2026, 11, 1, tzinfo=UTC), end=datetime(2026, 12, 1, tzinfo=UTC))

Handler = Callable[[httpx.Request], httpx.Response]


class Tokens:
    def __init__(self) -> None:
        self.generation = 0

    async def __call__(self, force: bool = False) -> str:
        if force:
            self.generation += 1
        return f"at-{self.generation}"


def make(handler: Handler, *, page_size: int = 250) -> tuple[GoogleCalendarProvider, FakeClock]:
    clock = FakeClock(datetime(2026, 11, 2, 9, 0, tzinfo=UTC))
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    provider = GoogleCalendarProvider(
        http, api_url=API, token_url=TOKEN_URL, page_size=page_size, clock=clock
    )
    return provider, clock


def google_error(status: int, reason: str, message: str = "nope") -> dict[str, Any]:
    return {
        "error": {
            "errors": [{"domain": "global", "reason": reason, "message": message}],
            "code": status,
            "message": message,
        }
    }


async def collect(
    provider: GoogleCalendarProvider, cursor: str | None = None, calendar_id: str = "primary"
) -> list[ChangePage]:
    return [
        page
        async for page in provider.list_changes(Tokens(), calendar_id, cursor=cursor, window=WINDOW)
    ]


def timed(event_id: str, start: str, end: str, **extra: Any) -> dict[str, Any]:
    return {"id": event_id, "start": {"dateTime": start}, "end": {"dateTime": end}, **extra}


# -- OAuth refresh (PROTOCOLS §1.1) ------------------------------------------------------------


async def test_refresh_posts_refresh_grant_form() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200, json={"access_token": "ya29.x", "expires_in": 3599, "token_type": "Bearer"}
        )

    provider, clock = make(handler)
    token = await provider.refresh_access_token(CREDS)
    assert token.token == "ya29.x"
    assert token.expires_at == clock.now() + timedelta(seconds=3599)
    assert token.rotated_refresh_token is None
    (request,) = seen
    assert request.method == "POST"
    assert str(request.url) == TOKEN_URL
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert parse_qs(request.content.decode()) == {
        "grant_type": ["refresh_token"],
        "refresh_token": ["rt-1"],
        "client_id": ["cid"],
        "client_secret": ["csecret"],
    }


async def test_refresh_returns_a_rotated_refresh_token() -> None:
    provider, _ = make(
        lambda r: httpx.Response(200, json={"access_token": "a", "refresh_token": "rt-2"})
    )
    token = await provider.refresh_access_token(CREDS)
    assert token.rotated_refresh_token == "rt-2"


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (
            400,
            {"error": "invalid_grant", "error_description": "Token has been expired or revoked."},
            AuthRevoked,
        ),
        (
            401,
            {"error": "invalid_client", "error_description": "The OAuth client was not found."},
            AuthRevoked,
        ),
        (401, {"error": "unauthorized_client"}, AuthRevoked),
        (401, {"error": "deleted_client"}, AuthRevoked),
        (400, {"error": "invalid_request"}, Rejected),
        (429, {"error": "rate_limit_exceeded"}, RateLimited),
        (500, {}, Transient),
        (503, {"error": "temporarily_unavailable"}, Transient),
    ],
)
async def test_refresh_errors(status: int, body: dict[str, Any], expected: type[Exception]) -> None:
    provider, _ = make(lambda r: httpx.Response(status, json=body))
    with pytest.raises(expected) as info:
        await provider.refresh_access_token(CREDS)
    assert "rt-1" not in str(info.value) and "csecret" not in str(info.value)
    if "error_description" in body:
        assert body["error_description"] in str(info.value)


async def test_refresh_rate_limit_carries_retry_after() -> None:
    provider, _ = make(lambda r: httpx.Response(429, headers={"Retry-After": "7"}))
    with pytest.raises(RateLimited) as info:
        await provider.refresh_access_token(CREDS)
    assert info.value.retry_after == timedelta(seconds=7)


async def test_refresh_timeout_is_transient() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    provider, _ = make(handler)
    with pytest.raises(Transient):
        await provider.refresh_access_token(CREDS)


# -- calendars.get -----------------------------------------------------------------------------


async def test_get_primary_calendar_resolves_owner_email() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200,
            json={
                "kind": "calendar#calendar",
                "id": "ada@example.com",
                "summary": "Ada",
                "timeZone": "Europe/Paris",
            },
        )

    provider, _ = make(handler)
    info = await provider.get_calendar(Tokens(), "primary")
    assert info.platform_calendar_id == "ada@example.com"
    assert info.email == "ada@example.com"
    assert info.summary == "Ada"
    assert info.time_zone == "Europe/Paris"
    assert seen[0].url.raw_path == b"/calendar/v3/calendars/primary"
    assert seen[0].headers["Authorization"] == "Bearer at-0"


async def test_get_calendar_encodes_id_and_knows_group_calendars_have_no_owner() -> None:
    calendar_id = "team#1/x@group.calendar.google.com"
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"id": calendar_id, "summary": "Team"})

    provider, _ = make(handler)
    info = await provider.get_calendar(Tokens(), calendar_id)
    assert (
        seen[0].url.raw_path == b"/calendar/v3/calendars/team%231%2Fx%40group.calendar.google.com"
    )
    assert info.email is None
    assert info.time_zone is None


async def test_get_calendar_404_is_not_found() -> None:
    provider, _ = make(lambda r: httpx.Response(404, json=google_error(404, "notFound")))
    with pytest.raises(NotFound):
        await provider.get_calendar(Tokens(), "gone@example.com")


# -- events.list paging (PROTOCOLS §1.2) --------------------------------------------------------


async def test_full_sync_query_and_paging_across_empty_pages() -> None:
    seen: list[dict[str, list[str]]] = []
    pages: dict[str | None, dict[str, Any]] = {
        None: {
            "items": [timed("a", "2026-11-03T10:00:00Z", "2026-11-03T11:00:00Z")],
            "nextPageToken": "p2",
        },
        "p2": {"items": [], "nextPageToken": "p3"},
        "p3": {
            "items": [timed("b", "2026-11-04T10:00:00+01:00", "2026-11-04T11:00:00+01:00")],
            "nextSyncToken": "sync-1",
        },
    }

    def handler(request: httpx.Request) -> httpx.Response:
        query = parse_qs(request.url.query.decode())
        seen.append(query)
        assert request.url.raw_path.startswith(b"/calendar/v3/calendars/ada%40example.com/events?")
        token = query.get("pageToken", [None])[0]
        return httpx.Response(200, json={"timeZone": "UTC", **pages[token]})

    provider, _ = make(handler, page_size=2)
    result = await collect(provider, calendar_id="ada@example.com")

    assert [len(p.upserts) for p in result] == [1, 0, 1]
    assert [p.is_last for p in result] == [False, False, True]
    assert [p.next_cursor for p in result] == [None, None, "sync-1"]
    assert result[2].upserts[0].start_time == datetime(2026, 11, 4, 9, 0, tzinfo=UTC)
    first = {k: v for k, v in seen[0].items()}
    assert first == {
        "singleEvents": ["true"],
        "maxResults": ["2"],
        "timeMin": ["2026-11-01T00:00:00Z"],
        "timeMax": ["2026-12-01T00:00:00Z"],
    }
    # Later pages repeat the identical query plus pageToken.
    for query, token in zip(seen[1:], ["p2", "p3"], strict=True):
        assert query == {**first, "pageToken": [token]}


async def test_incremental_query_uses_only_the_sync_token() -> None:
    seen: list[dict[str, list[str]]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        query = parse_qs(request.url.query.decode())
        seen.append(query)
        if "pageToken" not in query:
            return httpx.Response(
                200,
                json={
                    "items": [{"id": "gone_20261105T100000Z", "status": "cancelled"}],
                    "nextPageToken": "q2",
                },
            )
        return httpx.Response(
            200,
            json={
                "items": [timed("c", "2026-11-06T10:00:00Z", "2026-11-06T10:30:00Z")],
                "nextSyncToken": "sync-2",
            },
        )

    provider, _ = make(handler)
    result = await collect(provider, cursor="sync-1")
    assert seen[0] == {"singleEvents": ["true"], "maxResults": ["250"], "syncToken": ["sync-1"]}
    assert seen[1] == {**seen[0], "pageToken": ["q2"]}
    assert result[0].deletions == [
        RemoteDeletion(
            platform_id="gone_20261105T100000Z",
            raw={"id": "gone_20261105T100000Z", "status": "cancelled"},
        )
    ]
    assert [e.platform_id for e in result[1].upserts] == ["c"]
    assert result[1].next_cursor == "sync-2"


async def test_naive_window_is_refused_before_any_request() -> None:
    provider, _ = make(lambda r: pytest.fail("no request expected"))
    naive = SyncWindow(start=datetime(2026, 11, 1), end=datetime(2026, 12, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        async for _ in provider.list_changes(Tokens(), "primary", cursor=None, window=naive):
            pass


# -- error mapping (PROTOCOLS §1.6) -----------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "cursor", "expected"),
    [
        (403, google_error(403, "rateLimitExceeded"), None, RateLimited),
        (403, google_error(403, "userRateLimitExceeded"), None, RateLimited),
        (403, google_error(403, "quotaExceeded"), None, RateLimited),
        (429, google_error(429, "rateLimitExceeded"), None, RateLimited),
        (429, None, None, RateLimited),
        (403, google_error(403, "insufficientPermissions"), None, AuthRevoked),
        (403, google_error(403, "forbidden"), None, Rejected),
        (410, google_error(410, "fullSyncRequired"), "sync-1", CursorExpired),
        (410, google_error(410, "fullSyncRequired"), None, Rejected),
        (404, google_error(404, "notFound"), None, NotFound),
        (400, google_error(400, "syncTokenWithRequestRestrictions"), "sync-1", Rejected),
        (400, google_error(400, "timeRangeEmpty"), None, Rejected),
        (409, google_error(409, "conflict"), None, Rejected),
        (408, None, None, Transient),
        (500, google_error(500, "backendError"), None, Transient),
        (502, None, None, Transient),
        (503, None, "sync-1", Transient),
    ],
)
async def test_error_mapping(
    status: int, body: dict[str, Any] | None, cursor: str | None, expected: type[ProviderError]
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if body is None:
            return httpx.Response(status, text="<html>oops</html>")
        return httpx.Response(status, json=body)

    provider, _ = make(handler)
    with pytest.raises(ProviderError) as info:
        await collect(provider, cursor=cursor)
    assert type(info.value) is expected
    assert info.value.status == status
    assert "sync-1" not in str(info.value)  # query strings stay out of messages


async def test_rate_limit_retry_after_seconds_and_http_date() -> None:
    answers = iter(
        [
            httpx.Response(
                429, headers={"Retry-After": "2"}, json=google_error(429, "rateLimitExceeded")
            ),
            httpx.Response(
                403,
                headers={"Retry-After": "Mon, 02 Nov 2026 09:01:00 GMT"},
                json=google_error(403, "userRateLimitExceeded"),
            ),
            httpx.Response(403, json=google_error(403, "quotaExceeded")),
        ]
    )
    provider, _ = make(lambda r: next(answers))
    delays = []
    for _ in range(3):
        with pytest.raises(RateLimited) as info:
            await collect(provider)
        delays.append(info.value.retry_after)
    assert delays == [timedelta(seconds=2), timedelta(seconds=60), None]


async def test_401_forces_one_refresh_then_succeeds() -> None:
    auths: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        auths.append(request.headers["Authorization"])
        if request.headers["Authorization"] == "Bearer at-0":
            return httpx.Response(401, json=google_error(401, "authError", "Invalid Credentials"))
        return httpx.Response(200, json={"items": [], "nextSyncToken": "s"})

    provider, _ = make(handler)
    result = await collect(provider)
    assert auths == ["Bearer at-0", "Bearer at-1"]
    assert result[-1].next_cursor == "s"


async def test_401_twice_is_auth_revoked() -> None:
    provider, _ = make(lambda r: httpx.Response(401, json=google_error(401, "authError")))
    with pytest.raises(AuthRevoked):
        await collect(provider)


@pytest.mark.parametrize(
    "exc", [httpx.ReadTimeout("t"), httpx.ConnectError("c"), httpx.RemoteProtocolError("p")]
)
async def test_transport_failures_are_transient(exc: Exception) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    provider, _ = make(handler)
    with pytest.raises(Transient):
        await collect(provider)


@pytest.mark.parametrize(
    "body",
    [
        {"items": []},  # neither nextPageToken nor nextSyncToken
        {"items": [], "nextPageToken": ""},
    ],
)
async def test_page_without_continuation_is_transient(body: dict[str, Any]) -> None:
    provider, _ = make(lambda r: httpx.Response(200, json=body))
    with pytest.raises(Transient):
        await collect(provider)


async def test_page_token_that_does_not_advance_is_transient() -> None:
    provider, _ = make(lambda r: httpx.Response(200, json={"items": [], "nextPageToken": "same"}))
    with pytest.raises(Transient):
        await collect(provider)


async def test_non_json_200_is_transient() -> None:
    provider, _ = make(lambda r: httpx.Response(200, text="<html>proxy</html>"))
    with pytest.raises(Transient):
        await collect(provider)


# -- normalization (PROTOCOLS §1.3) ------------------------------------------------------------


def test_normalize_full_event() -> None:
    item: dict[str, Any] = {
        "kind": "calendar#event",
        "id": "abc_20261103T090000Z",
        "status": "tentative",
        "summary": "Standup",
        "iCalUID": "abc@google.com",
        "recurringEventId": "abc",
        "organizer": {"email": "org@example.com", "displayName": "Org"},
        "start": {"dateTime": "2026-11-03T10:00:00+01:00", "timeZone": "Europe/Paris"},
        "end": {"dateTime": "2026-11-03T10:15:00+01:00", "timeZone": "Europe/Paris"},
        "attendees": [
            {"email": "org@example.com", "organizer": True, "responseStatus": "accepted"},
            {
                "email": "me@example.com",
                "self": True,
                "displayName": "Me",
                "responseStatus": "needsAction",
            },
            {
                "email": "room@resource.calendar.google.com",
                "resource": True,
                "responseStatus": "declined",
            },
            {"email": "x@example.com", "responseStatus": "tentative"},
            {"email": "y@example.com", "responseStatus": "somethingNew"},
        ],
    }
    event = normalize_item(item, "America/New_York")
    assert isinstance(event, RemoteEvent)
    assert event.raw is item
    assert event.start_time == datetime(2026, 11, 3, 9, 0, tzinfo=UTC)
    assert event.end_time == datetime(2026, 11, 3, 9, 15, tzinfo=UTC)
    assert event.start_time.tzinfo is UTC
    assert not event.is_all_day
    assert event.status == "tentative"
    assert event.title == "Standup"
    assert event.ical_uid == "abc@google.com"
    assert event.recurring_event_id == "abc"
    assert event.organizer_email == "org@example.com"
    assert [a.response_status for a in event.attendees] == [
        "accepted",
        "needs_action",
        "declined",
        "tentative",
        "needs_action",
    ]
    assert event.attendees[0].is_organizer and not event.attendees[0].is_self
    assert event.attendees[1].is_self and event.attendees[1].name == "Me"
    assert event.attendees[2].is_resource
    assert event.meeting_url is None


def test_normalize_datetime_without_offset_uses_time_zone() -> None:
    item = {
        "id": "e1",
        "start": {"dateTime": "2026-07-01T09:00:00", "timeZone": "America/New_York"},
        "end": {"dateTime": "2026-07-01T10:00:00"},  # no zone: falls back to the calendar's
    }
    event = normalize_item(item, "America/Chicago")
    assert isinstance(event, RemoteEvent)
    assert event.start_time == datetime(2026, 7, 1, 13, 0, tzinfo=UTC)  # EDT, UTC-4
    assert event.end_time == datetime(2026, 7, 1, 15, 0, tzinfo=UTC)  # CDT, UTC-5


def test_normalize_end_before_start_is_clamped() -> None:
    item = timed("e2", "2026-11-03T10:00:00Z", "2026-11-03T09:00:00Z")
    event = normalize_item(item, None)
    assert isinstance(event, RemoteEvent)
    assert event.end_time == event.start_time


def test_normalize_all_day_uses_calendar_zone_and_exclusive_end() -> None:
    item = {"id": "d1", "start": {"date": "2026-11-03"}, "end": {"date": "2026-11-04"}}
    event = normalize_item(item, "Asia/Tokyo")
    assert isinstance(event, RemoteEvent)
    assert event.is_all_day
    assert event.start_time == datetime(2026, 11, 2, 15, 0, tzinfo=UTC)
    assert event.end_time == datetime(2026, 11, 3, 15, 0, tzinfo=UTC)
    utc_event = normalize_item(item, None)
    assert isinstance(utc_event, RemoteEvent)
    assert utc_event.start_time == datetime(2026, 11, 3, tzinfo=UTC)


def test_cancelled_stub_is_a_deletion_with_raw() -> None:
    stub = {"id": "x_20261103", "status": "cancelled", "recurringEventId": "x"}
    change = normalize_item(stub, "UTC")
    assert change == RemoteDeletion(platform_id="x_20261103", raw=stub)


async def test_malformed_items_are_skipped_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    items: list[Any] = [
        {
            "start": {"dateTime": "2026-11-03T10:00:00Z"},
            "end": {"dateTime": "2026-11-03T11:00:00Z"},
        },
        {
            "id": "bad-time",
            "summary": "Secret board meeting",
            "start": {"dateTime": "soon"},
            "end": {},
        },
        {
            "id": "no-zone",
            "start": {"dateTime": "2026-11-03T10:00:00"},
            "end": {"dateTime": "2026-11-03T11:00:00"},
        },
        {
            "id": "bad-zone",
            "start": {"date": "2026-11-03", "timeZone": "Mars/Olympus"},
            "end": {"date": "2026-11-04"},
        },
        "not an object",
        timed("good", "2026-11-03T10:00:00Z", "2026-11-03T11:00:00Z"),
    ]
    provider, _ = make(lambda r: httpx.Response(200, json={"items": items, "nextSyncToken": "s"}))
    with caplog.at_level(logging.WARNING, logger="showup.providers.google_normalize"):
        (page,) = await collect(provider)
    assert [e.platform_id for e in page.upserts] == ["good"]
    assert len(caplog.records) == 5
    assert "Secret board meeting" not in caplog.text
    assert "bad-time" in caplog.text


def test_odd_attendee_fields_do_not_break_the_event() -> None:
    item = {
        **timed("odd", "2026-11-03T10:00:00Z", "2026-11-03T11:00:00Z"),
        "attendees": [
            {"email": {"not": "a string"}, "displayName": ["x"], "responseStatus": 3},
            "not an object",
        ],
    }
    event = normalize_item(item, None)
    assert isinstance(event, RemoteEvent)
    (attendee,) = event.attendees
    assert attendee.email is None and attendee.name is None
    assert attendee.response_status == "needs_action"


def test_attendees_are_read_the_same_from_the_cache() -> None:
    from showup.providers import google_normalize

    def people(*nodes: dict[str, Any]) -> tuple[Any, ...]:
        item = {
            **timed("p", "2026-11-03T10:00:00Z", "2026-11-03T11:00:00Z"),
            "attendees": list(nodes),
        }
        event = normalize_item(item, None)
        assert isinstance(event, RemoteEvent)
        return event.attendees

    ann = {"email": "ann@example.com", "displayName": "Ann", "responseStatus": "accepted"}
    first = people(ann, {**ann, "organizer": True, "self": 1})
    again = people(dict(ann), {**ann, "organizer": 1, "self": True})  # equal keys, other types
    assert first == again
    assert first[0].response_status == "accepted" and not first[0].is_organizer
    assert first[1].is_organizer and first[1].is_self
    # Another answer, or a non-string where a string belongs, is another attendee.
    (declined,) = people({**ann, "responseStatus": "declined"})
    assert declined.response_status == "declined"
    (odd,) = people({**ann, "displayName": 7})
    assert odd.name is None and odd.email == "ann@example.com"
    # Bounded: a calendar of many distinct people does not grow the cache without end.
    for i in range(google_normalize._SEEN_MAX + 10):
        people({"email": f"p{i}@example.com"})
    assert len(google_normalize._SEEN) <= google_normalize._SEEN_MAX
    assert people(ann) == first[:1]
