"""The provider contract suite (DESIGN "One contract suite per protocol").

Every :class:`~showup.providers.base.CalendarProvider` passes these tests against its
emulator. They speak only domain terms: events are compared by ``(title, start, end)``
and deletions by the platform ids an earlier sync reported, never by provider ids or
wire shapes, so the same assertions hold for Google and Microsoft.

To plug a provider in, subclass :class:`ProviderContract` as ``Test<Name>Contract`` and
give it a ``harness`` fixture yielding a :class:`Harness`, whose ``backend`` implements
:class:`Backend` over that provider's fake world (see ``test_google_contract.py``).

Conventions the backend must follow:

* the clock is a :class:`FakeClock` shared by the world and the test; nothing sleeps;
* the calendar's owner lives in ``Harness.time_zone`` (choose one with a UTC offset, so
  all-day handling is really tested);
* ``Backend.create_event`` takes the fake world's input format (a subset of the Google
  event resource, PROTOCOLS §1.3: ``summary``, ``start``/``end`` with ``dateTime`` +
  ``timeZone`` or ``date``, ``recurrence``, ``attendees``, ``location``…) and returns a
  handle the other mutations accept;
* the provider is built with a small page size (≤ 5) so that every test pages.
"""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol
from zoneinfo import ZoneInfo

import pytest

from showup.clock import FakeClock
from showup.providers.base import (
    AccessToken,
    CalendarProvider,
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
    RateLimited,
    Transient,
)

FaultKind = Literal["rate_limit", "server_error", "token_server_error"]
Occ = tuple[str | None, datetime, datetime]  # (title, start UTC, end UTC)


class CachingTokenSource:
    """A :class:`~showup.providers.base.TokenSource` for tests.

    Refreshes only when it has no token or is forced, never on its own clock reading: a
    test can let the access token expire at the provider and watch the adapter's 401 →
    ``force=True`` path. Stores rotated refresh tokens as the real one must (§2.1).
    """

    def __init__(self, provider: CalendarProvider, creds: OAuthCredentials) -> None:
        self.provider = provider
        self.creds = creds
        self.current: AccessToken | None = None
        self.refreshes = 0
        self.forced = 0

    async def __call__(self, force: bool = False) -> str:
        if force:
            self.forced += 1
        if force or self.current is None:
            token = await self.provider.refresh_access_token(self.creds)
            if token.rotated_refresh_token:
                self.creds = replace(self.creds, refresh_token=token.rotated_refresh_token)
            self.current = token
            self.refreshes += 1
        return self.current.token


class Backend(Protocol):
    """Mutations of the provider's fake world, for one calendar user."""

    def create_event(self, event: dict[str, Any]) -> str:
        """Store an event or series; returns its handle."""
        ...

    def update_event(self, handle: str, patch: dict[str, Any]) -> None: ...

    def move_event(self, handle: str, start: datetime, end: datetime | None = None) -> None:
        """Move an event (or, by instance handle, one occurrence); end keeps the duration."""
        ...

    def cancel_event(self, handle: str) -> None:
        """Cancel an event, a series, or (by instance handle) one occurrence."""
        ...

    def instance(self, series: str, original_start: datetime) -> str:
        """The handle of one occurrence of ``series`` by its original start."""
        ...

    def expire_cursors(self) -> None:
        """Make every sync cursor issued so far unusable."""
        ...

    def revoke(self) -> None:
        """Revoke the user's grant (refresh token and its access tokens)."""
        ...

    def expire_access_tokens(self) -> None:
        """Move the shared clock past the access tokens' lifetime."""
        ...

    def fail_next(self, kind: FaultKind, *, retry_after: timedelta | None = None) -> None:
        """Make the next events-list (or token) request fail once."""
        ...


@dataclass
class Harness:
    provider: CalendarProvider
    tokens: CachingTokenSource
    backend: Backend
    clock: FakeClock
    calendar_id: str  # what to pass for the user's main calendar ("primary" on Google)
    owner_email: str
    time_zone: str
    missing_calendar_id: str  # an id the provider answers NotFound for
    # The emulator produces empty non-last pages (PROTOCOLS §1.2/§2.2); assert we saw one.
    has_empty_pages: bool = True
    # Incremental rounds report exactly what changed (Google); Graph may replay (§2.2).
    exact_incremental: bool = True
    # get_calendar reports the owner's zone (Google); Graph has it only in mailboxSettings,
    # which needs another scope, so None is allowed there.
    time_zone_known: bool = True
    window: SyncWindow = field(init=False)

    def __post_init__(self) -> None:
        now = self.clock.now()
        self.window = SyncWindow(start=now - timedelta(days=7), end=now + timedelta(days=28))


@dataclass
class Round:
    pages: list[ChangePage]
    upserts: list[RemoteEvent]
    deletions: list[RemoteDeletion]
    cursor: str

    def occurrences(self) -> set[Occ]:
        return {occ(e) for e in self.upserts}

    def by_title(self) -> dict[str | None, list[RemoteEvent]]:
        out: dict[str | None, list[RemoteEvent]] = {}
        for event in self.upserts:
            out.setdefault(event.title, []).append(event)
        return out


def occ(event: RemoteEvent) -> Occ:
    return (event.title, event.start_time, event.end_time)


async def sync(h: Harness, cursor: str | None = None) -> Round:
    """One whole round, checking the paging contract on the way."""
    pages = [
        page
        async for page in h.provider.list_changes(
            h.tokens, h.calendar_id, cursor=cursor, window=h.window
        )
    ]
    assert pages, "a round yields at least one page"
    *middle, last = pages
    assert last.is_last and last.next_cursor, "the last page carries the next cursor"
    for page in middle:
        assert not page.is_last and page.next_cursor is None, "only the last page ends a round"
    upserts = [e for p in pages for e in p.upserts]
    deletions = [d for p in pages for d in p.deletions]
    for event in upserts:
        assert event.start_time.tzinfo is not None and event.start_time.utcoffset() == timedelta(0)
        assert event.end_time.utcoffset() == timedelta(0)
        assert event.end_time >= event.start_time
        raw = event.raw if isinstance(event.raw, dict) else json.loads(event.raw.text)
        assert isinstance(raw, dict) and raw
    return Round(pages, upserts, deletions, last.next_cursor)


def converge(h: Harness, state: dict[str, Occ], change: Round) -> dict[str, Occ]:
    """Apply an incremental round to ``{platform_id: occurrence}`` as the sync engine would.

    Incremental rounds ignore the window (PROTOCOLS §1.2, §2.2), so occurrences outside it
    are dropped here, as the engine does.
    """
    out = dict(state)
    for deletion in change.deletions:
        out.pop(deletion.platform_id, None)
    for event in change.upserts:
        if event.end_time > h.window.start and event.start_time < h.window.end:
            out[event.platform_id] = occ(event)
        else:
            out.pop(event.platform_id, None)
    return out


def snapshot(change: Round) -> dict[str, Occ]:
    return {e.platform_id: occ(e) for e in change.upserts}


Wall = tuple[int, int, int, int, int]  # (year, month, day, hour, minute) in the owner's zone


def utc(year: int, month: int, day: int, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


def at(h: Harness, year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    """The UTC instant of a wall time in the owner's zone."""
    return datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(h.time_zone)).astimezone(UTC)


def single(h: Harness, title: str, start: Wall, minutes: int = 60) -> dict[str, Any]:
    """World input for a one-off event at a wall time in the owner's zone."""
    begin = datetime(*start)  # a wall time: the timeZone field gives its zone
    end = begin + timedelta(minutes=minutes)
    return {
        "summary": title,
        "start": {"dateTime": begin.isoformat(), "timeZone": h.time_zone},
        "end": {"dateTime": end.isoformat(), "timeZone": h.time_zone},
    }


def span(h: Harness, start: Wall, minutes: int = 60) -> tuple[datetime, datetime]:
    begin = at(h, *start)
    return begin, begin + timedelta(minutes=minutes)


class ProviderContract:
    """The tests. A subclass provides the ``harness`` fixture (see the module docstring).

    Dates: the shared clock starts on Monday 2026-11-02 09:00 UTC and the window is
    [now - 7 days, now + 28 days), i.e. 2026-10-26 09:00Z to 2026-11-30 09:00Z.
    """

    @pytest.fixture
    async def harness(self) -> AsyncIterator[Harness]:  # pragma: no cover - overridden
        raise NotImplementedError("subclasses provide the harness fixture")
        yield

    # -- calendars ----------------------------------------------------------------------------

    async def test_get_calendar_describes_the_owner(self, harness: Harness) -> None:
        info = await harness.provider.get_calendar(harness.tokens, harness.calendar_id)
        assert info.email == harness.owner_email
        assert info.platform_calendar_id
        if harness.time_zone_known:
            assert info.time_zone == harness.time_zone
        else:
            assert info.time_zone in (harness.time_zone, None)

    async def test_unknown_calendar_is_not_found(self, harness: Harness) -> None:
        with pytest.raises(NotFound):
            await harness.provider.get_calendar(harness.tokens, harness.missing_calendar_id)
        with pytest.raises(NotFound):
            async for _ in harness.provider.list_changes(
                harness.tokens, harness.missing_calendar_id, cursor=None, window=harness.window
            ):
                pass

    # -- full sync ----------------------------------------------------------------------------

    async def test_full_sync_returns_exactly_the_window(self, harness: Harness) -> None:
        h, b = harness, harness.backend
        b.create_event(single(h, "Standup", (2026, 11, 3, 10, 0), 30))
        b.create_event(single(h, "Past", (2026, 10, 20, 10, 0)))
        b.create_event(single(h, "Future", (2026, 12, 5, 10, 0)))
        b.create_event(  # overlaps the window's start: included
            {
                "summary": "Offsite",
                "start": {"dateTime": "2026-10-25T10:00:00Z"},
                "end": {"dateTime": "2026-10-27T10:00:00Z"},
            }
        )
        b.create_event(
            {"summary": "Holiday", "start": {"date": "2026-11-05"}, "end": {"date": "2026-11-06"}}
        )
        gone = b.create_event(single(h, "Called off", (2026, 11, 6, 10, 0)))
        b.cancel_event(gone)
        weekly = b.create_event(
            {
                **single(h, "Weekly", (2026, 11, 4, 15, 0)),
                "recurrence": ["RRULE:FREQ=WEEKLY;COUNT=8"],
            }
        )
        # Instances: Nov 4, 11, 18, 25 in the window; Dec 2 … after it.
        b.move_event(b.instance(weekly, at(h, 2026, 11, 11, 15, 0)), at(h, 2026, 11, 12, 16, 0))
        b.cancel_event(b.instance(weekly, at(h, 2026, 11, 18, 15, 0)))

        result = await sync(h)

        midnight_5th = at(h, 2026, 11, 5, 0, 0)
        assert result.occurrences() == {
            ("Standup", *span(h, (2026, 11, 3, 10, 0), 30)),
            ("Offsite", utc(2026, 10, 25, 10), utc(2026, 10, 27, 10)),
            ("Holiday", midnight_5th, at(h, 2026, 11, 6, 0, 0)),
            ("Weekly", *span(h, (2026, 11, 4, 15, 0))),
            ("Weekly", *span(h, (2026, 11, 12, 16, 0))),
            ("Weekly", *span(h, (2026, 11, 25, 15, 0))),
        }
        ids = [e.platform_id for e in result.upserts]
        assert len(ids) == len(set(ids)), "each occurrence once, with its own id"
        assert not {d.platform_id for d in result.deletions} & set(ids)
        by_title = result.by_title()
        (holiday,) = by_title["Holiday"]
        assert holiday.is_all_day
        (standup,) = by_title["Standup"]
        assert not standup.is_all_day
        assert standup.recurring_event_id is None
        series_ids = {e.recurring_event_id for e in by_title["Weekly"]}
        assert len(series_ids) == 1 and None not in series_ids

    async def test_instances_moved_across_the_window_edge(self, harness: Harness) -> None:
        """The window applies to an occurrence's current times, not its original ones."""
        h, b = harness, harness.backend
        weekly = b.create_event(
            {
                **single(h, "Weekly", (2026, 11, 25, 15, 0)),
                "recurrence": ["RRULE:FREQ=WEEKLY;COUNT=3"],
            }
        )
        # Nov 25 (in) moves out to Dec 1; Dec 2 (out) moves in to Nov 28; Dec 9 stays out.
        b.move_event(b.instance(weekly, at(h, 2026, 11, 25, 15, 0)), at(h, 2026, 12, 1, 15, 0))
        b.move_event(b.instance(weekly, at(h, 2026, 12, 2, 15, 0)), at(h, 2026, 11, 28, 9, 0))
        result = await sync(h)
        assert result.occurrences() == {("Weekly", *span(h, (2026, 11, 28, 9, 0)))}

    async def test_people_status_and_meeting_link(self, harness: Harness) -> None:
        h = harness
        h.backend.create_event(
            {
                **single(h, "Review", (2026, 11, 3, 14, 0)),
                "location": "https://zoom.us/j/1234567890",
                "attendees": [
                    {"email": h.owner_email, "responseStatus": "accepted"},
                    {
                        "email": "bob@partner.test",
                        "displayName": "Bob",
                        "responseStatus": "declined",
                    },
                    {"email": "carol@partner.test", "responseStatus": "tentative"},
                    {"email": "dan@partner.test"},
                ],
            }
        )
        (event,) = (await sync(h)).upserts
        assert event.organizer_email == h.owner_email
        assert event.meeting_url is not None and "zoom.us" in event.meeting_url
        assert event.meeting_platform
        people = {a.email: a for a in event.attendees}
        assert people["bob@partner.test"].response_status == "declined"
        assert people["bob@partner.test"].name == "Bob"
        assert people["carol@partner.test"].response_status == "tentative"
        assert people["dan@partner.test"].response_status == "needs_action"
        assert not people["dan@partner.test"].is_self
        assert event.ical_uid

    async def test_full_sync_of_an_empty_calendar(self, harness: Harness) -> None:
        result = await sync(harness)
        assert result.upserts == [] and result.deletions == []

    # -- paging -------------------------------------------------------------------------------

    async def test_paging_follows_short_and_empty_pages(self, harness: Harness) -> None:
        h = harness
        expected = set()
        for day in range(3, 20):
            h.backend.create_event(single(h, f"Day {day}", (2026, 11, day, 9, 0)))
            expected.add((f"Day {day}", *span(h, (2026, 11, day, 9, 0))))
        result = await sync(h)
        assert result.occurrences() == expected
        assert len(result.upserts) == len(expected)
        assert len(result.pages) > 2
        if h.has_empty_pages:
            assert any(not p.upserts and not p.deletions for p in result.pages[:-1])

    async def test_incremental_round_pages_too(self, harness: Harness) -> None:
        h, b = harness, harness.backend
        handles = [b.create_event(single(h, f"Day {d}", (2026, 11, d, 9, 0))) for d in range(3, 15)]
        first = await sync(h)
        for handle in handles:
            b.update_event(handle, {"summary": "renamed"})
        result = await sync(h, first.cursor)
        assert len(result.pages) > 1
        assert {e.title for e in result.upserts} == {"renamed"}
        assert len({e.platform_id for e in result.upserts}) == len(handles)

    # -- incremental --------------------------------------------------------------------------

    async def test_incremental_reports_edits_moves_and_cancellations(
        self, harness: Harness
    ) -> None:
        h, b = harness, harness.backend
        standup = b.create_event(single(h, "Standup", (2026, 11, 3, 10, 0)))
        one_on_one = b.create_event(single(h, "1:1", (2026, 11, 4, 11, 0)))
        doomed = b.create_event(single(h, "Doomed", (2026, 11, 5, 12, 0)))
        b.create_event(single(h, "Untouched", (2026, 11, 6, 13, 0)))
        weekly = b.create_event(
            {
                **single(h, "Weekly", (2026, 11, 4, 15, 0)),
                "recurrence": ["RRULE:FREQ=WEEKLY;COUNT=4"],
            }
        )
        first = await sync(h)
        ids = {occ(e): e.platform_id for e in first.upserts}

        b.update_event(standup, {"summary": "Standup (new name)"})
        b.move_event(one_on_one, at(h, 2026, 11, 10, 11, 0))
        b.cancel_event(doomed)
        b.create_event(single(h, "Fresh", (2026, 11, 7, 8, 0)))
        b.move_event(b.instance(weekly, at(h, 2026, 11, 25, 15, 0)), at(h, 2026, 11, 26, 15, 0))
        b.cancel_event(b.instance(weekly, at(h, 2026, 11, 4, 15, 0)))

        second = await sync(h, first.cursor)

        changed = {
            ("Standup (new name)", *span(h, (2026, 11, 3, 10, 0))),
            ("1:1", *span(h, (2026, 11, 10, 11, 0))),
            ("Fresh", *span(h, (2026, 11, 7, 8, 0))),
            ("Weekly", *span(h, (2026, 11, 26, 15, 0))),
        }
        gone = {
            ids[("Doomed", *span(h, (2026, 11, 5, 12, 0)))],
            ids[("Weekly", *span(h, (2026, 11, 4, 15, 0)))],
        }
        assert changed <= second.occurrences()
        assert gone <= {d.platform_id for d in second.deletions}
        assert not gone & {e.platform_id for e in second.upserts}
        # An edit or move keeps the occurrence's id: the engine updates, not replaces.
        assert ids[("Standup", *span(h, (2026, 11, 3, 10, 0)))] in {
            e.platform_id for e in second.upserts
        }
        moved_instance = ids[("Weekly", *span(h, (2026, 11, 25, 15, 0)))]
        assert any(
            e.platform_id == moved_instance and e.start_time == at(h, 2026, 11, 26, 15, 0)
            for e in second.upserts
        )
        if h.exact_incremental:
            assert second.occurrences() == changed
            assert {d.platform_id for d in second.deletions} == gone

        # Applying the round to the first state gives what a fresh full sync sees.
        assert converge(h, snapshot(first), second) == snapshot(await sync(h))

        third = await sync(h, second.cursor)
        if h.exact_incremental:
            assert third.upserts == [] and third.deletions == []

    async def test_incremental_after_series_wide_changes(self, harness: Harness) -> None:
        h, b = harness, harness.backend
        weekly = b.create_event(
            {
                **single(h, "Weekly", (2026, 11, 4, 15, 0)),
                "recurrence": ["RRULE:FREQ=WEEKLY;COUNT=3"],
            }
        )
        daily = b.create_event(
            {**single(h, "Daily", (2026, 11, 9, 8, 0)), "recurrence": ["RRULE:FREQ=DAILY;COUNT=3"]}
        )
        first = await sync(h)
        daily_ids = {e.platform_id for e in first.by_title()["Daily"]}
        assert len(daily_ids) == 3

        b.update_event(weekly, {"summary": "Weekly (renamed)"})
        b.cancel_event(daily)
        second = await sync(h)  # a full sync gives the truth to compare against
        assert second.occurrences() == {
            ("Weekly (renamed)", *span(h, (2026, 11, day, 15, 0))) for day in (4, 11, 18)
        }
        third = await sync(h, first.cursor)
        renamed = {e.platform_id for e in third.upserts if e.title == "Weekly (renamed)"}
        assert renamed == {e.platform_id for e in second.upserts}
        assert daily_ids <= {d.platform_id for d in third.deletions}
        assert converge(h, snapshot(first), third) == snapshot(second)

    async def test_moving_a_whole_series(self, harness: Harness) -> None:
        h, b = harness, harness.backend
        weekly = b.create_event(
            {
                **single(h, "Weekly", (2026, 11, 4, 15, 0)),
                "recurrence": ["RRULE:FREQ=WEEKLY;COUNT=3"],
            }
        )
        first = await sync(h)
        b.move_event(weekly, at(h, 2026, 11, 5, 10, 0))
        second = await sync(h, first.cursor)
        expected = {("Weekly", *span(h, (2026, 11, day, 10, 0))) for day in (5, 12, 19)}
        assert expected <= second.occurrences()
        # Occurrences that no longer exist are deleted unless re-sent under the same id.
        old_ids = {e.platform_id for e in first.upserts}
        live = {e.platform_id for e in second.upserts if occ(e) in expected}
        assert old_ids - live <= {d.platform_id for d in second.deletions}
        assert {occ(e) for e in second.upserts if e.platform_id in live} == expected
        assert converge(h, snapshot(first), second) == snapshot(await sync(h))

    async def test_incremental_without_changes_still_gives_a_cursor(self, harness: Harness) -> None:
        harness.backend.create_event(single(harness, "Standup", (2026, 11, 3, 10, 0)))
        first = await sync(harness)
        second = await sync(harness, first.cursor)
        assert second.cursor
        if harness.exact_incremental:
            assert second.upserts == [] and second.deletions == []

    async def test_expired_cursor_means_full_sync(self, harness: Harness) -> None:
        h = harness
        h.backend.create_event(single(h, "Standup", (2026, 11, 3, 10, 0)))
        first = await sync(h)
        h.backend.expire_cursors()
        with pytest.raises(CursorExpired):
            await sync(h, first.cursor)
        again = await sync(h)  # what the engine does next: a full sync without a cursor
        assert again.occurrences() == first.occurrences()

    # -- auth ---------------------------------------------------------------------------------

    async def test_expired_access_token_is_refreshed_transparently(self, harness: Harness) -> None:
        h = harness
        h.backend.create_event(single(h, "Standup", (2026, 11, 3, 10, 0)))
        await sync(h)
        assert (h.tokens.refreshes, h.tokens.forced) == (1, 0)
        h.backend.expire_access_tokens()
        result = await sync(h)
        assert len(result.upserts) == 1
        assert (h.tokens.refreshes, h.tokens.forced) == (2, 1)

    async def test_revoked_grant_is_auth_revoked(self, harness: Harness) -> None:
        h = harness
        await sync(h)  # holds a live access token now
        h.backend.revoke()
        with pytest.raises(AuthRevoked):
            await h.provider.refresh_access_token(h.tokens.creds)
        # With the cached access token: 401, forced refresh, invalid_grant.
        with pytest.raises(AuthRevoked):
            await sync(h)

    # -- faults -------------------------------------------------------------------------------

    async def test_rate_limit_carries_retry_after(self, harness: Harness) -> None:
        h = harness
        h.backend.create_event(single(h, "Standup", (2026, 11, 3, 10, 0)))
        h.backend.fail_next("rate_limit", retry_after=timedelta(seconds=2))
        with pytest.raises(RateLimited) as info:
            await sync(h)
        assert info.value.retry_after == timedelta(seconds=2)
        assert len((await sync(h)).upserts) == 1  # the adapter did not retry by itself

    async def test_server_error_is_transient(self, harness: Harness) -> None:
        h = harness
        h.backend.create_event(single(h, "Standup", (2026, 11, 3, 10, 0)))
        h.backend.fail_next("server_error")
        with pytest.raises(Transient):
            await sync(h)
        assert len((await sync(h)).upserts) == 1

    async def test_fault_in_the_middle_of_a_round(self, harness: Harness) -> None:
        h = harness
        for day in range(3, 15):
            h.backend.create_event(single(h, f"Day {day}", (2026, 11, day, 9, 0)))
        pages = h.provider.list_changes(h.tokens, h.calendar_id, cursor=None, window=h.window)
        first = await anext(pages)
        assert not first.is_last
        h.backend.fail_next("server_error")
        with pytest.raises(Transient):
            await anext(pages)
        assert len((await sync(h)).upserts) == 12

    async def test_token_endpoint_failure_is_transient(self, harness: Harness) -> None:
        harness.backend.fail_next("token_server_error")
        with pytest.raises(Transient):
            await harness.provider.refresh_access_token(harness.tokens.creds)
        await harness.provider.refresh_access_token(harness.tokens.creds)

    @pytest.mark.parametrize("seed", range(10))
    async def test_random_edits_converge(self, harness: Harness, seed: int) -> None:
        """Random edits, then an incremental round: applying it to the previous state must
        give exactly what a fresh full sync sees (the engine's convergence, in miniature)."""
        h, b = harness, harness.backend
        rng = random.Random(seed)
        singles: list[str] = []
        series: list[tuple[str, datetime]] = []  # (handle, first start)

        def wall() -> Wall:
            # Mostly inside the window, sometimes outside it on either side.
            return (
                2026,
                rng.choice([10, 11, 11, 11, 12]),
                rng.randint(1, 28),
                rng.randint(7, 18),
                0,
            )

        def edit() -> None:
            kind = rng.choice(["new", "new", "series", "rename", "move", "cancel", "instance"])
            if kind == "new" or not singles:
                singles.append(b.create_event(single(h, f"S{rng.randint(0, 99)}", wall())))
            elif kind == "series":
                day = rng.randint(3, 10)  # all instances stay well inside the window
                handle = b.create_event(
                    {
                        **single(h, f"R{day}", (2026, 11, day, 9, 0)),
                        "recurrence": ["RRULE:FREQ=WEEKLY;COUNT=2"],
                    }
                )
                series.append((handle, at(h, 2026, 11, day, 9, 0)))
            elif kind == "rename":
                b.update_event(rng.choice(singles), {"summary": f"S{rng.randint(0, 99)}"})
            elif kind == "move":
                b.move_event(rng.choice(singles), at(h, *wall()))
            elif kind == "cancel":
                b.cancel_event(singles.pop(rng.randrange(len(singles))))
            elif series:
                handle, first = rng.choice(series)
                instance = b.instance(handle, first + timedelta(weeks=rng.randint(0, 1)))
                if rng.random() < 0.5:
                    b.cancel_event(instance)
                else:
                    b.move_event(instance, first + timedelta(hours=rng.randint(1, 48)))

        for _ in range(5):
            edit()
        before = await sync(h)
        state, cursor = snapshot(before), before.cursor
        for _ in range(4):
            for _ in range(rng.randint(1, 6)):
                edit()
            change = await sync(h, cursor)
            state, cursor = converge(h, state, change), change.cursor
            assert state == snapshot(await sync(h))
