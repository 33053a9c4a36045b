"""Google push channels (PROTOCOLS §1.5, §5): events.watch, channels.stop, and the pings.

A watch queues the ``sync`` message (number 1) at once; every later change to the
calendar queues a body-less ``exists`` ping with a larger, gapped message number.
Pings go to the world's :class:`~showup.emulator.outbox.Outbox` and leave only when
someone calls ``await world.outbox.deliver(client)`` (tests) or a pump runs (standalone).

Callback addresses must be HTTPS, as on Google, except hosts that cannot be real:
``localhost``, loopback IPs and the reserved ``.test`` / ``.localhost`` names
(§5 "Test mode").
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import format_datetime
from typing import Any
from urllib.parse import quote, urlsplit

from showup.emulator.google.errors import GoogleError
from showup.emulator.model import NotFound
from showup.emulator.outbox import Outbound
from showup.emulator.world import AccessGrant, World

DEFAULT_TTL = timedelta(seconds=604800)  # §1.5: params.ttl default, 7 days
_TEST_HOSTS = ("localhost", "127.0.0.1", "::1")
_TEST_SUFFIXES = (".test", ".localhost")


@dataclass(slots=True)
class Channel:
    id: str
    resource_id: str
    calendar_id: str
    email: str
    client_id: str
    address: str
    token: str | None
    expiration: datetime
    last_number: int = 0
    stopped: bool = False


def _allowed_address(address: str) -> bool:
    parts = urlsplit(address)
    host = (parts.hostname or "").lower()
    if not host:
        return False
    if parts.scheme == "https":
        return True
    test_host = host in _TEST_HOSTS or host.endswith(_TEST_SUFFIXES)
    return parts.scheme == "http" and test_host


class PushHub:
    """The channels of one world; attach with :func:`hub_for`."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.channels: dict[str, Channel] = {}  # by resource id
        self._lock = threading.Lock()
        world.listeners.append(self._changed)

    def reset(self) -> None:
        with self._lock:
            self.channels.clear()

    def watch(self, calendar_id: str, access: AccessGrant, body: dict[str, Any]) -> dict[str, Any]:
        channel_id = body.get("id")
        if not isinstance(channel_id, str) or not 0 < len(channel_id) <= 64:
            raise GoogleError(
                400, "Channel id must be 1 to 64 characters.", "invalid", location="id"
            )
        if body.get("type") not in ("web_hook", "webhook"):
            raise GoogleError(400, "Unknown channel type.", "invalid", location="type")
        address = body.get("address")
        if not isinstance(address, str) or not _allowed_address(address):
            raise GoogleError(
                400, "WebHook callback must be HTTPS: " + str(address), "push.webhookUrlNotHttps"
            )
        token = body.get("token")
        if token is not None and (not isinstance(token, str) or len(token) > 256):
            raise GoogleError(400, "Channel token is too long.", "invalid", location="token")
        now = self.world.clock.now()
        try:
            ttl = timedelta(seconds=int((body.get("params") or {}).get("ttl", 604800)))
            expiration = now + ttl
            if body.get("expiration") is not None:
                asked = datetime.fromtimestamp(int(body["expiration"]) / 1000, now.tzinfo)
                expiration = min(expiration, asked)  # the stricter wins (§1.5)
        except (TypeError, ValueError):
            raise GoogleError(400, "Invalid expiration or ttl.", "invalid") from None
        # Take the world lock first and alone: world mutations call _changed with it
        # held, and _changed takes the hub lock, so the reverse order could deadlock.
        with self.world.lock:
            resource_id = self.world.new_id()
        with self._lock:
            if any(c.id == channel_id and not c.stopped for c in self.channels.values()):
                raise GoogleError(400, f"Channel id {channel_id} not unique", "channelIdNotUnique")
            channel = Channel(
                id=channel_id,
                resource_id=resource_id,
                calendar_id=calendar_id,
                email=access.grant.email,
                client_id=access.grant.client_id,
                address=address,
                token=token,
                expiration=expiration,
            )
            self.channels[resource_id] = channel
            self._ping(channel, "sync")
        return {
            "kind": "api#channel",
            "id": channel_id,
            "resourceId": resource_id,
            "resourceUri": _resource_uri(calendar_id),
            **({"token": token} if token is not None else {}),
            "expiration": str(int(expiration.timestamp() * 1000)),
        }

    def stop(self, access: AccessGrant, body: dict[str, Any]) -> None:
        """Only the same user through the same OAuth client may stop a channel (§1.5)."""
        with self._lock:
            channel = self.channels.get(str(body.get("resourceId")))
            if (
                channel is None
                or channel.id != body.get("id")
                or channel.email != access.grant.email
                or channel.client_id != access.grant.client_id
            ):
                raise NotFound("Channel not found")
            channel.stopped = True

    def _changed(self, calendar_id: str) -> None:
        now = self.world.clock.now()
        with self._lock:
            for channel in self.channels.values():
                live = not channel.stopped and now < channel.expiration
                if live and channel.calendar_id == calendar_id:
                    self._ping(channel, "exists")

    def _ping(self, channel: Channel, state: str) -> None:
        # Numbers increase but are not sequential (§1.5); the gap pattern is fixed so
        # tests are deterministic.
        if channel.last_number == 0:
            channel.last_number = 1
        else:
            channel.last_number += 1 + (channel.last_number * 7919) % 97
        headers = {
            "User-Agent": "APIs-Google",
            "X-Goog-Channel-ID": channel.id,
            "X-Goog-Message-Number": str(channel.last_number),
            "X-Goog-Resource-ID": channel.resource_id,
            "X-Goog-Resource-State": state,
            "X-Goog-Resource-URI": _resource_uri(channel.calendar_id),
            "X-Goog-Channel-Expiration": format_datetime(channel.expiration, usegmt=True),
            "Content-Length": "0",
        }
        if channel.token is not None:
            headers["X-Goog-Channel-Token"] = channel.token
        self.world.outbox.put(Outbound(channel.address, headers, b"", label="google-push"))


def _resource_uri(calendar_id: str) -> str:
    return f"https://www.googleapis.com/calendar/v3/calendars/{quote(calendar_id)}/events?alt=json"


_HUBS_LOCK = threading.Lock()


def hub_for(world: World) -> PushHub:
    """The world's one push hub, created on first use."""
    with _HUBS_LOCK:
        hub = world.extensions.get("google.push")
        if not isinstance(hub, PushHub):
            hub = PushHub(world)
            world.extensions["google.push"] = hub
        return hub
