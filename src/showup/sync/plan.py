"""Plan, then act: turn one page of provider changes into typed actions (pure).

The decision table, for a remote item against what is stored for the same platform id:

| remote     | stored                                        | action                             |
|------------|-----------------------------------------------|------------------------------------|
| live event | none, overlaps window                         | Insert                             |
| live event | none, outside window                          | nothing (picked up when it enters) |
| live event | same fingerprint, live                        | nothing                            |
| live event | older fingerprint version, live, same content | Refresh (the fingerprint only)     |
| live event | other fingerprint, or deleted                 | Update (``updated_at`` moves)      |
| deletion   | live                                          | MarkDeleted (``updated_at`` moves) |
| deletion   | deleted, or none                              | nothing                            |

Fingerprints
------------
A fingerprint hashes what a user can see of an event: the derived columns and the
provider's payload minus its bookkeeping (:data:`_VOLATILE_RAW_KEYS`). ``updated_at`` moves
only when it changes (DESIGN, issue 2). The payload's JSON text is made once per event
(:func:`encode`), or is the provider's own text (:class:`~showup.providers.base.RawJSON`,
Google's pages), and serves twice: it is hashed, and it is what the ``raw`` column stores
(:class:`~showup.db.types.JSONText`); likewise the attendees' JSON.

Fingerprints carry their version as a prefix (``"3:" + hex``). Two versions are current:
3 hashes orjson's canonical UTF-8 text (sorted keys) of a decoded payload, 4 the
provider's compact text of a payload that was never decoded (its key order is the
provider's, fixed per resource). Earlier versions hashed other serializations of the same
fields: version 1 (no prefix, 32 hex digits) a JSON object with blake2b, version 2
(``"2:"``) the stdlib's ASCII-escaped JSON texts. A row stored with another version than
the remote event's is compared by recomputing that version's fingerprint from the remote
event (:func:`fingerprint_v1`, :func:`fingerprint_v2`, :func:`fingerprint_v3`): equal
means nothing visible changed, and the row only gets the new fingerprint (Refresh,
``updated_at`` stays), so the first sync after an upgrade does not rewrite every event.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import orjson

from showup.db.types import JSONText
from showup.providers.base import Attendee, ChangePage, RawJSON, RemoteEvent, SyncWindow
from showup.providers.http import decode_json

# Provider bookkeeping that changes without anything a user can see changing.
_VOLATILE_RAW_KEYS = frozenset(
    {"etag", "updated", "sequence", "@odata.etag", "changeKey", "lastModifiedDateTime"}
)

FINGERPRINT_VERSION = "3"
_PREFIX = FINGERPRINT_VERSION + ":"
# The same parts, with the provider's own JSON text of the payload (RawJSON) hashed instead
# of the canonical encoding of its decoded value.
FINGERPRINT_VERSION_TEXT = "4"
_PREFIX_TEXT = FINGERPRINT_VERSION_TEXT + ":"

# Version 2's encoders (the stdlib's, ASCII-only output as SQLAlchemy's JSON columns write
# it). Version 3 falls back to the first for what orjson cannot encode.
_canonical_v2 = json.JSONEncoder(sort_keys=True, separators=(",", ":")).encode
_compact_v2 = json.JSONEncoder(separators=(",", ":")).encode
_SORT_KEYS = orjson.OPT_SORT_KEYS


def _canonical(value: Any) -> bytes:
    """Compact JSON of ``value`` with sorted keys: the same object always gives the same
    text, whatever order the provider sent its keys in (a reordering is not a change a user
    can see). orjson's UTF-8; for what orjson refuses (a lone surrogate from a ``"\ud800"``
    escape, an integer beyond 64 bits, nesting past its depth limit) the stdlib's
    ASCII-escaped text, which stays encodable. Either way it is a function of the value.

    One difference from the stdlib remains: orjson writes a NaN or infinite float as
    ``null`` (valid JSON, which PostgreSQL accepts; the stdlib's ``NaN`` is not). Only a
    body that orjson refused to decode can hold one (``http.decode_json``).
    """
    try:
        return orjson.dumps(value, option=_SORT_KEYS)
    except orjson.JSONEncodeError:
        return _canonical_v2(value).encode("ascii")


@dataclass(frozen=True, slots=True)
class Stored:
    id: str
    fingerprint: str
    is_deleted: bool


@dataclass(frozen=True, slots=True)
class Insert:
    values: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Update:
    id: str
    values: dict[str, Any]


@dataclass(frozen=True, slots=True)
class MarkDeleted:
    id: str
    raw: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Refresh:
    """Only the fingerprint's format is out of date: rewrite it, nothing else."""

    id: str
    fingerprint: str


Action = Insert | Update | MarkDeleted | Refresh


@dataclass(frozen=True, slots=True)
class Encoded:
    """An event's JSON texts, made once: hashed for the fingerprint and stored as is."""

    fingerprint: str
    raw: JSONText
    attendees: JSONText


# Attendee values are frozen, and the normalizers hand out one cached instance per person
# and answer, which recurs on every occurrence of a series and across a calendar: each
# instance is encoded once. Keyed by identity (hashing the dataclass costs more than the
# lookup); the entry holds the instance, so its id cannot be reused while it is cached.
_ATTENDEE_JSON: dict[int, tuple[Attendee, str]] = {}
_ATTENDEE_JSON_MAX = 16384


def _attendee_json(attendee: Attendee) -> str:
    hit = _ATTENDEE_JSON.get(id(attendee))
    if hit is not None and hit[0] is attendee:
        return hit[1]
    if len(_ATTENDEE_JSON) >= _ATTENDEE_JSON_MAX:
        _ATTENDEE_JSON.clear()
    text = _canonical(attendee.as_dict()).decode()
    _ATTENDEE_JSON[id(attendee)] = (attendee, text)
    return text


def _derived(ev: RemoteEvent) -> str:
    # repr of a tuple of str/None/bool: unambiguous and the same in every process.
    return repr(
        (
            ev.title,
            ev.start_time.isoformat(),
            ev.end_time.isoformat(),
            ev.is_all_day,
            ev.status,
            ev.organizer_email,
            ev.meeting_url,
            ev.meeting_platform,
            ev.ical_uid,
            ev.recurring_event_id,
        )
    )


def encode(ev: RemoteEvent) -> Encoded:
    raw = ev.raw
    if isinstance(raw, RawJSON):
        # The provider's own text: stored as is, hashed without its bookkeeping.
        return _encoded(ev, _PREFIX_TEXT, raw.stable, JSONText(raw.text))
    volatile = _VOLATILE_RAW_KEYS.intersection(raw)
    if volatile:
        stable = dict(raw)
        for key in volatile:
            del stable[key]
        stable_json = _canonical(stable)
        # Bookkeeping goes after the rest, in the same object: the same JSON value as raw.
        # Sorted keys put it in a fixed order; it is not hashed.
        volatile_json = _canonical({key: raw[key] for key in volatile})
        sep = b"," if len(stable_json) > 2 else b""
        raw_json = stable_json[:-1] + sep + volatile_json[1:]
    else:
        stable_json = raw_json = _canonical(raw)
    return _encoded(ev, _PREFIX, stable_json, JSONText(raw_json.decode()))


def _encoded(ev: RemoteEvent, prefix: str, stable_json: bytes, raw: JSONText) -> Encoded:
    attendees_text = "[" + ",".join([_attendee_json(a) for a in ev.attendees]) + "]"
    # The three parts cannot run into each other: each ends where its syntax says. A title
    # may hold a lone surrogate (from a "\ud800" escape); the JSON texts are valid UTF-8.
    blob = b"\n".join(
        (_derived(ev).encode("utf-8", "surrogatepass"), attendees_text.encode(), stable_json)
    )
    digest = hashlib.sha256(blob).hexdigest()[:32]
    return Encoded(prefix + digest, raw, JSONText(attendees_text))


def fingerprint(ev: RemoteEvent) -> str:
    """The current version's fingerprint of what a user can see of ``ev``."""
    return encode(ev).fingerprint


def fingerprint_v1(ev: RemoteEvent) -> str:
    """Version 1's fingerprint (stored by releases before version 2), to recognise rows
    whose visible content has not changed since. Kept only for that comparison."""
    visible = {
        "t": ev.title,
        "s": ev.start_time.isoformat(),
        "e": ev.end_time.isoformat(),
        "a": ev.is_all_day,
        "st": ev.status,
        "o": ev.organizer_email,
        "at": [a.as_dict() for a in ev.attendees],
        "u": ev.meeting_url,
        "p": ev.meeting_platform,
        "i": ev.ical_uid,
        "r": ev.recurring_event_id,
        "raw": {k: v for k, v in _payload(ev).items() if k not in _VOLATILE_RAW_KEYS},
    }
    blob = json.dumps(visible, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.blake2b(blob.encode(), digest_size=16).hexdigest()


def fingerprint_v2(ev: RemoteEvent) -> str:
    """Version 2's fingerprint (stored by releases before version 3: the same parts as
    :func:`encode` hashes, serialized by the stdlib), to recognise rows whose visible content
    has not changed since. Kept only for that comparison."""
    stable = {k: v for k, v in _payload(ev).items() if k not in _VOLATILE_RAW_KEYS}
    attendees_text = _compact_v2([a.as_dict() for a in ev.attendees])
    blob = f"{_derived(ev)}\n{attendees_text}\n{_canonical_v2(stable)}"
    return "2:" + hashlib.sha256(blob.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def fingerprint_v3(ev: RemoteEvent) -> str:
    """Version 3's fingerprint (of the decoded payload), for an event read as its JSON text
    (version 4), to recognise rows stored by releases that decoded every payload."""
    return encode(replace(ev, raw=_payload(ev))).fingerprint


def _payload(ev: RemoteEvent) -> dict[str, Any]:
    raw = ev.raw
    if isinstance(raw, RawJSON):
        value = decode_json(raw.text.encode())
        return value if isinstance(value, dict) else {}
    return raw


def _same_as_stored(ev: RemoteEvent, stored_fp: str) -> bool:
    """For a stored fingerprint of another version: did nothing visible change?"""
    if ":" not in stored_fp:
        return fingerprint_v1(ev) == stored_fp
    if stored_fp.startswith("2:"):
        return fingerprint_v2(ev) == stored_fp
    if stored_fp.startswith(_PREFIX) and isinstance(ev.raw, RawJSON):
        return fingerprint_v3(ev) == stored_fp
    # An unknown (newer or corrupt) version, or version 4 against a payload that came
    # decoded (only when the provider's text could not be read as typed): rewrite the row.
    return False


def _row(ev: RemoteEvent, enc: Encoded) -> dict[str, Any]:
    return {
        "platform_id": ev.platform_id,
        "ical_uid": ev.ical_uid,
        "recurring_event_id": ev.recurring_event_id,
        "title": ev.title,
        "start_time": ev.start_time,
        "end_time": ev.end_time,
        "is_all_day": ev.is_all_day,
        "status": ev.status,
        "is_deleted": False,
        "deleted_at": None,
        "organizer_email": ev.organizer_email,
        "attendees": enc.attendees,
        "meeting_url": ev.meeting_url,
        "meeting_platform": ev.meeting_platform,
        "raw": enc.raw,
        "fingerprint": enc.fingerprint,
    }


def event_values(ev: RemoteEvent, fp: str | None = None) -> dict[str, Any]:
    """The columns of ``ev``'s row (``raw`` and ``attendees`` as :class:`JSONText`, for the
    ``events`` table's JSONDocument columns). ``fp`` overrides the fingerprint."""
    values = _row(ev, encode(ev))
    if fp is not None:
        values["fingerprint"] = fp
    return values


def overlaps(start: datetime, end: datetime, window: SyncWindow) -> bool:
    # Google's own window semantics: timeMin bounds the end, timeMax bounds the start,
    # both exclusive (PROTOCOLS §1.2).
    return end > window.start and start < window.end


def encode_page(page: ChangePage) -> dict[str, Encoded]:
    """:func:`encode` of every upsert of ``page`` (the last one of an id wins, as in
    :func:`plan_page`), made before the page's transaction opens: on SQLite every
    transaction holds the one write lock, so the CPU spent here stays outside it."""
    return {ev.platform_id: encode(ev) for ev in page.upserts}


def plan_page(
    page: ChangePage,
    stored: dict[str, Stored],
    window: SyncWindow,
    encoded: dict[str, Encoded] | None = None,
) -> list[Action]:
    """The actions for ``page`` against ``stored``; ``encoded`` is :func:`encode_page`'s
    result when the caller made it already (else each event is encoded here)."""
    actions: list[Action] = []
    # A page may name one id twice (replays); the last word wins.
    latest: dict[str, RemoteEvent | None] = {}
    deletion_raw: dict[str, dict[str, Any]] = {}
    for d in page.deletions:
        latest[d.platform_id] = None
        deletion_raw[d.platform_id] = d.raw
    for ev in page.upserts:
        latest[ev.platform_id] = ev
    for pid, maybe in latest.items():
        have = stored.get(pid)
        if maybe is None:
            if have is not None and not have.is_deleted:
                actions.append(MarkDeleted(have.id, deletion_raw.get(pid, {})))
            continue
        ev = maybe
        if have is None:
            if overlaps(ev.start_time, ev.end_time, window):
                actions.append(Insert(_row(ev, encoded[pid] if encoded else encode(ev))))
            continue
        enc = encoded[pid] if encoded else encode(ev)
        if have.fingerprint == enc.fingerprint and not have.is_deleted:
            continue
        if (
            not have.is_deleted
            and not have.fingerprint.startswith(enc.fingerprint[:2])
            and _same_as_stored(ev, have.fingerprint)
        ):
            actions.append(Refresh(have.id, enc.fingerprint))
        else:
            actions.append(Update(have.id, _row(ev, enc)))
    return actions
