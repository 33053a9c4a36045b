"""Low-level URL handling shared by the unwrappers and the platform rules.

Nothing here knows about meeting platforms. The contract is small:

* :func:`clean_candidate` turns a raw candidate (a token cut out of free text, or a whole field)
  into a plausible URL string: entities decoded, wrappers (``<…>``, quotes, brackets) and
  trailing prose punctuation removed.
* :func:`split_url` parses that string into a :class:`Url`, or returns ``None`` when it is not a
  well-formed absolute URL we are willing to look at (bad characters, user-info, bad port,
  non-ASCII host, unknown scheme).
* :meth:`Url.render` turns a :class:`Url` back into text. Path, query and fragment are kept
  byte-for-byte as parsed, so rendering is the identity on what we did not deliberately change.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, replace
from functools import lru_cache
from urllib.parse import quote, unquote, urlsplit

#: Schemes a candidate may carry. ``zoommtg`` is the Zoom desktop deep link; the Zoom rule
#: rewrites it to https. Everything else (tel:, mailto:, msteams:, sip:) is never a join link.
SCHEMES = frozenset({"http", "https", "zoommtg"})

# Only the entities that really occur inside hrefs and plain-text invites. ``html.unescape``
# on whole text would also turn ``&copy=1`` (a legacy entity without ';') into ``©=1``.
_ENTITY_RE = re.compile(r"&(?:amp|quot|apos|lt|gt|nbsp|#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6});")

# Characters that end a URL in prose (with the ellipsis, guillemet and curly quotes). Closing
# brackets are handled separately (only when unbalanced).
_TRAILING_PUNCT = ".,;:!?'\"*`\u2026\u00bb\u201c\u201d\u2018\u2019"
_PAIRS = {")": "(", "]": "[", "}": "{", ">": "<"}
_WRAPPERS = (("<", ">"), ('"', '"'), ("'", "'"), ("(", ")"), ("[", "]"), ("«", "»"))

_HOST_RE = re.compile(
    r"[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?)+"
)
_BAD_CHARS_RE = re.compile(r"[\s\x00-\x1f\x7f<>\\]")
# Characters RFC 3986 forbids but browsers accept and percent-encode (WHATWG URL), e.g. the raw
# JSON some tools put in a Teams ``context=``. Only reachable for standalone candidates: in
# prose they end the URL.
_ENCODE_ON_PARSE = {'"': "%22", "`": "%60", "^": "%5E", "|": "%7C"}
_SCHEMELESS_RE = re.compile(r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?::\d+)?(?:[/?#]|$)")
# The usual shape of a candidate: scheme "://" host (no user-info, port or brackets), then
# path, query and fragment split where urlsplit splits them (the first "#" starts the
# fragment, the first "?" before it the query). One match instead of urlsplit plus its
# port and hostname parsing; every other shape goes through urlsplit.
_PLAIN_URL_RE = re.compile(
    r"([A-Za-z][A-Za-z0-9+.-]*)://([A-Za-z0-9.-]*)(/[^?#]*)?(?:\?([^#]*))?(?:#(.*))?"
)


def decode_entities(text: str) -> str:
    """Decode the HTML entities that hide URLs (``&amp;``, ``&#x68;`` …); leave others alone."""
    if "&" not in text:
        return text
    return _ENTITY_RE.sub(lambda m: html.unescape(m.group()).replace("\xa0", " "), text)


def strip_trailing(text: str) -> str:
    """Drop prose punctuation and unbalanced closing brackets from the end of a URL.

    ``https://x/a_(b)`` keeps its balanced ``)``; ``(https://x/a)`` and ``…/a.`` lose theirs.
    Punctuation runs go in one ``rstrip``; only unbalanced brackets loop (and prose tokens
    never contain brackets, so that loop is short).
    """
    while True:
        text = text.rstrip(_TRAILING_PUNCT)
        last = text[-1:]
        if not last or last not in _PAIRS or text.count(last) <= text.count(_PAIRS[last]):
            return text
        text = text[:-1]


def clean_candidate(text: str) -> str:
    """A raw candidate, trimmed to the URL it most plausibly is (may still not be a URL)."""
    text = decode_entities(text.strip())
    changed = True
    while changed and text:
        changed = False
        for opening, closing in _WRAPPERS:
            if len(text) >= 2 and text[0] == opening and text[-1] == closing:
                text = text[1:-1].strip()
                changed = True
        if text and text[0] in "<\"'([«":
            text = text[1:].lstrip()
            changed = True
        stripped = strip_trailing(text)
        if stripped != text:
            text = stripped
            changed = True
    return text


@dataclass(frozen=True, slots=True)
class Url:
    """An absolute URL split into parts. ``path``/``query``/``fragment`` are raw (still encoded).

    ``query`` is the ordered list of raw ``name=value`` pairs; a pair without ``=`` has value
    ``None``. Hosts are lower-case ASCII without a trailing dot; ``port`` is ``None`` when absent
    or the scheme's default.
    """

    scheme: str
    host: str
    port: int | None
    path: str
    query: tuple[tuple[str, str | None], ...]
    fragment: str

    def param(self, name: str) -> str | None:
        """The percent-decoded value of the first query parameter ``name`` (exact name match)."""
        return find_param(self.query, name)

    @property
    def raw_query(self) -> str:
        return "&".join(key if value is None else f"{key}={value}" for key, value in self.query)

    def render(self) -> str:
        netloc = self.host if self.port is None else f"{self.host}:{self.port}"
        text = f"{self.scheme}://{netloc}{self.path}"
        if self.query:
            text += "?" + self.raw_query
        if self.fragment:
            text += "#" + self.fragment
        return text

    def with_parts(
        self,
        *,
        path: str | None = None,
        query: tuple[tuple[str, str | None], ...] | None = None,
        fragment: str | None = None,
    ) -> Url:
        return replace(
            self,
            path=self.path if path is None else path,
            query=self.query if query is None else query,
            fragment=self.fragment if fragment is None else fragment,
        )


def parse_query(raw: str) -> tuple[tuple[str, str | None], ...]:
    """Split a raw query into pairs without decoding (so re-rendering is lossless).

    A pair whose ``=`` arrived percent-encoded (``pwd%3Dabc`` — seen after Google Calendar's
    redirect wrapper) is split at the decoded ``=`` so the parameter is not lost.
    """
    pairs: list[tuple[str, str | None]] = []
    for part in raw.split("&"):
        if not part:
            continue
        if "=" in part:
            key, value = part.split("=", 1)
            pairs.append((key, value))
        elif "%3d" in part.lower():
            key, value = unquote(part).split("=", 1)
            pairs.append((quote(key, safe=""), quote(value, safe="")))
        else:
            pairs.append((part, None))
    return tuple(pairs)


def find_param(pairs: tuple[tuple[str, str | None], ...], name: str) -> str | None:
    """The percent-decoded value of the first pair named ``name``; ``""`` for a bare name."""
    for key, value in pairs:
        if unquote(key) == name:
            return unquote(value) if value is not None else ""
    return None


def encode_component(value: str, safe: str = "") -> str:
    """Percent-encode one decoded component with upper-case hex (RFC 3986 §6.2.2.1)."""
    return quote(value, safe=safe)


def split_url(text: str, *, allow_schemeless: bool = False) -> Url | None:
    """Parse a cleaned candidate into a :class:`Url`, or ``None`` if it is not acceptable.

    Rejected: whitespace/control/quote characters, user-info (``https://zoom.us@evil.com`` is a
    classic look-alike), non-numeric or out-of-range ports, non-ASCII or malformed hosts, and
    schemes outside :data:`SCHEMES`. With ``allow_schemeless`` a bare ``host.tld/path`` gets
    ``https://`` (used only when a whole field is one link, never inside prose).
    """
    if not text or len(text) > 8192 or _BAD_CHARS_RE.search(text):
        return None
    for char, escape in _ENCODE_ON_PARSE.items():
        if char in text:
            text = text.replace(char, escape)
    if "://" not in text[:16]:
        if not allow_schemeless or not _SCHEMELESS_RE.match(text):
            return None
        text = "https://" + text
    plain = _PLAIN_URL_RE.fullmatch(text)
    if plain is not None:
        scheme_text, netloc, path, query, fragment = plain.groups()
        scheme = scheme_text.lower()
        if scheme not in SCHEMES:
            return None
        host = netloc.lower().rstrip(".")
        if not _HOST_RE.fullmatch(host):
            return None
        return Url(scheme, host, None, path or "", parse_query(query or ""), fragment or "")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES or "@" in parts.netloc:
        return None
    host = (parts.hostname or "").rstrip(".")
    if not host.isascii() or not _HOST_RE.fullmatch(host):
        return None
    if port is not None and (port == 0 or port == {"http": 80, "https": 443}.get(scheme)):
        port = None
    return Url(
        scheme=scheme,
        host=host,
        port=port,
        path=parts.path,
        query=parse_query(parts.query),
        fragment=parts.fragment,
    )


@lru_cache(maxsize=4096)
def host_suffixes(host: str) -> tuple[str, ...]:
    """``a.b.zoom.us`` → ``('a.b.zoom.us', 'b.zoom.us', 'zoom.us', 'us')``.

    Matching a rule against these (never with ``in`` or ``endswith`` on the raw host) is what
    keeps ``zoom.us.evil.com`` and ``evilzoom.us`` out. Cached: a sync meets the same few
    hosts on every event, and unwrapping and matching both ask.
    """
    labels = host.split(".")
    return tuple(".".join(labels[i:]) for i in range(len(labels)))
