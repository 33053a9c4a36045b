"""Google Calendar API v3 adapter (PROTOCOLS §1).

Speaks domain terms only (DESIGN invariant 9): OAuth refresh → :class:`AccessToken`,
``calendars.get`` → :class:`CalendarInfo`, ``events.list`` with ``singleEvents=true`` and
sync tokens → :class:`ChangePage` values, and every failure → a typed
:class:`~showup.providers.errors.ProviderError`:

=====================================================  ======================
Google answer (PROTOCOLS §1.1, §1.6)                   raised
=====================================================  ======================
401 on an API call                                     refresh once, resend;
                                                       again 401 → AuthRevoked
token endpoint ``invalid_grant`` / ``invalid_client``  AuthRevoked
/ ``unauthorized_client`` / ``deleted_client``
403 ``insufficientPermissions`` (scope not granted)    AuthRevoked
429, or 403 ``rateLimitExceeded`` /                    RateLimited(retry_after)
``userRateLimitExceeded`` / ``quotaExceeded`` /
``dailyLimitExceeded``
410 on a request that carried a ``syncToken``          CursorExpired
404, 410 ``deleted``                                   NotFound
408, 5xx, timeouts, connection failures, non-JSON 2xx  Transient
any other 4xx (e.g. 400 ``syncTokenWithRequest…``)     Rejected
=====================================================  ======================

Push (PROTOCOLS §1.5): ``events.watch`` → :class:`ChannelInfo` and ``channels.stop``
use the same mapping (a channel Google no longer knows → NotFound).

The adapter never retries (the sync engine owns backoff) except for the one 401 refresh,
never builds its own HTTP client (DESIGN invariant 10) and never touches the database.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import httpx

from showup.clock import Clock, SystemClock
from showup.providers.base import (
    AccessToken,
    CalendarInfo,
    ChangePage,
    ChannelInfo,
    OAuthCredentials,
    Platform,
    SyncWindow,
    TokenSource,
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
from showup.providers.google_normalize import events_page
from showup.providers.http import (
    describe,
    error_payload,
    json_object,
    parse_retry_after,
    send,
    send_authorized,
)

# Token-endpoint errors after which only a new consent helps (PROTOCOLS §1.1). The client
# ones mean the tenant's OAuth app is gone or disabled: the same "reconnect" outcome.
_OAUTH_REVOKED = frozenset(
    {"invalid_grant", "invalid_client", "unauthorized_client", "deleted_client"}
)
# usageLimits reasons that mean "back off" whether sent with 403 or 429 (PROTOCOLS §1.6).
_RATE_REASONS = frozenset(
    {"rateLimitExceeded", "userRateLimitExceeded", "quotaExceeded", "dailyLimitExceeded"}
)
# The token was accepted but lacks the calendar scope: the user has to consent again.
_SCOPE_REASONS = frozenset({"insufficientPermissions"})
# Google's documented default is 3599 s; used only if a 200 forgets expires_in.
_DEFAULT_EXPIRES_IN = 3599


class GoogleCalendarProvider:
    """:class:`~showup.providers.base.CalendarProvider` for Google Calendar.

    ``api_url`` is the Calendar v3 root (``https://www.googleapis.com/calendar/v3``) and
    ``token_url`` the OAuth token endpoint (``https://oauth2.googleapis.com/token``), both
    without a trailing slash; tests point them at the emulator. ``clock`` dates the access
    token's expiry and HTTP-date ``Retry-After`` values (DESIGN invariant 6).
    """

    platform: Platform = "google_calendar"

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        api_url: str,
        token_url: str,
        page_size: int = 250,
        clock: Clock | None = None,
    ) -> None:
        if not 1 <= page_size <= 2500:  # events.list maxResults limits, PROTOCOLS §1.2
            raise ValueError("page_size must be between 1 and 2500")
        self._http = http
        self._api_url = api_url.rstrip("/")
        self._token_url = token_url
        self._page_size = page_size
        self._clock: Clock = clock or SystemClock()

    # -- OAuth (PROTOCOLS §1.1) -------------------------------------------------------------

    async def refresh_access_token(self, creds: OAuthCredentials) -> AccessToken:
        """Exchange the refresh token for an access token (form POST, refresh grant).

        Raises AuthRevoked on ``invalid_grant`` and the dead-client errors, RateLimited on
        429, Transient on 5xx/timeouts, Rejected on other refusals. Google normally keeps the
        refresh token; if it ever sends a different one it is returned for storing.
        """
        request = self._http.build_request(
            "POST",
            self._token_url,
            data={
                "grant_type": "refresh_token",
                "refresh_token": creds.refresh_token,
                "client_id": creds.client_id,
                "client_secret": creds.client_secret,
            },
            headers={"Accept": "application/json"},
        )
        response = await send(self._http, request)
        if response.status_code != 200:
            raise self._oauth_error(response)
        body = json_object(response)
        access = body.get("access_token")
        if not isinstance(access, str) or not access:
            raise Transient("token response has no access_token", status=200)
        expires_in = body.get("expires_in", _DEFAULT_EXPIRES_IN)
        if not isinstance(expires_in, int | float) or expires_in <= 0:
            expires_in = _DEFAULT_EXPIRES_IN
        rotated = body.get("refresh_token")
        return AccessToken(
            token=access,
            expires_at=self._clock.now() + timedelta(seconds=expires_in),
            rotated_refresh_token=(
                rotated if isinstance(rotated, str) and rotated != creds.refresh_token else None
            ),
        )

    def _oauth_error(self, response: httpx.Response) -> ProviderError:
        status = response.status_code
        payload = error_payload(response)
        error = payload.get("error")
        code = error if isinstance(error, str) else ""
        description = payload.get("error_description")
        detail = f"{code}: {description}" if description else code or f"HTTP {status}"
        if code in _OAUTH_REVOKED:
            return AuthRevoked(f"refresh refused ({detail})", status=status)
        if status == 429:
            return RateLimited(
                f"token endpoint rate limited ({detail})",
                retry_after=self._retry_after(response),
                status=status,
            )
        if status >= 500 or status == 408 or code == "temporarily_unavailable":
            return Transient(f"token endpoint failed ({detail})", status=status)
        return Rejected(f"token endpoint refused the refresh ({detail})", status=status)

    # -- Calendar API (PROTOCOLS §1.2, §1.4) -------------------------------------------------

    async def get_calendar(self, token: TokenSource, calendar_id: str) -> CalendarInfo:
        """``GET /calendars/{calendarId}`` (``primary`` allowed). Raises NotFound.

        The primary calendar's id is its owner's e-mail, so ``email`` is the resolved id when
        it is an address; group, resource and holiday calendars (``…calendar.google.com``)
        have no owner address and get None.
        """
        url = f"{self._api_url}/calendars/{_path_segment(calendar_id)}"
        response = await send_authorized(self._http, token, "GET", url)
        if response.status_code != 200:
            raise self._api_error(response, cursor_sent=False)
        body = json_object(response)
        resolved = body.get("id")
        if not isinstance(resolved, str) or not resolved:
            raise Transient(f"calendar without id ({describe(response.request)})", status=200)
        summary = body.get("summary")
        time_zone = body.get("timeZone")
        return CalendarInfo(
            platform_calendar_id=resolved,
            email=_owner_email(resolved),
            summary=summary if isinstance(summary, str) else None,
            time_zone=time_zone if isinstance(time_zone, str) else None,
        )

    async def list_changes(
        self, token: TokenSource, calendar_id: str, *, cursor: str | None, window: SyncWindow
    ) -> AsyncIterator[ChangePage]:
        """Pages of ``events.list`` with ``singleEvents=true`` (series expanded).

        Full sync (``cursor=None``): every occurrence overlapping ``window``. Incremental:
        ``syncToken=cursor`` and nothing that Google forbids next to it (no
        timeMin/timeMax/showDeleted, PROTOCOLS §1.2), so the window does not apply and
        changes outside it come back too. Either way the identical query is repeated with
        ``pageToken`` until a page carries ``nextSyncToken``; that page is ``is_last`` with
        the token as ``next_cursor``. Pages may be empty. Raises CursorExpired on 410.
        """
        params: dict[str, str | int] = {"singleEvents": "true", "maxResults": self._page_size}
        if cursor is None:
            params["timeMin"] = _rfc3339(window.start)
            params["timeMax"] = _rfc3339(window.end)
            if window.end <= window.start:
                raise ValueError("sync window end must be after its start")
        else:
            params["syncToken"] = cursor
        url = f"{self._api_url}/calendars/{_path_segment(calendar_id)}/events"
        page_token: str | None = None
        while True:
            query = params if page_token is None else {**params, "pageToken": page_token}
            response = await send_authorized(self._http, token, "GET", url, params=query)
            if response.status_code != 200:
                raise self._api_error(response, cursor_sent=cursor is not None)
            try:
                page = events_page(response.content)
            except ValueError as exc:
                raise Transient(
                    f"events page is not a JSON object ({describe(response.request)})",
                    status=response.status_code,
                ) from exc
            next_page = page.next_page_token
            if next_page is not None:
                # A page token that repeats would loop forever; only a broken server does it.
                if next_page == page_token:
                    raise Transient(f"nextPageToken did not advance ({describe(response.request)})")
                yield ChangePage(upserts=page.upserts, deletions=page.deletions)
                page_token = next_page
                continue
            if page.next_sync_token is None:
                raise Transient(
                    f"events page has neither nextPageToken nor nextSyncToken "
                    f"({describe(response.request)})",
                    status=200,
                )
            yield ChangePage(
                upserts=page.upserts,
                deletions=page.deletions,
                next_cursor=page.next_sync_token,
                is_last=True,
            )
            return

    # -- Push channels (PROTOCOLS §1.5) --------------------------------------------------------

    async def watch(
        self,
        token: TokenSource,
        calendar_id: str,
        channel_id: str,
        address: str,
        secret: str,
        ttl: timedelta,
    ) -> ChannelInfo:
        """``POST /calendars/{calendarId}/events/watch``: a ``web_hook`` channel to ``address``.

        ``channel_id`` (at most 64 chars) must be new: Google refuses a live one, so a
        renewal always brings a new id. ``secret`` (at most 256 chars) is sent as the channel
        token and comes back as ``X-Goog-Channel-Token`` on every notification. ``ttl`` goes
        as ``params.ttl``; Google may grant less (the maximum is not published), so the
        returned expiration (Unix ms) is the truth, and ``now + ttl`` only if it is missing.
        The ``sync`` message may reach ``address`` before this call returns.
        """
        if not 0 < len(channel_id) <= 64:
            raise ValueError("channel id must be 1 to 64 characters")
        if len(secret) > 256:
            raise ValueError("channel token must be at most 256 characters")
        seconds = max(1, int(ttl.total_seconds()))
        url = f"{self._api_url}/calendars/{_path_segment(calendar_id)}/events/watch"
        payload = {
            "id": channel_id,
            "type": "web_hook",
            "address": address,
            "token": secret,
            "params": {"ttl": str(seconds)},
        }
        response = await send_authorized(self._http, token, "POST", url, json_body=payload)
        if response.status_code != 200:
            raise self._api_error(response, cursor_sent=False)
        body = json_object(response)
        resource_id = body.get("resourceId")
        if not isinstance(resource_id, str) or not resource_id:
            raise Transient(
                f"channel without resourceId ({describe(response.request)})", status=200
            )
        expiration = _ms_datetime(body.get("expiration"))
        return ChannelInfo(
            channel_id=channel_id,
            resource_id=resource_id,
            expiration=expiration or self._clock.now() + timedelta(seconds=seconds),
        )

    async def stop_channel(self, token: TokenSource, channel_id: str, resource_id: str) -> None:
        """``POST /channels/stop`` with ``{id, resourceId}``; an empty answer (§1.5).

        Only the user and OAuth client that opened the channel may stop it; Google answers
        404 otherwise and for channels it no longer knows (NotFound).
        """
        url = f"{self._api_url}/channels/stop"
        payload = {"id": channel_id, "resourceId": resource_id}
        response = await send_authorized(self._http, token, "POST", url, json_body=payload)
        if response.status_code not in (200, 204):
            raise self._api_error(response, cursor_sent=False)

    def _api_error(self, response: httpx.Response, *, cursor_sent: bool) -> ProviderError:
        """Map a non-200 Calendar API answer to a typed error (PROTOCOLS §1.6)."""
        status = response.status_code
        reasons, message = _google_error(response)
        detail = f"{describe(response.request)} → {status}"
        if reasons:
            detail += f" {','.join(sorted(reasons))}"
        if message:
            detail += f": {message}"
        if status == 429 or (status == 403 and reasons & _RATE_REASONS):
            return RateLimited(detail, retry_after=self._retry_after(response), status=status)
        if status == 401 or (status == 403 and reasons & _SCOPE_REASONS):
            return AuthRevoked(detail, status=status)
        if status == 404 or (status == 410 and "deleted" in reasons):
            return NotFound(detail, status=status)
        if status == 410 and cursor_sent:
            return CursorExpired(detail, status=status)
        if status >= 500 or status == 408:
            return Transient(detail, status=status)
        if 400 <= status < 500:
            return Rejected(detail, status=status)
        return Transient(f"unexpected answer: {detail}", status=status)

    def _retry_after(self, response: httpx.Response) -> timedelta | None:
        return parse_retry_after(response.headers.get("Retry-After"), now=self._clock.now())


def _google_error(response: httpx.Response) -> tuple[frozenset[str], str | None]:
    """``(reasons, message)`` from Google's error body (PROTOCOLS §1.6 shape)."""
    error = error_payload(response).get("error")
    if not isinstance(error, dict):
        return frozenset(), None
    errors = error.get("errors")
    reasons = frozenset(
        e["reason"]
        for e in (errors if isinstance(errors, list) else ())
        if isinstance(e, dict) and isinstance(e.get("reason"), str)
    )
    message = error.get("message")
    return reasons, message if isinstance(message, str) else None


def _path_segment(calendar_id: str) -> str:
    # Calendar ids are e-mail addresses or "…@group.calendar.google.com": '@', '#', '/'
    # must not leak into the path structure, so encode everything but unreserved chars.
    if not calendar_id:
        raise ValueError("calendar_id must not be empty")
    return quote(calendar_id, safe="")


def _rfc3339(value: datetime) -> str:
    # timeMin/timeMax need a mandatory offset (PROTOCOLS §1.2); refuse naive datetimes
    # rather than guess their zone.
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("sync window datetimes must be timezone-aware")
    return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _ms_datetime(value: object) -> datetime | None:
    """A Unix-milliseconds value (Google sends it as a string) as aware UTC, else None."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    try:
        millis = int(value)
        return datetime.fromtimestamp(millis / 1000, UTC)
    except (ValueError, OverflowError, OSError):
        return None


def _owner_email(calendar_id: str) -> str | None:
    local, at, domain = calendar_id.rpartition("@")
    if not at or not local or "." not in domain:
        return None
    if domain.lower().endswith("calendar.google.com"):
        return None
    return calendar_id
