"""Canonicalizers for the platforms whose links need more than "host + path pattern".

Each function takes a parsed URL on one of the platform's hosts and returns the canonical join
URL, or ``None`` when the URL is on the platform but is not a meeting (a download page, Zoom
Events, a Meet ``lookup`` link …). Teams lives in :mod:`showup.meetings.teams`.
"""

from __future__ import annotations

import re

from showup.meetings.urls import Url, encode_component

Pairs = tuple[tuple[str, str | None], ...]

# --- Zoom -----------------------------------------------------------------------------------

#: Zoom's commercial cloud (zoom.us, and zoom.com which serves the same meetings), ZoomGov
#: (a separate FedRAMP cloud, so its host is kept) and Zoom X (Deutsche Telekom's cloud).
ZOOM_DOMAINS = ("zoom.us", "zoom.com", "zoomgov.com", "zoom-x.de")

# Zoom documents 9 to 11 digit meeting ids. No lower bound: shorter ids only occur in test
# fixtures and rejecting them buys nothing; longer ones are not Zoom meetings.
_ZOOM_ID_RE = re.compile(r"[0-9]{1,11}")
_ZOOM_VANITY_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_ZOOM_PWD_RE = re.compile(r"[A-Za-z0-9._~+/=-]+")
# Zoom's encoded passcodes end in ".<digit>". Letters glued after that come from flattened
# HTML ("…FQ.1Passcode: 497810"), not from the passcode.
_ZOOM_GLUED_LABEL_RE = re.compile(r"([A-Za-z0-9+/=]{16,}\.[0-9])[A-Za-z]+")


def _zoom_pwd(value: str | None) -> str | None:
    if not value:
        return None
    match = _ZOOM_PWD_RE.match(value)
    if match is None:
        return None
    pwd = match.group()
    glued = _ZOOM_GLUED_LABEL_RE.fullmatch(pwd)
    return glued.group(1) if glued else pwd


def _zoom_route(url: Url) -> tuple[str, str] | None:
    """``(kind, id)`` with kind ``j``, ``w`` or ``my``; start and web-client links become ``j``."""
    segments = url.path.strip("/").split("/")
    head = segments[0].lower()
    if head in ("j", "s", "w") and len(segments) == 2:
        return ("w" if head == "w" else "j"), segments[1]
    if head == "my" and len(segments) == 2:
        return "my", segments[1]
    if head == "wc" and len(segments) in (2, 3):
        # /wc/join/<id>, /wc/<id>/join, /wc/<id>/start, /wc/<id>
        if segments[1].lower() == "join" and len(segments) == 3:
            return "j", segments[2]
        if len(segments) == 2 or segments[2].lower() in ("join", "start"):
            return "j", segments[1]
        return None
    if head == "join" and len(segments) == 1:
        confno = url.param("confno")
        return ("j", confno) if confno else None
    return None


def canonical_zoom(url: Url) -> Url | None:
    """``https://<host>/j/<id>?pwd=…`` (``/w/`` webinars and ``/my/`` rooms keep their kind).

    ``/s/`` start links, ``/wc/…`` web-client links, ``/join?confno=`` and ``zoommtg://`` all
    become ``/j/<id>``: a bot joins, it never starts a meeting, and the host's start link must
    dedup with the attendees' join link. Only ``pwd`` (sanitised) and the webinar registrant
    token ``tk`` are kept; ``zak`` (a host credential), ``uname`` and tracking are dropped.
    """
    if url.port is not None:
        return None
    route = _zoom_route(url)
    if route is None:
        return None
    kind, ident = route
    pattern = _ZOOM_VANITY_RE if kind == "my" else _ZOOM_ID_RE
    if not pattern.fullmatch(ident):
        return None
    host = url.host.removeprefix("www.")
    if host == "zoom.com" or host.endswith(".zoom.com"):
        host = host[: -len("zoom.com")] + "zoom.us"
    pairs: Pairs = ()
    pwd = _zoom_pwd(url.param("pwd"))
    if pwd:
        pairs += (("pwd", encode_component(pwd)),)
    token = url.param("tk")
    if token:
        pairs += (("tk", encode_component(token)),)
    return Url("https", host, None, f"/{kind}/{ident}", pairs, "")


# --- Google Meet ----------------------------------------------------------------------------

# Meet codes are ten lower-case letters, 3-4-3. Workspace nicknames (meet.google.com/standup)
# and /lookup/ links only resolve for members of the organiser's domain, so a bot cannot use
# them; they are not join links for us.
_MEET_CODE_RE = re.compile(r"[a-z]{3}-[a-z]{4}-[a-z]{3}")


def canonical_meet(url: Url) -> Url | None:
    """``https://meet.google.com/<code>``; every parameter (authuser, hs, pli …) is dropped.

    ``authuser`` picks an account in the *viewer's* browser and differs per attendee, so it
    must not reach the dedup key or the bot.
    """
    if url.port is not None or url.scheme not in ("http", "https"):
        return None
    segments = url.path.strip("/").split("/")
    if url.host == "g.co":
        if len(segments) != 2 or segments[0].lower() != "meet":
            return None
        code = segments[1]
    elif len(segments) == 2 and segments[0] == "_meet":
        code = segments[1]
    elif len(segments) == 1:
        code = segments[0]
    else:
        return None
    code = code.lower()
    if not _MEET_CODE_RE.fullmatch(code):
        return None
    return Url("https", "meet.google.com", None, "/" + code, (), "")


# --- Jitsi ----------------------------------------------------------------------------------

_JITSI_ROOM_RE = re.compile(r"[A-Za-z0-9_.~%@$!*+,;=:-]+")
# Paths a Jitsi deployment serves that are not rooms.
_JITSI_RESERVED = frozenset(
    {"static", "libs", "css", "images", "sounds", "lang", "fonts", "config.js",
     "interface_config.js", "external_api.js", "http-bind", "xmpp-websocket", "colibri-ws"}
)  # fmt: skip


def canonical_jitsi(url: Url) -> Url | None:
    """``https://<host>/<room>``: one path segment; only ``jwt`` (auth) survives.

    Fragments carry client config overrides (``#config.startWithAudioMuted=true``) that the
    bot sets itself, so they are dropped, as are query config options.
    """
    if url.scheme not in ("http", "https"):
        return None
    room = url.path.strip("/")
    if not room or "/" in room or room.lower() in _JITSI_RESERVED:
        return None
    if not _JITSI_ROOM_RE.fullmatch(room):
        return None
    jwt = url.param("jwt")
    pairs: Pairs = (("jwt", encode_component(jwt)),) if jwt else ()
    return Url("https", url.host, url.port, "/" + room, pairs, "")


def looks_like_self_hosted_jitsi(url: Url) -> bool:
    """Heuristic for a pasted link on an unknown host: ``meet.<domain>`` or ``*jitsi*.<domain>``.

    Jitsi's default deployment lives at ``meet.<your domain>``. Used only when a whole field is
    one link (a user pasted it as the meeting location), never for links found inside prose,
    where ``meet.example.org/Weekly`` is as likely an agenda page as a room.
    """
    labels = url.host.split(".")[:-2]  # leave out the (approximate) registered domain
    return any(label == "meet" or "jitsi" in label for label in labels)


# --- Webex ----------------------------------------------------------------------------------

_WEBEX_PHP_PAGES = frozenset({"j.php", "e.php", "g.php"})
_WEBEX_KEEP = ("MTID", "siteurl")


def canonical_webex(url: Url) -> Url | None:
    """Personal rooms (``/meet/<user>``, ``/join/<user>``), ``j.php?MTID=`` meetings (and the
    ``e.php``/``g.php`` event pages), and the ``wbxmjs``/``webappng`` web-app join routes.
    Only ``MTID`` and ``siteurl`` are kept."""
    if url.port is not None or url.scheme not in ("http", "https"):
        return None
    path = url.path.rstrip("/")
    segments = [segment.lower() for segment in path.strip("/").split("/")]
    if segments[0] in ("meet", "join") and len(segments) == 2 and segments[1]:
        return Url("https", url.host, None, path, (), "")
    if segments[-1] in _WEBEX_PHP_PAGES and len(segments) <= 4:
        if not url.param("MTID"):
            return None
    elif segments[:2] == ["wbxmjs", "joinservice"] or (
        segments[0] == "webappng" and "meeting" in segments
    ):
        pass
    else:
        return None
    pairs = tuple(
        (name, encode_component(value)) for name in _WEBEX_KEEP if (value := url.param(name))
    )
    return Url("https", url.host, None, path, pairs, "")
