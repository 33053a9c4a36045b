"""MicrosoftCalendarProvider delta rounds against MockTransport handlers (PROTOCOLS §2.2).

Whole-URL next/delta links followed as they are, the cursor guard (a stored delta link
never sends a token outside ``graph_url``), replays within a round, sparse occurrences and
their masters, and the Graph docs' own delta example replayed from the corpus.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from showup.providers.errors import CursorExpired, Rejected, Transient
from tests.conftest import corpus_path
from tests.providers.test_microsoft import (
    GRAPH,
    ME,
    WINDOW,
    Tokens,
    collect,
    graph_error,
    item,
    make,
    with_me,
)

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


async def test_replays_across_pages_are_given_once() -> None:
    a1 = {**item("a"), "@odata.etag": 'W/"1"'}
    a2 = {**item("a", subject="a2"), "@odata.etag": 'W/"2"'}
    tomb = {"id": "z", "@removed": {"reason": "deleted"}}
    pages = {
        None: {"value": [item("b"), a1, tomb], "@odata.nextLink": f"{GRAPH}/d?$skiptoken=1"},
        "1": {"value": [a1, tomb, item("b")], "@odata.nextLink": f"{GRAPH}/d?$skiptoken=2"},
        "2": {"value": [a2], "@odata.deltaLink": f"{GRAPH}/d?$deltatoken=3"},
    }

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=pages[request.url.params.get("$skiptoken")])

    provider, _ = make(with_me(handler))
    result = await collect(provider)
    assert [[e.title for e in p.upserts] for p in result] == [["b", "a"], [], ["a2"]]
    assert [[d.platform_id for d in p.deletions] for p in result] == [["z"], [], []]
