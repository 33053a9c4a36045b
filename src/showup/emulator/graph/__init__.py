"""Microsoft identity v2.0 and Microsoft Graph v1.0 emulation over the fake world
(PROTOCOLS §2, §5). See docs/emulator.md "Microsoft Graph".

Python helpers for tests: Graph ids and renderings of world events, and the
subscription hub.
"""

from __future__ import annotations

from typing import Any

from showup.emulator.graph import ids
from showup.emulator.graph import serialize as ser
from showup.emulator.graph.subscriptions import SubscriptionHub, hub_for
from showup.emulator.model import copy_json
from showup.emulator.world import World

__all__ = [
    "SubscriptionHub",
    "graph_calendar_id",
    "graph_event",
    "graph_event_id",
    "graph_user_id",
    "subscriptions",
]


def graph_event_id(world: World, email: str, event_id: str, calendar_id: str = "primary") -> str:
    """The Graph id of a world event, series or instance in ``email``'s mailbox."""
    with world.lock:
        cal = world.calendar(email, calendar_id)
        entry, occ = world._target(cal, event_id)
        return ser.item_id(cal, entry, occ)


def graph_event(
    world: World, email: str, event_id: str, calendar_id: str = "primary"
) -> dict[str, Any]:
    """The full Graph rendering (UTC, HTML body) as ``email``'s mailbox holds it;
    ``event_id`` may be a world id or a Graph id. Cancelled items render too."""
    with world.lock:
        cal = world.calendar(email, calendar_id)
        entry, occ = world._target(cal, event_id)
        return copy_json(ser.render(cal, entry, occ, ser.View()))  # type: ignore[no-any-return]


def graph_calendar_id(world: World, email: str, calendar_id: str = "primary") -> str:
    with world.lock:
        return ids.calendar_id(world.calendar(email, calendar_id).id)


def graph_user_id(email: str) -> str:
    return ids.user_id(email)


def subscriptions(world: World) -> SubscriptionHub:
    return hub_for(world)
