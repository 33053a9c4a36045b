"""Remove the redirect wrappers that mail and calendar systems put around join links.

A wrapped link is still the organiser's link: the bot has to join the target, and the dedup
key must be the target, or two attendees (one behind Safe Links, one not) get two bots.

Handled wrappers (each is a host we trust to carry the target in a known parameter):

* Microsoft Defender **Safe Links**: ``<region>.safelinks.protection.outlook.com/?url=…``
  (any path, e.g. ``/ap/t-xyz/``), the US-government ``safelinks.protection.office365.us``
  and the Teams client variant ``statics.teams.cdn.office.net/evergreen-assets/safelinks/…``.
* **Google redirect**: ``www.google.com/url?q=…`` (also ``url=``), as Gmail and Calendar
  descriptions produce it. Parameters of an unencoded target that leaked into the wrapper's
  own query (``q=https://zoom.us/j/1?x=1&pwd=…``) are given back to the target.
* **Proofpoint URL Defense** v2 (``urldefense.proofpoint.com/v2/url?u=…``) and v3 without
  character substitutions (``urldefense.com/v3/__<url>__;…``).

Teams' own launcher/deep-link forms are not wrappers in this sense (the host stays Teams);
:mod:`showup.meetings.teams` reads them.

Unwrapping is bounded (:data:`MAX_ROUNDS`) so a self-referential or nested wrapper terminates,
and a target that fails to parse ends the chain with ``None``, never with the wrapper itself.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from showup.meetings.urls import Url, clean_candidate, host_suffixes, split_url

MAX_ROUNDS = 5
#: How many times a percent-encoded candidate (``https%3A%2F%2F…``) is decoded, at most.
MAX_DECODE_ROUNDS = 3

_SAFELINK_SUFFIXES = frozenset(
    {"safelinks.protection.outlook.com", "safelinks.protection.office365.us"}
)
_GOOGLE_HOSTS = frozenset({"google.com", "www.google.com"})
# Google's own parameters on /url; anything else came from the unencoded target's query.
_GOOGLE_OWN_PARAMS = frozenset(
    {"q", "url", "sa", "source", "ust", "usg", "ved", "esrc", "rct", "cd", "cad", "uact", "opi"}
)
_URLDEFENSE_V3_RE = re.compile(r"^https://urldefense\.com/v3/__(.+?)__;")
_ENCODED_SCHEME_RE = re.compile(r"^(?:https?|zoommtg)%3a", re.IGNORECASE)


def decode_encoded_url(text: str) -> str:
    """Decode a candidate that is a whole percent-encoded URL (``https%3A%2F%2F…``).

    Only a candidate that *starts* with an encoded scheme is decoded, so ordinary URLs keep
    their meaningful escapes. A malformed escape (``%xx``) is left as is (no loop, no error).
    """
    rounds = 0
    while rounds < MAX_DECODE_ROUNDS and _ENCODED_SCHEME_RE.match(text):
        decoded = unquote(text)
        if decoded == text:
            break
        text = decoded
        rounds += 1
    return text


def _parse_target(target: str | None) -> Url | None:
    if not target:
        return None
    return split_url(decode_encoded_url(clean_candidate(target)))


def _google_target(url: Url) -> Url | None:
    target = url.param("q") or url.param("url")
    parsed = _parse_target(target)
    if parsed is None:
        return None
    leaked = tuple(pair for pair in url.query if unquote(pair[0]) not in _GOOGLE_OWN_PARAMS)
    if leaked and parsed.query and "?" in (target or ""):
        parsed = parsed.with_parts(query=parsed.query + leaked)
    return parsed


def _urldefense_target(url: Url) -> Url | None:
    if url.path.startswith("/v2/url"):
        encoded = url.param("u")
        if not encoded:
            return None
        # v2 encoding: '-' stands for '%', '_' for '/'.
        return _parse_target(unquote(encoded.replace("-", "%").replace("_", "/")))
    # v3 embeds the target unencoded, so its '?' and '#' split the wrapper: read it whole.
    match = _URLDEFENSE_V3_RE.match(url.render())
    if match and "*" not in match.group(1):
        return _parse_target(match.group(1))
    return None


def is_wrapper_host(host: str) -> bool:
    """Whether ``host`` (lower-case) is one of the redirectors :func:`unwrap` follows."""
    return (
        host in _GOOGLE_HOSTS
        or host in ("urldefense.proofpoint.com", "urldefense.com", "statics.teams.cdn.office.net")
        or any(suffix in _SAFELINK_SUFFIXES for suffix in host_suffixes(host))
    )


def _unwrap_once(url: Url) -> tuple[bool, Url | None]:
    """``(is_wrapper, target)``; the target is ``None`` when the wrapper's payload is unusable."""
    host = url.host
    if any(suffix in _SAFELINK_SUFFIXES for suffix in host_suffixes(host)):
        return True, _parse_target(url.param("url"))
    if host == "statics.teams.cdn.office.net" and "/safelinks/" in url.path:
        return True, _parse_target(url.param("url"))
    if host in _GOOGLE_HOSTS and url.path == "/url":
        return True, _google_target(url)
    if host in ("urldefense.proofpoint.com", "urldefense.com"):
        return True, _urldefense_target(url)
    return False, url


def unwrap(url: Url) -> Url | None:
    """Follow wrappers to the innermost URL; ``None`` if a wrapper's target is unusable."""
    for _ in range(MAX_ROUNDS):
        wrapped, inner = _unwrap_once(url)
        if not wrapped or inner is None:
            return inner
        url = inner
    # Still wrapped after MAX_ROUNDS: a loop or an absurd chain; not a join link.
    return None
