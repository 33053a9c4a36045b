"""The provider protocol and the domain types adapters speak.

An adapter turns one provider's wire format into these values. It receives its
``httpx.AsyncClient`` (DESIGN invariant 10) so tests plug the emulator in; it never
touches the database.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol, runtime_checkable

Platform = Literal["google_calendar", "microsoft_outlook"]
ResponseStatus = Literal["accepted", "declined", "tentative", "needs_action"]
EventStatus = Literal["confirmed", "tentative", "cancelled"]


@dataclass(frozen=True, slots=True)
class OAuthCredentials:
    client_id: str
    client_secret: str
    refresh_token: str
    oauth_tenant: str | None = None  # Microsoft: common / organizations / a tenant id


@dataclass(frozen=True, slots=True)
class AccessToken:
    token: str
    expires_at: datetime
    # A new refresh token returned by the provider (Microsoft rotates on every refresh).
    # The caller must store it before using the access token again.
    rotated_refresh_token: str | None = None


@dataclass(frozen=True, slots=True)
class Attendee:
    email: str | None
    name: str | None
    response_status: ResponseStatus
    is_organizer: bool = False
    is_self: bool = False
    is_resource: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "email": self.email,
            "name": self.name,
            "response_status": self.response_status,
            "is_organizer": self.is_organizer,
            "is_self": self.is_self,
            "is_resource": self.is_resource,
        }


@dataclass(frozen=True, slots=True)
class RawJSON:
    """A provider's event object kept as the JSON text it came in, not decoded into dicts.

    ``text`` is that object's compact JSON (the provider's keys, in the provider's order):
    what the ``raw`` column stores. ``stable`` is the same text without the provider's
    bookkeeping members (etag, update stamp, sequence): what the fingerprint hashes, so
    that they change nothing a user can see.
    """

    text: str
    stable: bytes


@dataclass(frozen=True, slots=True)
class RemoteEvent:
    """One live occurrence as the provider describes it, normalized."""

    platform_id: str
    start_time: datetime  # aware UTC
    end_time: datetime  # aware UTC, exclusive
    # The provider's object: decoded, or (Google's fast path) as its JSON text.
    raw: dict[str, Any] | RawJSON
    ical_uid: str | None = None
    recurring_event_id: str | None = None
    title: str | None = None
    is_all_day: bool = False
    status: EventStatus = "confirmed"
    organizer_email: str | None = None
    attendees: tuple[Attendee, ...] = ()
    meeting_url: str | None = None
    meeting_platform: str | None = None


@dataclass(frozen=True, slots=True)
class RemoteDeletion:
    """An occurrence the provider says is gone (cancelled or deleted)."""

    platform_id: str
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ChangePage:
    """One page of changes. ``next_cursor`` is set only on the last page of a round."""

    upserts: list[RemoteEvent]
    deletions: list[RemoteDeletion]
    next_cursor: str | None = None
    is_last: bool = False


@dataclass(frozen=True, slots=True)
class SyncWindow:
    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class CalendarInfo:
    platform_calendar_id: str  # the provider's real id ("primary" resolved)
    email: str | None  # the account / calendar owner's e-mail
    summary: str | None = None
    time_zone: str | None = None


class TokenSource(Protocol):
    """Gives an adapter a valid access token; ``force=True`` after a 401 refreshes it."""

    def __call__(self, force: bool = False) -> Awaitable[str]: ...


class CalendarProvider(Protocol):
    platform: Platform

    async def refresh_access_token(self, creds: OAuthCredentials) -> AccessToken:
        """Exchange the refresh token. Raises AuthRevoked on invalid_grant."""
        ...

    async def get_calendar(self, token: TokenSource, calendar_id: str) -> CalendarInfo:
        """Describe the calendar (``primary`` allowed). Raises NotFound."""
        ...

    def list_changes(
        self, token: TokenSource, calendar_id: str, *, cursor: str | None, window: SyncWindow
    ) -> AsyncIterator[ChangePage]:
        """Changes since ``cursor``; with ``cursor=None`` every occurrence overlapping
        ``window`` (a full sync). The last page carries the cursor for next time.
        Raises CursorExpired when the cursor is no longer accepted."""
        ...


@dataclass(frozen=True, slots=True)
class ChannelInfo:
    """A push channel the provider accepted (Google ``api#channel``, a Graph subscription).

    ``channel_id`` is the id we chose; ``resource_id`` is the provider's handle for it
    (Google ``resourceId``, a Graph subscription id), needed to stop it.
    """

    channel_id: str
    resource_id: str
    expiration: datetime  # aware UTC; the provider may grant less than asked


@runtime_checkable
class PushProvider(Protocol):
    """Optional: an adapter that can be told to notify us of changes (PROTOCOLS §1.5, §2.4).

    ``secret`` comes back with every notification (Google channel token, at most 256
    chars; Graph ``clientState``, at most 128) and is how the receiver knows it is real.
    Errors are the usual typed ones; stopping a channel the provider no longer knows raises
    NotFound.
    """

    async def watch(
        self,
        token: TokenSource,
        calendar_id: str,
        channel_id: str,
        address: str,
        secret: str,
        ttl: timedelta,
    ) -> ChannelInfo:
        """Open a channel delivering change notifications for ``calendar_id`` to
        ``address``, asking for ``ttl`` of life."""
        ...

    async def stop_channel(self, token: TokenSource, channel_id: str, resource_id: str) -> None:
        """Stop the channel; notifications may still trickle in for a moment."""
        ...
