"""Graph identifiers over world ids (PROTOCOLS §2.3 "Identity"; §2.2 "ImmutableId").

Graph ids are opaque strings. Exchange gives each mailbox its own item id for the same
meeting and every occurrence its own id, so an event id here encodes the calendar (the
mailbox copy) and the world id (series, single or instance id). Ids are URL-safe base64
behind an Exchange-looking prefix, and never change when an item moves (as with
``Prefer: IdType="ImmutableId"``).

This module imports nothing of the world so that :mod:`showup.emulator.mutations` can
decode Graph ids lazily.
"""

from __future__ import annotations

import base64
import binascii
import uuid

EVENT_PREFIX = "AAMkAGE"
CALENDAR_PREFIX = "AAMkAGC"
_SEP = "\x1f"
_NAMESPACE = uuid.UUID("6f2d7d38-3a51-4c1e-9a8e-5b7c0e2f9d10")


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _unb64(text: str) -> str | None:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def event_id(calendar_id: str, world_id: str) -> str:
    """The Graph id of a world event or instance as it sits on ``calendar_id``."""
    return EVENT_PREFIX + _b64(calendar_id + _SEP + world_id)


def parse_event_id(graph_id: str) -> tuple[str, str] | None:
    """``(calendar id, world id)`` of a Graph event id, or None if it is not one."""
    if not graph_id.startswith(EVENT_PREFIX):
        return None
    raw = _unb64(graph_id[len(EVENT_PREFIX) :])
    if raw is None or raw.count(_SEP) != 1:
        return None
    cal, world = raw.split(_SEP)
    return (cal, world) if cal and world else None


def calendar_id(world_calendar_id: str) -> str:
    return CALENDAR_PREFIX + _b64(world_calendar_id)


def parse_calendar_id(graph_id: str) -> str | None:
    if not graph_id.startswith(CALENDAR_PREFIX):
        return None
    return _unb64(graph_id[len(CALENDAR_PREFIX) :]) or None


def user_id(email: str) -> str:
    """A stable GUID for a user (``/me`` ``id``, ``Users/{id}/Events/…`` resources)."""
    return str(uuid.uuid5(_NAMESPACE, "user:" + email.lower()))


def tenant_id(email: str) -> str:
    """A stable GUID per e-mail domain (the directory tenant)."""
    return str(uuid.uuid5(_NAMESPACE, "tenant:" + email.lower().rpartition("@")[2]))
