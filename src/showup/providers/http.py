"""HTTP plumbing shared by the REST adapters (Google Calendar, Microsoft Graph).

What lives here is the part of the error mapping that does not depend on the provider:

* transport failures and timeouts become :class:`~showup.providers.errors.Transient`;
* ``Retry-After`` (delta-seconds or HTTP-date, RFC 9110 §10.2.3) becomes a ``timedelta``;
* :func:`send_authorized` attaches the bearer token and does the one allowed retry: on a
  401 it asks the :class:`~showup.providers.base.TokenSource` for a fresh token
  (``force=True``) and resends once; a second 401 is :class:`AuthRevoked`
  (PROTOCOLS §1.6 "refresh, else re-authorize").

Everything else (status codes → error types) is provider specific and stays in the adapter.
Nothing here retries on its own beyond the 401 dance: backoff belongs to the sync engine.
Messages name the method and path only; query strings (sync tokens, page tokens) and
headers (bearer tokens) never reach an exception or a log line (DESIGN invariant 7).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import orjson

from showup.providers.base import TokenSource
from showup.providers.errors import AuthRevoked, ProviderError, Rejected, Transient

# The longest wait we accept from a server. A bogus or hostile header ("Retry-After:
# 99999999") must not park a calendar for years; the engine's own backoff takes over past it.
MAX_RETRY_AFTER = timedelta(hours=1)

QueryParams = Mapping[str, str | int | bool]

# Bytes to "0" for digits and " " for the rest: a run of 19 zeros after translating marks an
# integer literal that may not fit 64 bits (or a long digit run inside a string).
_DIGITS = bytes(0x30 if 0x30 <= b <= 0x39 else 0x20 for b in range(256))
_LONG_RUN = b"0" * 19
# JSON's escape of NUL (U+0000), where its backslash is not itself escaped (an even number
# of backslashes before it).
_NUL_ESCAPE = re.compile(rb"(?<!\\)((?:\\\\)*)\\u0000")


def describe(request: httpx.Request) -> str:
    """``"GET /calendar/v3/calendars/x/events"``: method and path, never the query string."""
    return f"{request.method} {request.url.path}"


def parse_retry_after(value: str | None, *, now: datetime) -> timedelta | None:
    """Parse a ``Retry-After`` value into a non-negative delay, capped at MAX_RETRY_AFTER.

    Accepts delta-seconds (``"120"``; a decimal such as ``"1.5"`` is tolerated since some
    proxies send one) and HTTP-dates (``"Wed, 21 Oct 2015 07:28:00 GMT"``), which are measured
    from ``now`` (aware; the injected clock's time). Returns None when absent or unparseable,
    so a bad header degrades to "no hint" instead of an error.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = None
    if seconds is not None:
        if seconds != seconds:  # NaN
            return None
        return timedelta(seconds=max(0.0, min(seconds, MAX_RETRY_AFTER.total_seconds())))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; "-0000" parses as naive
        when = when.replace(tzinfo=UTC)
    delay = when - now
    return max(timedelta(0), min(delay, MAX_RETRY_AFTER))


def transport_error(exc: httpx.HTTPError, request: httpx.Request | None = None) -> ProviderError:
    """The typed error for an httpx exception raised while sending.

    Timeouts, network and remote-protocol failures are :class:`Transient`. An unsupported
    scheme or a request httpx refuses to write is our own configuration or bug, which no retry
    fixes, so :class:`Rejected`.
    """
    where = f" ({describe(request)})" if request is not None else ""
    name = type(exc).__name__
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.LocalProtocolError):
        return Rejected(f"cannot send request{where}: {name}")
    if isinstance(exc, httpx.TimeoutException):
        return Transient(f"timed out{where}: {name}")
    return Transient(f"request failed{where}: {name}")


async def send(http: httpx.AsyncClient, request: httpx.Request) -> httpx.Response:
    """Send ``request``, turning every httpx failure into a typed provider error."""
    try:
        return await http.send(request)
    except httpx.HTTPError as exc:
        raise transport_error(exc, request) from exc


async def send_authorized(
    http: httpx.AsyncClient,
    token: TokenSource,
    method: str,
    url: str,
    *,
    params: QueryParams | None = None,
    headers: Mapping[str, str] | None = None,
    json_body: Any = None,
) -> httpx.Response:
    """Send with ``Authorization: Bearer``; on 401 force one refresh and resend once.

    Returns the final response whatever its status (the adapter maps it), except that a 401
    on the resend raises :class:`AuthRevoked`: a token minted a moment ago being refused means
    the grant itself is gone. Errors from the token source (e.g. ``AuthRevoked`` from an
    ``invalid_grant`` refresh) propagate unchanged.
    """
    access = await token()
    response = await send(http, _build(http, method, url, access, params, headers, json_body))
    if response.status_code != 401:
        return response
    access = await token(force=True)
    response = await send(http, _build(http, method, url, access, params, headers, json_body))
    if response.status_code == 401:
        raise AuthRevoked(
            f"access token refused right after a refresh ({describe(response.request)})",
            status=401,
        )
    return response


def _build(
    http: httpx.AsyncClient,
    method: str,
    url: str,
    access: str,
    params: QueryParams | None,
    headers: Mapping[str, str] | None,
    json_body: Any,
) -> httpx.Request:
    merged = {"Authorization": f"Bearer {access}", "Accept": "application/json"}
    if headers:
        merged.update(headers)
    try:
        return http.build_request(method, url, params=params, headers=merged, json=json_body)
    except httpx.InvalidURL as exc:
        raise Rejected(f"invalid URL for {method}: {exc}") from exc


def without_nul(body: bytes) -> bytes:
    """``body``, JSON in UTF-8, with each NUL character of its strings (``\\u0000``)
    written as U+FFFD instead.

    Providers' text may hold NUL (an event title pasted from a binary document, say).
    PostgreSQL stores it in neither a text column nor JSONB, so one such event failed its
    calendar's every sync. SQLite would keep it; both now store the replacement character,
    the same text on both databases.
    """
    if b"\\u0000" not in body:
        return body
    return _NUL_ESCAPE.sub(rb"\1\\ufffd", body)


def decode_json(body: bytes) -> Any:
    """``json.loads(body)``, made faster by orjson where it gives the same value, and with
    no NUL character in its strings (:func:`without_nul`).

    orjson refuses some input the stdlib accepts (lone surrogate escapes such as
    ``"\\ud800"``, a UTF-8 BOM, ``NaN``/``Infinity``, numbers beyond a double, other
    encodings than UTF-8), and reads an integer beyond 64 bits as a float. Such bodies go
    to ``json.loads``, which also raises for what is not JSON, exactly as before. A body
    with a run of 19 digits (anywhere, even inside a string: a cheap test, and false alarms
    only cost speed) goes to ``json.loads`` too, so big integers stay exact ints.
    """
    body = without_nul(body)
    if _LONG_RUN not in body.translate(_DIGITS):
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass
    return json.loads(body)


def json_object(response: httpx.Response) -> dict[str, Any]:
    """The response body as a JSON object, or :class:`Transient` if it is not one.

    A 2xx whose body is not a JSON object is usually a proxy or load balancer page answering
    for the provider; a retry is the right reaction.
    """
    try:
        body = decode_json(response.content)
    except ValueError as exc:
        raise Transient(
            f"response is not JSON ({describe(response.request)}, {response.status_code})",
            status=response.status_code,
        ) from exc
    if not isinstance(body, dict):
        raise Transient(
            f"response is not a JSON object ({describe(response.request)})",
            status=response.status_code,
        )
    return body


def error_payload(response: httpx.Response) -> dict[str, Any]:
    """Best-effort JSON object of an error response; ``{}`` when there is none."""
    try:
        body = decode_json(response.content)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
