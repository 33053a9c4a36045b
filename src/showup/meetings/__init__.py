"""Meeting join links: find them in calendar events, normalize them, name their platform.

Pure functions, no I/O, stdlib only. Every input is untrusted text; nothing here raises on
bad input, it returns ``None``.

Public API::

    find_meeting_link(*texts)  first join link in the texts, in order (plain text, HTML, URL)
    normalize_url(url)         one candidate → normalized join URL, or None
    detect_platform(url)       one candidate → platform id, or None
    from_google_event(raw)     Google Calendar v3 event JSON → MeetingLink | None
    from_graph_event(raw)      Microsoft Graph event JSON → MeetingLink | None

Normalization policy
--------------------
The normalized URL is what the bot is sent *and* (with the start time) the key that makes the
same meeting on several attendees' calendars one meeting. So it must be joinable, and equal
for every copy of the same invitation.

1. **Unwrap** first: HTML entities (``&amp;``), whole-URL percent-encoding
   (``https%3A%2F%2F…``), Outlook Safe Links, Google ``/url?q=`` redirects, Proofpoint URL
   Defense, and Teams launcher / deep-link / light-meetings forms (:mod:`.unwrap`,
   :mod:`.teams`). Surrounding ``<>``, quotes, brackets and trailing prose punctuation go.
2. **Recognise** by host (equal to or a subdomain of a platform domain, never a substring;
   user-info like ``zoom.us@evil.com`` is rejected) and path shape (:mod:`.platforms`). A URL
   that is on a platform's host but is not a meeting (download page, Zoom Events, Teams
   channel) is not a join link.
3. **Canonicalise**: scheme ``https`` (``http`` and ``zoommtg://`` are rewritten), lower-case
   host, default port dropped. Path case is kept where it carries meaning (Teams thread ids,
   Jitsi rooms, Zoom vanity names); Meet codes are lower-cased (they are case-insensitive).
   Query parameters: the ten major platforms keep only what joining needs —

   ===============  =====================================================================
   Zoom             ``pwd`` (sanitised), ``tk`` (webinar registrant); ``/s/``, ``/wc/``,
                    ``join?confno=`` → ``/j/<id>``; ``zoom.com`` → ``zoom.us``
   Google Meet      nothing (``authuser`` differs per attendee; ``hs``, ``pli`` are UI)
   Microsoft Teams  ``context`` (meetup-join, percent-encoded JSON) or ``p`` (``/meet/`` id)
   Webex            ``MTID``, ``siteurl``
   Jitsi            ``jwt``
   others of the 10 nothing
   ===============  =====================================================================

   The long tail keeps query (minus ``utm_*`` and click ids) and fragment as given, because we
   do not know which of their parameters matter (FaceTime's key is in the fragment).
4. **Standalone vs prose.** A field that is nothing but one token (a pasted location) may be
   scheme-less (``zoom.us/j/1``) and may be a self-hosted Jitsi room on ``meet.<domain>``.
   Inside prose a URL needs its scheme and a known platform host.

Policies chosen where sources disagree (the shared corpus marks these ``policy_specific``),
always for "a URL the bot can join":

* Zoom ``/my/<name>`` personal rooms are join links (Vexa rejects them; most accept).
* Zoom ids have at most 11 digits (Zoom's documented maximum; Vexa's rule).
* Google Meet needs a real ``xxx-xxxx-xxx`` code: nicknames and ``/lookup/`` links only open
  for members of the organiser's Workspace, which a bot is not.
* Teams ``/meet/<id>`` without ``?p=`` is accepted (it names the meeting; the bot may get the
  passcode elsewhere); so are meetup-join links without ``context`` or message id, and
  meetup-join on ``teams.live.com``.
* Upper-case schemes/hosts are matched (RFC 3986: they are case-insensitive).
* Parameters for the bot's own client (Teams ``anon=true``, Zoom ``uname``) are not added or
  kept: launchers add what their bot needs.

Platform ids: see :mod:`.platforms` (Recall's ``meeting_platform`` names for the major ones,
the corpus's ids for the long tail, and the mapping between them).
"""

from __future__ import annotations

from showup.meetings.events import from_google_event, from_graph_event
from showup.meetings.extract import MAX_SCAN_CHARS, find_meeting_link
from showup.meetings.link import MeetingLink
from showup.meetings.platforms import MAJOR_PLATFORMS
from showup.meetings.resolve import resolve

__all__ = [
    "MAJOR_PLATFORMS",
    "MAX_SCAN_CHARS",
    "MeetingLink",
    "detect_platform",
    "find_meeting_link",
    "from_google_event",
    "from_graph_event",
    "normalize_url",
]


def normalize_url(url: str) -> str | None:
    """Unwrap and normalize one candidate link; ``None`` if it is not a join link.

    The candidate is taken as a whole (standalone): ``"https://meet.jit.si/My Room"`` is not a
    URL, while ``"<zoom.us/j/123>"`` is. Idempotent: ``normalize_url(normalize_url(u)) ==
    normalize_url(u)`` whenever the inner call returns a string.
    """
    if not isinstance(url, str):
        return None
    link = resolve(url, standalone=True)
    return link.url if link is not None else None


def detect_platform(url: str) -> str | None:
    """Platform id of one candidate link (same rules as :func:`normalize_url`), or ``None``."""
    if not isinstance(url, str):
        return None
    link = resolve(url, standalone=True)
    return link.platform if link is not None else None
