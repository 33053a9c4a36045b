"""Plan, then act: turn one page of provider changes into typed actions (pure).

The decision table, for a remote item against what is stored for the same platform id:

| remote            | stored                     | action                                 |
|-------------------|----------------------------|----------------------------------------|
| live event        | none, overlaps window      | Insert                                 |
| live event        | none, outside window       | nothing (picked up when it enters)     |
| live event        | same fingerprint, live     | nothing                                |
| live event        | other fingerprint, or deleted | Update (``updated_at`` moves)       |
| deletion          | live                       | MarkDeleted (``updated_at`` moves)     |
| deletion          | deleted, or none           | nothing                                |
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from showup.providers.base import ChangePage, RemoteEvent, SyncWindow

# Provider bookkeeping that changes without anything a user can see changing.
_VOLATILE_RAW_KEYS = frozenset(
    {"etag", "updated", "sequence", "@odata.etag", "changeKey", "lastModifiedDateTime"}
)


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


Action = Insert | Update | MarkDeleted


def fingerprint(ev: RemoteEvent) -> str:
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
        "raw": {k: v for k, v in ev.raw.items() if k not in _VOLATILE_RAW_KEYS},
    }
    blob = json.dumps(visible, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.blake2b(blob.encode(), digest_size=16).hexdigest()


def event_values(ev: RemoteEvent, fp: str) -> dict[str, Any]:
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
        "attendees": [a.as_dict() for a in ev.attendees],
        "meeting_url": ev.meeting_url,
        "meeting_platform": ev.meeting_platform,
        "raw": ev.raw,
        "fingerprint": fp,
    }


def overlaps(start: datetime, end: datetime, window: SyncWindow) -> bool:
    # Google's own window semantics: timeMin bounds the end, timeMax bounds the start,
    # both exclusive (PROTOCOLS §1.2).
    return end > window.start and start < window.end


def plan_page(page: ChangePage, stored: dict[str, Stored], window: SyncWindow) -> list[Action]:
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
        fp = fingerprint(ev)
        if have is None:
            if overlaps(ev.start_time, ev.end_time, window):
                actions.append(Insert(event_values(ev, fp)))
        elif have.is_deleted or have.fingerprint != fp:
            actions.append(Update(have.id, event_values(ev, fp)))
    return actions
