"""Join links of provider events: which fields are read, in which order.

The order is the precedence: the provider's own join button first (it is authoritative and
already unwrapped), then the fields a human typed. A Teams invite received by a Google user has
no ``conferenceData``; its link is only in the description or the location, so free-text
fields are always read when the structured ones give nothing.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from showup.meetings.extract import find_in_text, find_meeting_link
from showup.meetings.link import MeetingLink


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _graph_texts(raw: Mapping[str, Any]) -> Iterator[str | None]:
    yield _str(_mapping(raw.get("onlineMeeting")).get("joinUrl"))
    yield _str(raw.get("onlineMeetingUrl"))
    for location in [raw.get("location"), *_list(raw.get("locations"))]:
        location = _mapping(location)
        yield _str(location.get("displayName"))
        yield _str(location.get("locationUri"))
    yield _str(_mapping(raw.get("body")).get("content"))
    yield _str(raw.get("subject"))


_GOOGLE_TEXT_FIELDS = ("hangoutLink", "location", "description", "summary")


def from_google_event(raw: Mapping[str, Any]) -> MeetingLink | None:
    """Join link of a Google Calendar v3 event resource.

    Precedence: ``conferenceData.entryPoints[]`` of type ``video`` (``uri``), ``hangoutLink``,
    ``location``, ``description`` (HTML or plain), ``summary``. Fields of the wrong type are
    ignored; the payload is never modified. Fields are read lazily, so an event whose
    conference entry resolves costs one URL parse.
    """
    # Unrolled (no generator, no varargs): this runs for every event of every sync.
    for entry in _list(_mapping(raw.get("conferenceData")).get("entryPoints")):
        if isinstance(entry, Mapping) and entry.get("entryPointType") == "video":
            uri = entry.get("uri")
            if isinstance(uri, str) and uri and (link := find_in_text(uri)) is not None:
                return link
    for key in _GOOGLE_TEXT_FIELDS:
        text = raw.get(key)
        if isinstance(text, str) and text and (link := find_in_text(text)) is not None:
            return link
    return None


def from_graph_event(raw: Mapping[str, Any]) -> MeetingLink | None:
    """Join link of a Microsoft Graph ``event`` resource.

    Precedence: ``onlineMeeting.joinUrl``, ``onlineMeetingUrl`` (deprecated, still sent),
    ``location.displayName``/``locationUri`` then each of ``locations[]``, ``body.content``
    (usually HTML, where Safe Links often wrap the Teams link), ``subject``.
    """
    for text in _graph_texts(raw):
        link = find_meeting_link(text)
        if link is not None:
            return link
    return None
