"""Find the join link in calendar text: plain text, HTML, or a field that is just a URL."""

from __future__ import annotations

import re

from showup.meetings.link import MeetingLink
from showup.meetings.resolve import may_be_join_host, resolve
from showup.meetings.urls import decode_entities

#: Longest prefix of one text that is scanned. Join links sit near the top of invites; a
#: 2 MB pasted document must not cost a sync worker seconds.
MAX_SCAN_CHARS = 200_000
_MAX_STANDALONE_CHARS = 8192

# A URL in prose: scheme (possibly percent-encoded, for whole-URL-encoded links) and every
# character up to whitespace, a quote, a bracket or an angle bracket. Brackets never occur in
# join links, so "[Join](https://…)" and "https://…(Passcode: 1)" end where they should.
# No leading \b: "jhttps://…" (a typo seen in the wild) still yields its URL.
# Group 1 is the host (up to the first character that cannot be in one), for the pre-filter.
# Case-sensitive on purpose: re scans for a lower-case literal prefix ~7x faster than for an
# IGNORECASE one; _url_pattern() switches to the any-case twin only for texts that need it.
_URL_TAIL = r"""(?::|%3[aA])(?://|%2[fF]%2[fF])([A-Za-z0-9.-]*)[^\s<>"'`()\[\]{}\\^|]*"""
_URL_RE = re.compile(r"(?:https?|zoommtg)" + _URL_TAIL)
_URL_RE_ANY_CASE = re.compile(r"(?:https?|zoommtg)" + _URL_TAIL, re.IGNORECASE)
# An HTML tag or comment/doctype. The name must be followed by whitespace, "/" or ">", so the
# plain-text invite form "<https://…>" is not mistaken for a tag. "[^<>]*" keeps it linear.
_TAG_RE = re.compile(r"<(?:/?[A-Za-z][A-Za-z0-9:-]*(?:\s[^<>]*)?/?|![^<>]*)>")
_HREF_RE = re.compile(r"""\bhref\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""", re.IGNORECASE)
_WHITESPACE_RE = re.compile(r"\s")
# Platforms whose link may appear twice, bare then with its credential (Zoom pwd, Teams p).
_CREDENTIAL_PLATFORMS = frozenset({"zoom", "microsoft_teams"})


def _tag_to_text(match: re.Match[str]) -> str:
    tag = match.group()
    if "href" not in tag.lower():
        return " "
    hrefs = (next(filter(None, groups), "") for groups in _HREF_RE.findall(tag))
    return " " + " ".join(hrefs) + " "


def _prepare(text: str) -> str:
    """Text to scan: capped, HTML tags replaced by their href values, entities decoded.

    Tags become spaces, so "<br>Passcode" cannot glue onto the link before it, and each href
    appears where its anchor stood, so document order is preserved.
    """
    text = text[:MAX_SCAN_CHARS]
    if "<" in text and _TAG_RE.search(text):
        text = _TAG_RE.sub(_tag_to_text, text)
    return decode_entities(text)


def _url_pattern(text: str) -> re.Pattern[str]:
    lower = text.lower()
    if lower.count("http") == text.count("http") and lower.count("zoommtg") == text.count(
        "zoommtg"
    ):
        return _URL_RE
    return _URL_RE_ANY_CASE


def find_in_text(text: str) -> MeetingLink | None:
    """The join link in one non-empty text (see :func:`find_meeting_link`)."""
    stripped = text.strip()
    failed = ""  # a candidate already resolved as standalone, without success
    if stripped and len(stripped) <= _MAX_STANDALONE_CHARS and not _WHITESPACE_RE.search(stripped):
        link = resolve(stripped, standalone=True)
        if link is not None:
            return link
        failed = stripped
    if ":" not in text and "%3" not in text and "&" not in text:
        return None  # no scheme separator, not even encoded: no URL to find in prose
    first: MeetingLink | None = None
    meeting_key = ""
    prepared = _prepare(text)
    for match in _url_pattern(prepared).finditer(prepared):
        if not may_be_join_host(match.group(1)):
            continue
        candidate = match.group()
        if candidate == failed:
            # Standalone resolution accepts everything prose resolution does (it only adds
            # scheme-less forms and the Jitsi guess), so this one cannot resolve either.
            continue
        if first is not None and meeting_key not in candidate:
            continue  # cheap pre-filter: a richer copy of the first link carries its id
        link = resolve(candidate, standalone=False)
        if link is None:
            continue
        if first is None:
            if "?" in link.url or link.platform not in _CREDENTIAL_PLATFORMS:
                return link
            first, meeting_key = link, link.url.rsplit("/", 1)[-1]
        elif link.platform == first.platform and link.url.startswith(first.url + "?"):
            return link
    return first


def find_meeting_link(*texts: str | None) -> MeetingLink | None:
    """The first join link in ``texts``, scanned in the order given; ``None`` if there is none.

    Each text may be plain text, HTML or a bare URL. A text that is one whitespace-free token
    is first tried as a standalone link (scheme-less and self-hosted-Jitsi forms allowed);
    otherwise, and if that fails, the text is scanned and the first URL that resolves to a
    join link wins; non-meeting URLs are skipped. One refinement: when the first link is a
    Zoom or Teams link without its passcode and the *same* meeting appears later in the same
    text with one ("Short: …/j/1 Full: …/j/1?pwd=…"), the later copy is returned.
    ``None`` and empty texts are skipped; only the first :data:`MAX_SCAN_CHARS` of each text
    are read.
    """
    for text in texts:
        if not text or not isinstance(text, str):
            continue
        link = find_in_text(text)
        if link is not None:
            return link
    return None
