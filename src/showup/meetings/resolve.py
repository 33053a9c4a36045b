"""One candidate string → :class:`MeetingLink` or ``None``: clean, decode, unwrap, match."""

from __future__ import annotations

from functools import lru_cache

from showup.meetings.link import MeetingLink
from showup.meetings.platforms import canonicalize, is_platform_host
from showup.meetings.unwrap import decode_encoded_url, is_wrapper_host, unwrap
from showup.meetings.urls import clean_candidate, split_url, strip_trailing

#: Longer candidates are not join links (the longest real ones, Teams with context, are ~400).
MAX_CANDIDATE_CHARS = 8192


@lru_cache(maxsize=4096)
def may_be_join_host(host: str) -> bool:
    """Cheap pre-filter for URLs found in prose: could a URL on ``host`` resolve to a link?

    True for platform and wrapper hosts. Invites are full of other links (docs, help pages,
    tracking pixels); skipping them before parsing is most of the cost of a long body.
    Cached: the same few hosts recur across every event of a sync.
    """
    host = host.lower().rstrip(".")
    if len(host) > 253:  # longer than any DNS name
        return False
    return is_platform_host(host) or is_wrapper_host(host)


def resolve(candidate: str, *, standalone: bool) -> MeetingLink | None:
    """Resolve one candidate (a token from prose, or a whole field when ``standalone``).

    ``standalone`` says the candidate is a whole field or an argument given as "this is the
    link" (not a token cut out of prose). Only then is a scheme-less ``zoom.us/j/1`` accepted
    and the self-hosted Jitsi guess made; inside prose both meet too many look-alikes.
    Candidates longer than :data:`MAX_CANDIDATE_CHARS` are not links (and are not cached).
    """
    if len(candidate) > MAX_CANDIDATE_CHARS:
        return None
    return _resolve(candidate, standalone)


# Pure, so cached: a recurring series repeats the same link in every expanded occurrence, and
# a sync sees it once per occurrence. Keys are bounded by MAX_CANDIDATE_CHARS.
@lru_cache(maxsize=8192)
def _resolve(candidate: str, standalone: bool) -> MeetingLink | None:
    text = decode_encoded_url(clean_candidate(candidate))
    url = split_url(text, allow_schemeless=standalone)
    if url is None:
        return None
    url = unwrap(url)
    if url is None:
        return None
    match = canonicalize(url, heuristics=standalone)
    if match is None:
        return None
    platform, canonical = match
    rendered = canonical.render()
    if strip_trailing(rendered) != rendered:
        # Ends in prose punctuation (a Teams thread ":" or a room "x."): read back from text
        # it would lose that character, so it is not a stable key, and no real link ends so.
        return None
    return MeetingLink(url=rendered, platform=platform)
