"""The table of meeting platforms: which hosts and paths are join links, and their ids.

Platform ids are snake_case. For the platforms showup's launchers care about they follow the
``meeting_platform`` values of Recall.ai's Calendar API (which showup's API mirrors):
``zoom``, ``google_meet``, ``microsoft_teams``, ``webex``, ``goto_meeting``, ``bluejeans``,
``whereby``, ``amazon_chime``, ``jitsi``, ``slack_huddle``. The long tail uses the ids of the
shared meeting-URL corpus (``meeting_url_cases.json``). Where the corpus spells one of ours
differently:

=================  =================  ==================================================
corpus id          our id             why
=================  =================  ==================================================
``teams``          ``microsoft_teams``  Recall's name; includes teams.live.com and GCC/DoD
``gotomeeting``    ``goto_meeting``     Recall's name
``zoom_gov``       ``zoom``             same product and bot; the URL keeps ``zoomgov.com``
=================  =================  ==================================================

A host matches a rule when it *equals* one of the rule's domains or is a subdomain of one
(label boundary), never by substring: ``teams.zoom.us`` is Zoom, ``zoom.us.evil.com`` and
``evilzoom.us`` are nothing. More specific domains are tried first
(``stream.meet.google.com`` before ``meet.google.com``).

Long-tail platforms keep their path, query (minus tracking parameters) and fragment as given:
we do not know which of their parameters matter (FaceTime and Proton Meet put the key in the
fragment). The ten major platforms are canonicalised (see :mod:`showup.meetings.major` and
:mod:`showup.meetings.teams`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote

from showup.meetings.major import (
    ZOOM_DOMAINS,
    canonical_jitsi,
    canonical_meet,
    canonical_webex,
    canonical_zoom,
    looks_like_self_hosted_jitsi,
)
from showup.meetings.teams import TEAMS_DOMAINS, canonical_teams
from showup.meetings.urls import Url, host_suffixes

Canonicalizer = Callable[[Url], Url | None]

#: The platforms with a dedicated canonical form (and the corpus's 98% bar).
MAJOR_PLATFORMS = frozenset(
    {"google_meet", "zoom", "microsoft_teams", "webex", "goto_meeting", "bluejeans", "whereby",
     "amazon_chime", "jitsi", "slack_huddle"}
)  # fmt: skip

_TRACKING_PREFIXES = ("utm_",)
_TRACKING_PARAMS = frozenset(
    {"gclid", "fbclid", "msclkid", "mc_cid", "mc_eid", "_hsenc", "_hsmi", "mkt_tok"}
)


@dataclass(frozen=True, slots=True)
class Rule:
    """One way a platform's join links look.

    ``path`` must fullmatch the raw path (``None``: any path). ``subdomains=False`` means the
    host must equal a domain. ``canonical`` replaces the generic treatment. Generic treatment:
    https, path as given, query minus tracking (or only ``keep_params`` when set), fragment
    kept unless ``keep_fragment`` is False. ``needs`` is an extra condition a path pattern
    cannot express.
    """

    platform: str
    domains: tuple[str, ...]
    path: re.Pattern[str] | None = None
    subdomains: bool = True
    canonical: Canonicalizer | None = None
    keep_params: frozenset[str] | None = None
    keep_fragment: bool = True
    needs: Callable[[Url], bool] | None = None

    def apply(self, url: Url, host_is_domain: bool) -> Url | None:
        if not self.subdomains and not host_is_domain:
            return None
        if self.canonical is not None:
            return self.canonical(url)
        if url.scheme not in ("http", "https"):
            return None
        if self.path is not None and not self.path.fullmatch(url.path):
            return None
        if self.needs is not None and not self.needs(url):
            return None
        pairs = tuple(pair for pair in url.query if _keep_param(unquote(pair[0]), self))
        fragment = url.fragment if self.keep_fragment else ""
        return Url("https", url.host, url.port, url.path, pairs, fragment)


def _keep_param(name: str, rule: Rule) -> bool:
    if rule.keep_params is not None:
        return name in rule.keep_params
    return name not in _TRACKING_PARAMS and not name.startswith(_TRACKING_PREFIXES)


def _p(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


_NONE: frozenset[str] = frozenset()
_WHEREBY_NOT_ROOMS = (
    "user|users|org|information|pricing|login|signup|blog|embed|api|terms|privacy|about|"
    "contact|features|download|help|support|careers|developers|static"
)

RULES: tuple[Rule, ...] = (
    # --- the major platforms --------------------------------------------------------------
    Rule("google_meet", ("meet.google.com", "www.meet.google.com", "g.co"), subdomains=False,
         canonical=canonical_meet),
    Rule("zoom", ZOOM_DOMAINS, canonical=canonical_zoom),
    Rule("microsoft_teams", TEAMS_DOMAINS, canonical=canonical_teams),
    Rule("webex", ("webex.com",), canonical=canonical_webex),
    Rule("goto_meeting", ("gotomeeting.com",), _p(r"/join/[0-9]+/?"), keep_params=_NONE,
         keep_fragment=False),
    Rule("goto_meeting", ("meet.goto.com", "gotomeet.me"), _p(r"/(?:join/)?[\w.-]+/?"),
         subdomains=False, keep_params=_NONE, keep_fragment=False),
    Rule("goto_meeting", ("app.goto.com",), _p(r"/meeting/[0-9]{6,12}/?"), subdomains=False,
         keep_params=_NONE, keep_fragment=False),
    Rule("bluejeans", ("bluejeans.com",), _p(r"/[0-9]{3,}(?:/[0-9]+)?(?:/webrtc)?/?"),
         keep_params=_NONE, keep_fragment=False),
    Rule("whereby", ("whereby.com", "appear.in"),
         _p(rf"/(?!(?:{_WHEREBY_NOT_ROOMS})(?:/|$))[a-z0-9][\w-]*/?"),
         keep_params=_NONE, keep_fragment=False),
    Rule("amazon_chime", ("chime.aws",), _p(r"/[0-9]{10}/?"), subdomains=False,
         keep_params=_NONE, keep_fragment=False),
    Rule("amazon_chime", ("app.chime.aws",), _p(r"/meetings/[0-9]{10}/?"), subdomains=False,
         keep_params=_NONE, keep_fragment=False),
    Rule("jitsi", ("meet.jit.si",), subdomains=False, canonical=canonical_jitsi),
    Rule("slack_huddle", ("app.slack.com",), _p(r"/huddle/[A-Z0-9]+/[A-Z0-9]+/?"),
         subdomains=False, keep_params=_NONE, keep_fragment=False),
    # --- the long tail (corpus ids) ---------------------------------------------------------
    Rule("google_meet_stream", ("stream.meet.google.com",), _p(r"/stream/[\w-]+/?"),
         subdomains=False),
    Rule("google_hangouts", ("hangouts.google.com",), _p(r"/(?:call|hangouts/_)/[\w/-]+"),
         subdomains=False),
    Rule("google_duo", ("duo.app.goo.gl",), _p(r"/[\w-]+/?"), subdomains=False),
    Rule("zoom_zm_page", ("zm.page",), _p(r"(?:/[\w./-]*)?")),
    Rule("gotowebinar", ("gotowebinar.com",), _p(r"/(?:register|join)/[\w-]+/?")),
    Rule("zhumu", ("zhumu.com",), _p(r"/j/[0-9]{6,12}/?")),
    # Zhumu's web-client path is a join link only with its wpk key (MeetingBar's rule).
    Rule("zhumu", ("zhumu.com",), _p(r"/wc/join/[0-9]{6,12}/?"),
         needs=lambda url: bool(url.param("wpk"))),
    Rule("around", ("around.co",), _p(r"/(?:r/)?[\w-]+/?")),
    Rule("blackboard_collaborate", ("bbcollab.com",),
         _p(r"/(?:guest|invite|collab/ui/session/(?:guest|join))/[\w-]+/?")),
    Rule("coscreen", ("join.coscreen.co",), _p(r"/[\w/-]+"), subdomains=False),
    Rule("ovice", ("ovice.in",), _p(r"/[\w@,./-]*")),
    Rule("ovice", ("ovice.com",), _p(r"/[\w@,./-]+")),
    Rule("facetime", ("facetime.apple.com",), _p(r"/join/?"), subdomains=False),
    Rule("pop", ("pop.com",), _p(r"/j/[0-9-]+/?"), subdomains=False),
    Rule("gong", ("join.gong.io",), _p(r"/[\w./-]+")),
    Rule("chorus", ("go.chorus.ai",), _p(r"/[\w-]+/?"), subdomains=False),
    Rule("livestorm", ("livestorm.co", "livestorm.com"), _p(r"/p/[\w/-]+")),
    Rule("preply", ("preply.com",), _p(r"/[a-z-]{2,5}/(?:chat/t-room|tutor)/[0-9]+/?"),
         subdomains=False),
    Rule("userzoom", ("go.userzoom.com",), _p(r"/participate/[\w-]+/?"), subdomains=False),
    Rule("venue", ("app.venue.live",), _p(r"/app/[\w-]+/?"), subdomains=False),
    Rule("teemyco", ("app.teemyco.com",), _p(r"/room/[\w/-]+"), subdomains=False),
    Rule("demodesk", ("demodesk.com",), _p(r"/(?:meet/)?[\w-]+/?")),
    Rule("pumble", ("meet.pumble.com",), _p(r"/[\w-]+/?"), subdomains=False),
    Rule("suit_conference", ("conference.istesuit.com",), _p(r"/[\w.-]+/?")),
    Rule("doxy_me", ("doxy.me",), _p(r"/[\w.-]+/?")),
    Rule("cal_video", ("app.cal.com",), _p(r"/video/[\w-]+/?"), subdomains=False),
    Rule("livekit", ("livekit.io",), _p(r"/rooms/[\w-]+/?")),
    Rule("meetecho", ("meetecho.com",), _p(r"/[\w-]+/?")),
    Rule("streamyard", ("streamyard.com", "www.streamyard.com"),
         _p(r"/(?:guest/)?[a-z0-9]{8,13}/?"), subdomains=False),
    Rule("proton_meet", ("meet.proton.me",), _p(r"/join/[\w-]+/?"), subdomains=False),
    Rule("facebook_workplace", ("workplace.com",), _p(r"/groupcall/[\w-]+/?")),
    Rule("slack_huddle", ("slack.com",), _p(r"/huddle/[A-Z0-9]+/[A-Z0-9]+/?"),
         keep_params=_NONE, keep_fragment=False),
    Rule("gather", ("gather.town",), _p(r"/app/[\w%/-]+")),
    Rule("vimeo", ("venues.vimeo.com",), _p(r"/[\w/-]+"), subdomains=False),
    Rule("vimeo", ("vimeo.com",), _p(r"/(?:showcase|event)/[\w/-]+"), subdomains=False),
    Rule("reclaim", ("reclaim.ai",), _p(r"/z/[\w/-]+"), subdomains=False),
    Rule("tuple", ("tuple.app",), _p(r"/c/[\w-]+/?"), subdomains=False),
    Rule("ringcentral", ("ringcentral.com",), _p(r"/(?:j|join)/[0-9]+/?")),
    Rule("8x8", ("8x8.vc",), _p(r"/[\w.-]+/[\w.%-]+/?"), subdomains=False),
    Rule("demio", ("event.demio.com",), _p(r"/ref/[\w-]+/?"), subdomains=False),
    Rule("join_me", ("join.me",), _p(r"/[\w-]+/?"), subdomains=False),
    Rule("uberconference", ("uberconference.com", "www.uberconference.com"), _p(r"/[\w.-]+/?"),
         subdomains=False),
    Rule("blizz", ("go.blizz.com",), _p(r"/join/[\w-]+/?"), subdomains=False),
    Rule("teamviewer_meeting", ("go.teamviewer.com",), _p(r"/(?:meet|v[0-9]+/s)/[\w-]+/?"),
         subdomains=False),
    Rule("vsee", ("vsee.com",), _p(r"/(?:c|u)/[\w.-]+/?")),
    Rule("starleaf", ("meet.starleaf.com",), _p(r"/[0-9]+/?"), subdomains=False),
    Rule("voov", ("voovmeeting.com",), _p(r"/dm/[\w-]+/?")),
    Rule("skype", ("join.skype.com",), _p(r"/[\w-]+/?"), subdomains=False),
    Rule("skype_for_business", ("meet.lync.com",), _p(r"/[\w.-]+/[\w.-]+/[\w-]+/?"),
         subdomains=False),
    Rule("lifesize", ("call.lifesizecloud.com",), _p(r"/[0-9]+/?"), subdomains=False),
    Rule("youtube", ("youtube.com", "www.youtube.com"), _p(r"/(?:watch|live/[\w-]+)/?"),
         subdomains=False),
    Rule("youtube", ("youtu.be",), _p(r"/[\w-]+/?"), subdomains=False),
    Rule("vonage_meetings", ("meetings.vonage.com",), _p(r"/[\w-]+/?"), subdomains=False),
    Rule("jam", ("jam.systems",), _p(r"/[\w-]+/?"), subdomains=False),
    Rule("discord", ("discord.com",), _p(r"/channels/[0-9]+/[0-9]+/?"), subdomains=False),
    Rule("discord", ("discord.gg",), _p(r"/[\w-]+/?"), subdomains=False),
    # Vowel rooms are hash routes: app.vowel.com/#/g/<room>.
    Rule("vowel", ("app.vowel.com",), _p(r"/?"), subdomains=False,
         needs=lambda url: url.fragment.startswith("/g/")),
    Rule("lark", ("vc.larksuite.com",), _p(r"/j/[0-9]+/?"), subdomains=False),
    Rule("feishu", ("vc.feishu.cn",), _p(r"/j/[0-9]+/?"), subdomains=False),
    Rule("luma", ("lu.ma",), _p(r"/join/[\w-]+/?"), subdomains=False),
    Rule("zoho_cliq", ("cliq.zoho.com", "cliq.zoho.eu", "cliq.zoho.in", "cliq.zoho.com.au",
                       "cliq.zoho.jp", "cliq.zoho.com.cn", "cliq.zoho.ca", "cliq.zoho.sa"),
         _p(r"/meetings/[\w-]+/?"), subdomains=False),
)  # fmt: skip

_BY_DOMAIN: dict[str, list[Rule]] = {}
for _rule in RULES:
    for _domain in _rule.domains:
        _BY_DOMAIN.setdefault(_domain, []).append(_rule)


def is_platform_host(host: str) -> bool:
    """Whether ``host`` (lower-case) is on a known platform's domain (any path)."""
    return any(suffix in _BY_DOMAIN for suffix in host_suffixes(host))


def _embeds_known_domain(host: str) -> bool:
    """``meet.google.com.evil.com`` contains a platform domain: a look-alike, not a Jitsi."""
    dotted = f".{host}."
    return any(f".{domain}." in dotted for domain in _BY_DOMAIN)


def canonicalize(url: Url, *, heuristics: bool = False) -> tuple[str, Url] | None:
    """``(platform, canonical URL)`` for a recognised join link, else ``None``.

    ``heuristics`` enables guesses that are only safe for a link given on its own (today: a
    self-hosted Jitsi room on ``meet.<domain>``); see :func:`looks_like_self_hosted_jitsi`.
    """
    for suffix in host_suffixes(url.host):
        for rule in _BY_DOMAIN.get(suffix, ()):
            result = rule.apply(url, host_is_domain=suffix == url.host)
            if result is not None:
                return rule.platform, result
        if suffix in _BY_DOMAIN:
            # A known platform's domain: no fallback to a less specific rule or a heuristic
            # (a non-meeting zoom.us page must not become "self-hosted Jitsi").
            return None
    if heuristics and looks_like_self_hosted_jitsi(url) and not _embeds_known_domain(url.host):
        result = canonical_jitsi(url)
        if result is not None:
            return "jitsi", result
    return None
