"""Microsoft Teams join links: every shape we accept, reduced to one canonical form.

Accepted (on any host under :data:`TEAMS_DOMAINS`, including the government clouds
``gov.teams.microsoft.us`` / ``dod.teams.microsoft.us`` and the consumer ``teams.live.com``):

* ``/l/meetup-join/<thread>[/<message>]?context=…`` — the classic link Graph returns;
* ``/meet/<digits>?p=<passcode>`` — the short link (2024+); the passcode is kept, and a link
  without one is still accepted (it identifies the meeting; some sources omit ``p``);
* ``/dl/launcher/launcher.html?url=/_#/l/meetup-join/…`` — the desktop launcher wrapper, with the
  inner route encoded or not;
* ``/v2/?meetingjoin=true#/meet/…`` and ``/_#/l/meetup-join/…`` — web-client deep links whose
  route is in the fragment;
* ``/light-meetings/launch?coords=<base64 JSON>`` — the "light meetings" launcher, whose JSON
  carries the thread, tenant and organiser ids.

Canonical form (what a bot is sent, and part of the dedup key):
``https://<host>/l/meetup-join/<thread>/<message>?context=<encoded JSON>`` with the thread id
percent-*decoded* (``19:meeting_…@thread.v2`` — ``:`` and ``@`` are legal in a path) and
``context`` percent-encoded with upper-case hex; or ``https://<host>/meet/<id>?p=<passcode>``.
Path case is kept (thread ids are base64). Everything else (``anon``, ``deeplinkId``,
``correlationId``, launcher flags, fragments) is dropped: it does not change the meeting.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from urllib.parse import unquote

from showup.meetings.urls import Url, encode_component, find_param, parse_query

TEAMS_DOMAINS = (
    "teams.microsoft.com",
    "teams.live.com",
    "teams.microsoft.us",
    "teams.cloud.microsoft",
    "teams.microsoftonline.cn",
)

_THREAD_RE = re.compile(r"[\w:@.\-=+!~*'$,;]+")
_MEETING_ID_RE = re.compile(r"[0-9]{6,20}")
_FRAGMENT_ROUTE_PATHS = frozenset({"", "/", "/_", "/v2", "/v2/"})
_PATH_SAFE = ":@"
_LAUNCHER_URL_PARAM_RE = re.compile(r"(?:^|&)url=")


def _fully_decode(value: str, rounds: int = 3) -> str:
    for _ in range(rounds):
        decoded = unquote(value)
        if decoded == value:
            break
        value = decoded
    return value


def _launcher_route(url: Url) -> str | None:
    # The launcher's url= value is often *not* encoded, so its own '?', '&' and '#' split the
    # outer URL apart. Re-join query and fragment and take everything after "url=".
    raw = url.raw_query + ("#" + url.fragment if url.fragment else "")
    match = _LAUNCHER_URL_PARAM_RE.search(raw)
    if match is None:
        return None
    target = raw[match.end() :]
    if target[:3].upper() == "%2F":
        target = unquote(target)
    return target


def _light_meeting_route(url: Url) -> str | None:
    coords = url.param("coords")
    if not coords:
        return None
    padded = coords + "=" * (-len(coords) % 4)
    try:
        data = json.loads(base64.b64decode(padded.replace("-", "+").replace("_", "/")))
    except (binascii.Error, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("conversationId"), str):
        return None
    context = {
        key: data[field]
        for key, field in (("Tid", "tenantId"), ("Oid", "organizerId"))
        if isinstance(data.get(field), str)
    }
    message = data.get("messageId") if isinstance(data.get("messageId"), str) else "0"
    route = f"/l/meetup-join/{encode_component(data['conversationId'])}/{message}"
    if context:
        route += "?context=" + encode_component(json.dumps(context, separators=(",", ":")))
    return route


def _route(url: Url) -> str | None:
    """The ``/l/…`` or ``/meet/…`` route (with its query) that this Teams URL opens."""
    path = url.path.lower()
    if path.startswith("/dl/launcher/"):
        route = _launcher_route(url)
    elif path.rstrip("/") == "/light-meetings/launch":
        route = _light_meeting_route(url)
    elif url.fragment.startswith("/") and path in _FRAGMENT_ROUTE_PATHS:
        route = url.fragment
    else:
        route = url.path + ("?" + url.raw_query if url.query else "")
    if route is None:
        return None
    for prefix in ("/_#", "#"):
        if route.startswith(prefix):
            route = route[len(prefix) :]
    return route


def _meetup_join(url: Url, segments: list[str], query: str) -> Url | None:
    if len(segments) < 3:
        return None
    thread = _fully_decode(segments[2])
    message = _fully_decode(segments[3]) if len(segments) > 3 and segments[3] else None
    if not _THREAD_RE.fullmatch(thread) or (message and not _THREAD_RE.fullmatch(message)):
        return None
    path = "/l/meetup-join/" + encode_component(thread, _PATH_SAFE)
    if message:
        path += "/" + encode_component(message, _PATH_SAFE)
    context = find_param(parse_query(query), "context")
    pairs: tuple[tuple[str, str | None], ...] = ()
    if context:
        pairs = (("context", encode_component(_fully_decode(context))),)
    return Url("https", url.host, None, path, pairs, "")


def _short_meet(url: Url, segments: list[str], query: str) -> Url | None:
    if len(segments) < 2 or not _MEETING_ID_RE.fullmatch(segments[1]):
        return None
    passcode = find_param(parse_query(query), "p")
    pairs: tuple[tuple[str, str | None], ...] = ()
    if passcode:
        pairs = (("p", encode_component(passcode)),)
    return Url("https", url.host, None, "/meet/" + segments[1], pairs, "")


def canonical_teams(url: Url) -> Url | None:
    """The canonical join URL for a URL on a Teams host, or ``None`` if it is not a meeting."""
    if url.scheme not in ("http", "https") or url.port is not None:
        return None
    route = _route(url)
    if not route:
        return None
    route_path, _, query = route.partition("?")
    query = query.partition("#")[0]
    segments = route_path.strip("/").split("/")
    head = [segment.lower() for segment in segments[:2]]
    if head == ["l", "meetup-join"]:
        return _meetup_join(url, segments, query)
    if head[:1] == ["meet"]:
        return _short_meet(url, segments, query)
    return None
