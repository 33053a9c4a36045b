"""Test kit for Microsoft push: Graph's side (the emulator's subscription hub and outbox)
delivering to our app over ASGI, including the validation handshake, and the requests Graph
sends, built by hand."""

from __future__ import annotations

import json
from typing import Any

import httpx

from showup.emulator.graph import subscriptions
from showup.emulator.graph.subscriptions import Subscription
from tests.sync.helpers import Connector

ALICE = "alice@example.com"
URL = "http://showup.test/push/microsoft"
LIFECYCLE_URL = URL + "/lifecycle"


class Graph:
    def __init__(self, world: Any, client: httpx.AsyncClient) -> None:
        self.world = world
        self.client = client
        world.outbox.client = client  # the validation handshake reaches our app too

    @property
    def hub(self) -> Any:
        return subscriptions(self.world)

    def live(self) -> list[Subscription]:
        """Subscriptions that Graph would notify now."""
        self.hub.check()
        return list(self.hub.subscriptions.values())

    async def deliver(self) -> list[tuple[str, int | None]]:
        """Send every queued notification and lifecycle event once: ``(label, status)``."""
        sent = await self.world.outbox.deliver(self.client)
        return [(m.label, m.statuses[-1]) for m in sent]

    def drop(self) -> int:
        n = len(self.world.outbox.pending)
        self.world.outbox.pending.clear()
        return n

    def lifecycle(self, event: str) -> None:
        [sub] = self.live()
        self.hub.lifecycle(sub.id, event)

    async def post(
        self,
        items: list[dict[str, Any]],
        *,
        channel: str | None,
        lifecycle: bool = False,
    ) -> httpx.Response:
        url = LIFECYCLE_URL if lifecycle else URL
        params = {"channel": channel} if channel is not None else {}
        return await self.client.post(
            url,
            params=params,
            content=json.dumps({"value": items}),
            headers={"Content-Type": "application/json; charset=utf-8"},
        )


def change(sub_id: str, state: str | None, kind: str = "updated") -> dict[str, Any]:
    """A change notification item as Graph sends it (PROTOCOLS §2.4)."""
    return {
        "id": "00000000-0000-0000-0000-000000000001",
        "subscriptionId": sub_id,
        "subscriptionExpirationDateTime": "2026-11-09T08:58:00Z",
        "clientState": state,
        "changeType": kind,
        "resource": "Users/u/Events/e",
        "tenantId": "t",
        "resourceData": {"@odata.type": "#Microsoft.Graph.Event", "id": "e"},
    }


def lifecycle_item(sub_id: str, state: str | None, event: str) -> dict[str, Any]:
    return {
        "subscriptionId": sub_id,
        "subscriptionExpirationDateTime": "2026-11-09T08:58:00Z",
        "tenantId": "t",
        "clientState": state,
        "lifecycleEvent": event,
    }


async def connect_outlook(api: httpx.AsyncClient, world: Any, email: str = ALICE) -> str:
    return await Connector(api, world, "microsoft_outlook").connect(email)


def event(summary: str, day: int = 12) -> dict[str, Any]:
    return {
        "summary": summary,
        "start": {"dateTime": f"2026-11-{day:02d}T10:00:00Z"},
        "end": {"dateTime": f"2026-11-{day:02d}T11:00:00Z"},
    }


def syncs(outcomes: list[object]) -> list[Any]:
    return [o for o in outcomes if type(o).__name__ == "SyncOutcome"]


def actions(outcomes: list[object]) -> list[str]:
    return [str(getattr(o, "action", "")) for o in outcomes if type(o).__name__ == "ChannelOutcome"]
