"""Microsoft Graph (Outlook calendar) adapter (PROTOCOLS §2).

Speaks domain terms only (DESIGN invariant 9): the v2.0 refresh grant → :class:`AccessToken`
(with the rotated refresh token, §2.1), ``/me`` + ``/me/calendar`` → :class:`CalendarInfo`,
``calendarView/delta`` rounds → :class:`ChangePage` values (§2.2), and every failure → a
typed :class:`~showup.providers.errors.ProviderError`:

======================================================  ======================
Graph / identity platform answer (PROTOCOLS §2.1, §2.5)  raised
======================================================  ======================
401 on an API call                                      refresh once, resend;
                                                        again 401 → AuthRevoked
token endpoint ``invalid_grant`` /                      AuthRevoked (with the
``interaction_required`` / ``consent_required`` /       AADSTS description)
``invalid_client`` / ``unauthorized_client``
403 ``ErrorAccessDenied`` (and kin)                     AuthRevoked
429 (API or token endpoint)                             RateLimited(retry_after)
410 (``SyncStateNotFound``, ``resyncRequired``, …),     CursorExpired
a sync-state code on any status, a stored cursor
that is not a Graph URL of ours
404 (``ErrorItemNotFound``, …)                          NotFound
408, 5xx, ``temporarily_unavailable``, timeouts,        Transient
connection failures, non-JSON 2xx
any other 4xx                                           Rejected
======================================================  ======================

Push (PROTOCOLS §2.4): subscriptions (create, PATCH renewal, DELETE) come from the
:class:`~showup.providers.microsoft_push.GraphSubscriptions` mixin, with the same mapping.

The cursor is the whole ``@odata.deltaLink`` URL (§2.2: "store the whole URL"). It is
called with the user's bearer token, so before any use it must be a URL under the
configured ``graph_url`` (same scheme, host, port and path prefix, no ``..``): a tampered
database value or a hostile ``nextLink`` never receives a token.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx

from showup.clock import Clock, SystemClock
from showup.providers.base import (
    AccessToken,
    CalendarInfo,
    ChangePage,
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
from showup.providers.http import (
    describe,
    error_payload,
    json_object,
    parse_retry_after,
    send,
    send_authorized,
)
from showup.providers.microsoft_normalize import normalize_items, sparse_master_id
from showup.providers.microsoft_push import GraphSubscriptions
from showup.providers.microsoft_zones import iana_name

SCOPE = "offline_access https://graph.microsoft.com/Calendars.Read"
DEFAULT_TENANT = "common"
# Token-endpoint errors after which only a new consent helps (PROTOCOLS §2.1).
_OAUTH_REVOKED = frozenset(
    {
        "invalid_grant",
        "interaction_required",
        "consent_required",
        "invalid_client",
        "unauthorized_client",
    }
)
# 403 codes meaning the grant no longer reaches the mailbox: the user must reconnect.
_ACCESS_DENIED = frozenset(
    {
        "ErrorAccessDenied",
        "AccessDenied",
        "Authorization_RequestDenied",
        "ErrorInsufficientPermissionsInAccessToken",
    }
)
_DEFAULT_EXPIRES_IN = 3599
_MAX_DESCRIPTION = 300
# Access token digest → the signed-in user's address, so that incremental rounds do not
# ask ``/me`` again for every poll while the token (about an hour) lasts.
_OWNER_CACHE_SIZE = 4096


class MicrosoftCalendarProvider(GraphSubscriptions):
    """:class:`~showup.providers.base.CalendarProvider` for Outlook calendars via Graph.

    ``graph_url`` is the Graph root (``https://graph.microsoft.com/v1.0``) and ``login_url``
    the identity platform (``https://login.microsoftonline.com``), both without a trailing
    slash; tests point them at the emulator. ``calendar_id`` is ``primary`` (the default
    calendar, the only one v1.0 delta covers, §2.2) or a ``/me/calendars`` id. ``clock``
    dates token expiry and HTTP-date ``Retry-After`` values (DESIGN invariant 6).
    """

    platform: Platform = "microsoft_outlook"

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        graph_url: str,
        login_url: str,
        page_size: int = 100,
        clock: Clock | None = None,
    ) -> None:
        if not 1 <= page_size <= 1000:  # the maximum is undocumented (§2.2); stay modest
            raise ValueError("page_size must be between 1 and 1000")
        self._http = http
        self._graph_url = graph_url.rstrip("/")
        self._graph = httpx.URL(self._graph_url + "/")
        self._login_url = login_url.rstrip("/")
        self._page_size = page_size
        self._clock: Clock = clock or SystemClock()
        self._owners: OrderedDict[str, str | None] = OrderedDict()

    # -- OAuth (PROTOCOLS §2.1) -------------------------------------------------------------

    def token_url(self, tenant: str | None) -> str:
        """``{login_url}/{tenant}/oauth2/v2.0/token``; ``common`` when no tenant is set."""
        segment = quote(tenant or DEFAULT_TENANT, safe="")
        return f"{self._login_url}/{segment}/oauth2/v2.0/token"

    async def refresh_access_token(self, creds: OAuthCredentials) -> AccessToken:
        """Refresh grant. Graph sends a new refresh token every time; it is returned as
        ``rotated_refresh_token`` for the caller to store before using the access token.

        Raises AuthRevoked (invalid_grant, interaction/consent required, dead client),
        RateLimited on 429, Transient on 5xx/``temporarily_unavailable``, else Rejected.
        """
        request = self._http.build_request(
            "POST",
            self.token_url(creds.oauth_tenant),
            data={
                "grant_type": "refresh_token",
                "client_id": creds.client_id,
                "client_secret": creds.client_secret,
                "refresh_token": creds.refresh_token,
                "scope": SCOPE,
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
        if isinstance(expires_in, str) and expires_in.isdigit():  # v1 endpoints send strings
            expires_in = int(expires_in)
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
        detail = code or f"HTTP {status}"
        if isinstance(description, str) and description.strip():
            # "AADSTS70000: …\r\nTrace ID: … Correlation ID: …": keep the message only.
            first = description.strip().splitlines()[0].split(" Trace ID:")[0]
            first = first[:_MAX_DESCRIPTION]
            detail = f"{detail}: {first}"
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

    # -- Calendars (PROTOCOLS §2.2) ---------------------------------------------------------

    async def get_calendar(self, token: TokenSource, calendar_id: str) -> CalendarInfo:
        """``GET /me`` (the owner's ``mail``, else ``userPrincipalName``), then
        ``/me/calendar`` or ``/me/calendars/{id}``, then ``/me/mailboxSettings`` for the
        time zone (optional: it needs a scope we may lack, so a refusal gives None).
        Raises NotFound for an unknown calendar."""
        email = await self._owner(token)
        response = await send_authorized(self._http, token, "GET", self._calendar_url(calendar_id))
        if response.status_code != 200:
            raise self._api_error(response, cursor_sent=False)
        body = json_object(response)
        resolved = body.get("id")
        if not isinstance(resolved, str) or not resolved:
            raise Transient(f"calendar without id ({describe(response.request)})", status=200)
        name = body.get("name")
        return CalendarInfo(
            platform_calendar_id=resolved,
            email=email,
            summary=name if isinstance(name, str) else None,
            time_zone=await self._time_zone(token),
        )

    async def _time_zone(self, token: TokenSource) -> str | None:
        url = f"{self._graph_url}/me/mailboxSettings"
        response = await send_authorized(self._http, token, "GET", url)
        if response.status_code in (403, 404):
            return None
        if response.status_code != 200:
            raise self._api_error(response, cursor_sent=False)
        value = json_object(response).get("timeZone")
        return iana_name(value) if isinstance(value, str) else None

    async def _fetch_owner(self, token: TokenSource) -> str | None:
        response = await send_authorized(self._http, token, "GET", f"{self._graph_url}/me")
        if response.status_code != 200:
            raise self._api_error(response, cursor_sent=False)
        body = json_object(response)
        for key in ("mail", "userPrincipalName"):
            value = body.get(key)
            if isinstance(value, str) and "@" in value:
                return value.lower()
        return None

    async def _owner(self, token: TokenSource) -> str | None:
        """The signed-in user's address, cached by access token (self detection)."""
        key = hashlib.sha256((await token()).encode()).hexdigest()
        if key in self._owners:
            self._owners.move_to_end(key)
            return self._owners[key]
        owner = await self._fetch_owner(token)
        self._owners[key] = owner
        while len(self._owners) > _OWNER_CACHE_SIZE:
            self._owners.popitem(last=False)
        return owner

    async def list_changes(
        self, token: TokenSource, calendar_id: str, *, cursor: str | None, window: SyncWindow
    ) -> AsyncIterator[ChangePage]:
        """One ``calendarView/delta`` round (PROTOCOLS §2.2).

        Full sync (``cursor=None``): the delta query over ``window``. Incremental: the
        stored ``@odata.deltaLink`` as is (it encodes the range; nothing is added). Either
        way ``@odata.nextLink`` URLs are followed until a page carries the deltaLink, which
        becomes that last page's ``next_cursor``. Pages may be empty; items may be replayed
        (harmless: the last word per id wins within a page, upserts are idempotent).
        Raises CursorExpired on 410 or a cursor that is not a Graph URL of ours.
        """
        if cursor is None:
            if window.end <= window.start:
                raise ValueError("sync window end must be after its start")
            url = self._delta_url(calendar_id)
            params: dict[str, str] | None = {
                "startDateTime": _iso(window.start),
                "endDateTime": _iso(window.end),
            }
        else:
            if not self._is_graph_url(cursor):
                raise CursorExpired("stored cursor is not a delta link under graph_url")
            url, params = cursor, None
        headers = {
            "Prefer": (
                f'odata.maxpagesize={self._page_size}, outlook.timezone="UTC", IdType="ImmutableId"'
            )
        }
        owner = await self._owner(token)
        masters: dict[str, dict[str, Any]] = {}  # series masters seen in this round, by id
        seen: set[bytes] = set()  # digests of the items already given in this round
        continued = cursor is not None
        while True:
            response = await send_authorized(
                self._http, token, "GET", url, params=params, headers=headers
            )
            if response.status_code != 200:
                raise self._api_error(response, cursor_sent=continued)
            body = json_object(response)
            items = _unseen(body.get("value"), seen)
            await self._fetch_masters(token, items, masters, headers)
            upserts, deletions = normalize_items(items, owner, masters)
            next_link = body.get("@odata.nextLink")
            if isinstance(next_link, str) and next_link:
                if not self._is_graph_url(next_link):
                    raise Rejected(f"nextLink outside graph_url ({describe(response.request)})")
                if next_link == url and params is None:
                    raise Transient(f"nextLink did not advance ({describe(response.request)})")
                yield ChangePage(upserts=upserts, deletions=deletions)
                url, params, continued = next_link, None, True
                continue
            delta_link = body.get("@odata.deltaLink")
            if not isinstance(delta_link, str) or not delta_link:
                raise Transient(
                    f"delta page has neither nextLink nor deltaLink ({describe(response.request)})",
                    status=200,
                )
            if not self._is_graph_url(delta_link):
                raise Rejected(f"deltaLink outside graph_url ({describe(response.request)})")
            yield ChangePage(
                upserts=upserts, deletions=deletions, next_cursor=delta_link, is_last=True
            )
            return

    async def _fetch_masters(
        self,
        token: TokenSource,
        items: Any,
        masters: dict[str, dict[str, Any]],
        headers: dict[str, str],
    ) -> None:
        """Fetch the series masters of sparse occurrences whose master the round has not
        shown (``GET /me/events/{id}``). A master that is gone leaves them unfilled."""
        if not isinstance(items, list):
            return
        in_page = {
            item.get("id")
            for item in items
            if isinstance(item, dict) and item.get("type") == "seriesMaster"
        }
        wanted = {sparse_master_id(item) for item in items} - in_page - masters.keys()
        for master_id in sorted(m for m in wanted if m):
            url = f"{self._graph_url}/me/events/{quote(master_id, safe='')}"
            response = await send_authorized(self._http, token, "GET", url, headers=headers)
            if response.status_code == 404:
                continue
            if response.status_code != 200:
                raise self._api_error(response, cursor_sent=False)
            masters[master_id] = json_object(response)

    def _calendar_url(self, calendar_id: str) -> str:
        if not calendar_id:
            raise ValueError("calendar_id must not be empty")
        if calendar_id == "primary":
            return f"{self._graph_url}/me/calendar"
        return f"{self._graph_url}/me/calendars/{quote(calendar_id, safe='')}"

    def _delta_url(self, calendar_id: str) -> str:
        # v1.0 documents delta on the default calendar as /me/calendarView/delta (§2.2);
        # another calendar goes through its own /me/calendars/{id} path.
        if calendar_id == "primary":
            return f"{self._graph_url}/me/calendarView/delta"
        return self._calendar_url(calendar_id) + "/calendarView/delta"

    def _is_graph_url(self, value: str) -> bool:
        """True when ``value`` is an absolute URL under ``graph_url`` (token-safe)."""
        try:
            url = httpx.URL(value)
        except (httpx.InvalidURL, TypeError):
            return False
        base = self._graph
        if (url.scheme, url.host, url.port, url.userinfo) != (
            base.scheme,
            base.host,
            base.port,
            b"",
        ):
            return False
        path = url.path
        if not path.startswith(base.path) or "\\" in path:
            return False
        return ".." not in path.split("/")

    def _api_error(self, response: httpx.Response, *, cursor_sent: bool) -> ProviderError:
        """Map a non-200 Graph answer to a typed error (PROTOCOLS §2.2, §2.5)."""
        status = response.status_code
        code, message = _graph_error(response)
        detail = f"{describe(response.request)} → {status}"
        if code:
            detail += f" {code}"
        if message:
            detail += f": {message[:_MAX_DESCRIPTION]}"
        folded = code.lower()
        if status == 429:
            return RateLimited(detail, retry_after=self._retry_after(response), status=status)
        if status == 410 or (cursor_sent and ("syncstate" in folded or folded == "resyncrequired")):
            return CursorExpired(detail, status=status)
        if status == 403 and code in _ACCESS_DENIED:
            return AuthRevoked(detail, status=status)
        if status == 401:
            return AuthRevoked(detail, status=status)
        if status == 404:
            return NotFound(detail, status=status)
        if status >= 500 or status == 408:
            return Transient(detail, status=status)
        if 400 <= status < 500:
            return Rejected(detail, status=status)
        return Transient(f"unexpected answer: {detail}", status=status)

    def _retry_after(self, response: httpx.Response) -> timedelta | None:
        return parse_retry_after(response.headers.get("Retry-After"), now=self._clock.now())


def _unseen(items: Any, seen: set[bytes]) -> Any:
    """``items`` without exact replays of items already given earlier in the round.

    Graph repeats items within a round (PROTOCOLS §2.2). Within one round every page is
    cut from the same state, so an item with the same id and ``@odata.etag`` (or, without
    one, the same JSON) says nothing new; dropping it keeps "each occurrence once per
    round". A changed item (new etag) is kept: the later word wins downstream.
    """
    if not isinstance(items, list):
        return items
    out = []
    for item in items:
        if isinstance(item, dict):
            etag = item.get("@odata.etag")
            if isinstance(etag, str) and etag:
                key = f"{item.get('id')}\x1f{etag}"
            else:
                key = json.dumps(item, sort_keys=True, separators=(",", ":"), default=str)
            digest = hashlib.blake2b(key.encode(), digest_size=16).digest()
            if digest in seen:
                continue
            seen.add(digest)
        out.append(item)
    return out


def _graph_error(response: httpx.Response) -> tuple[str, str | None]:
    """``(code, message)`` from Graph's ``{"error": {"code", "message"}}`` body."""
    error = error_payload(response).get("error")
    if not isinstance(error, dict):
        return "", None
    code = error.get("code")
    message = error.get("message")
    return (
        code if isinstance(code, str) else "",
        message if isinstance(message, str) else None,
    )


def _iso(value: datetime) -> str:
    # startDateTime/endDateTime: ISO 8601; send UTC with Z, refuse naive values.
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("sync window datetimes must be timezone-aware")
    return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
