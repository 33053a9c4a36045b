"""Helpers for end-to-end sync tests: connect emulator users through the API.

A :class:`Connector` speaks for one platform (Google by default, or ``microsoft_outlook``
over the Graph emulator) and knows that platform's names for world things: event ids as
the provider reports them (:meth:`Connector.pid`) and the path of its listing call (for
fault injection).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx

PLATFORMS = ("google_calendar", "microsoft_outlook")


class Connector:
    """Creates emulator users and connects their calendars through the HTTP API."""

    def __init__(
        self, api: httpx.AsyncClient, world: Any, platform: str = "google_calendar"
    ) -> None:
        self.api = api
        self.world = world
        self.platform = platform
        if platform == "microsoft_outlook":
            self.client_id, self.client_secret = world.add_oauth_client(provider="microsoft")
        else:
            self.client_id, self.client_secret = world.add_oauth_client()
        self.refresh_tokens: dict[str, str] = {}

    @property
    def is_microsoft(self) -> bool:
        return self.platform == "microsoft_outlook"

    @property
    def list_path(self) -> str:
        """A path fragment of the provider's change-listing call (for ``faults.add``)."""
        return "/calendarView/delta" if self.is_microsoft else "/events"

    def pid(self, email: str, world_id: str) -> str:
        """The provider's id for a world event, series or instance id on ``email``'s
        primary calendar (Google uses the world ids; Graph ids differ per mailbox)."""
        if not self.is_microsoft:
            return world_id
        from showup.emulator.graph import graph_event_id

        return graph_event_id(self.world, email, world_id)

    def all_refresh_tokens(self, email: str) -> list[str]:
        """Every refresh token the user's grant has had (Graph rotates on each refresh)."""
        first = self.refresh_tokens[email]
        grant = self.world.grants.get(first)
        return list(getattr(grant, "tokens", None) or [first])

    async def connect(
        self, email: str, *, time_zone: str = "Europe/Berlin", external_user_id: str | None = None
    ) -> str:
        if email not in getattr(self.world, "users", {}):
            self.world.add_user(email, name=email.split("@")[0].title(), time_zone=time_zone)
        refresh = self.world.grant(self.client_id, email)
        self.refresh_tokens[email] = refresh
        r = await self.api.post(
            "/api/v2/calendars/",
            json={
                "platform": self.platform,
                "oauth_client_id": self.client_id,
                "oauth_client_secret": self.client_secret,
                "oauth_refresh_token": refresh,
                "external_user_id": external_user_id or email,
            },
        )
        assert r.status_code == 201, r.text
        return str(r.json()["id"])


async def all_events(api: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    r = await api.get("/api/v2/calendar-events/", params={"page_size": 100, **params})
    while True:
        assert r.status_code == 200, r.text
        data = r.json()
        out.extend(data["results"])
        if not data["next"]:
            return out
        r = await api.get(data["next"])


def by_title(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for e in events:
        out.setdefault(e["title"], []).append(e)
    return out


def gtime(dt: datetime, tz: str = "Europe/Berlin") -> dict[str, str]:
    return {"dateTime": dt.isoformat(), "timeZone": tz}
