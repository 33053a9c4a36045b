"""Graph change-notification subscriptions (PROTOCOLS §2.4, §5) over the world outbox.

- Create: validates the body, then performs the **validation handshake** on the
  notification URL and the lifecycle URL (``POST {url}?validationToken=…``, expecting
  200 ``text/plain`` with the decoded token within 10 s); a failure makes the create
  answer 400. The handshake is a real HTTP exchange through ``world.outbox.client``
  (tests point it at a receiver app) or a fresh httpx client; the 10 s are wall time,
  because they bound an exchange, not a schedule.
- Each world change to a watched calendar queues a notification in ``world.outbox``;
  changes for one subscription batch into one ``{"value": [...]}`` POST until delivered.
- Lifecycle events (``reauthorizationRequired``, ``subscriptionRemoved``, ``missed``) go
  to the lifecycle URL. Time-based ones are found by :meth:`SubscriptionHub.check`, run
  on every Graph request, world change and delivery round (no timers, DESIGN 6).

Hub state is guarded by the world's lock (world mutations call in with it held).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx

from showup.emulator.events import split_instance_id
from showup.emulator.google.push import _allowed_address
from showup.emulator.graph import ids
from showup.emulator.graph import serialize as ser
from showup.emulator.graph.delta import parse_time
from showup.emulator.graph.errors import GraphError
from showup.emulator.model import NotFound
from showup.emulator.outbox import Outbound
from showup.emulator.world import AccessGrant, Grant, World

MAX_LIFETIME = timedelta(minutes=10080)  # §2.4: Outlook events, without resource data
MIN_LIFETIME = timedelta(minutes=45)  # §2.4 [S]: shorter requests are raised to 45 min
REAUTHORIZE_BEFORE = timedelta(minutes=60)
VALIDATION_TIMEOUT = 10.0  # seconds, §2.4 "Reply within 10 s"
CHANGE_TYPES = ("created", "updated", "deleted")
LIFECYCLE_EVENTS = ("reauthorizationRequired", "subscriptionRemoved", "missed")


@dataclass(slots=True)
class Subscription:
    id: str
    resource: str
    change_types: tuple[str, ...]
    notification_url: str
    lifecycle_url: str | None
    client_state: str | None
    expiration: datetime
    email: str
    client_id: str
    grant: Grant
    calendars: frozenset[str] | None  # None: every calendar of the user
    tls: str = "v1_2"
    reauth_sent: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def watches(self, calendar_id: str, owner: str) -> bool:
        if self.calendars is None:
            return owner == self.email
        return calendar_id in self.calendars

    def as_json(self, root: str = "https://graph.microsoft.com/v1.0") -> dict[str, Any]:
        return {
            "@odata.context": f"{root}/$metadata#subscriptions/$entity",
            "id": self.id,
            "resource": self.resource,
            "applicationId": self.client_id,
            "changeType": ",".join(self.change_types),
            "clientState": self.client_state,
            "notificationUrl": self.notification_url,
            "notificationQueryOptions": None,
            "lifecycleNotificationUrl": self.lifecycle_url,
            "expirationDateTime": ser.stamp(self.expiration),
            "creatorId": ids.user_id(self.email),
            "includeResourceData": False,
            "latestSupportedTlsVersion": self.tls,
            "encryptionCertificate": None,
            "encryptionCertificateId": None,
            "notificationUrlAppId": None,
        }


def _bad(message: str) -> GraphError:
    return GraphError(400, "InvalidRequest", message)


class SubscriptionHub:
    """The Graph subscriptions of one world; attach with :func:`hub_for`."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.subscriptions: dict[str, Subscription] = {}
        self._numbers = 0
        world.change_listeners.append(self._changed)
        world.outbox.before_deliver.append(self.check)

    def reset(self) -> None:
        with self.world.lock:
            self.subscriptions.clear()

    # ---- create / renew / delete -------------------------------------------------------

    def _expiration(self, raw: Any) -> datetime:
        if not isinstance(raw, str):
            raise _bad("expirationDateTime is required.")
        now = self.world.clock.now()
        try:
            when = parse_time(raw, "expirationDateTime")
        except GraphError:
            raise _bad(f"Invalid expirationDateTime '{raw}'.") from None
        if when <= now:
            raise _bad("Subscription expiration can only be in the future.")
        if when > now + MAX_LIFETIME:
            raise _bad(
                "Subscription expiration can only be 10080 minutes in the future for this resource."
            )
        return max(when, now + MIN_LIFETIME)

    def _resource(self, access: AccessGrant, raw: Any) -> frozenset[str] | None:
        """The calendars a resource path names (None: all the user's calendars)."""
        if not isinstance(raw, str) or not raw.strip("/"):
            raise _bad("resource is required.")
        email = access.grant.email
        parts = raw.strip("/").split("/")
        head = parts[0].lower()
        if head == "users" and len(parts) >= 2:
            if parts[1].lower() not in (email, ids.user_id(email)):
                raise GraphError(
                    403, "ExtensionError", "Access is denied to the requested resource."
                )
            parts = ["me", *parts[2:]]
        elif head != "me":
            raise _bad(f"Resource '{raw}' is not supported.")
        rest = [p.lower() for p in parts[1:]]
        if rest == ["events"]:
            return None
        if rest == ["calendar", "events"]:
            return frozenset({self.world.calendar(email).id})
        if len(rest) == 3 and rest[0] == "calendars" and rest[2] == "events":
            cal_id = ids.parse_calendar_id(parts[2])
            if cal_id is None:
                raise NotFound(parts[2])
            return frozenset({self.world.calendar(email, cal_id).id})
        raise _bad(f"Resource '{raw}' is not supported.")

    async def create(self, access: AccessGrant, body: dict[str, Any]) -> Subscription:
        """``POST /subscriptions`` (§2.4 "Create", "Validation")."""
        change = body.get("changeType")
        kinds = tuple(k.strip() for k in change.split(",")) if isinstance(change, str) else ()
        if not kinds or any(k not in CHANGE_TYPES for k in kinds):
            raise _bad("changeType must be a comma-separated list of created, updated, deleted.")
        url, lifecycle = body.get("notificationUrl"), body.get("lifecycleNotificationUrl")
        for name, value in (("notificationUrl", url), ("lifecycleNotificationUrl", lifecycle)):
            if value is None and name == "lifecycleNotificationUrl":
                continue
            if not isinstance(value, str) or not _allowed_address(value):
                raise _bad(f"The {name} must be an https URL: '{value}'.")
        state = body.get("clientState")
        if state is not None and (not isinstance(state, str) or len(state) > 128):
            raise _bad("clientState must be a string of at most 128 characters.")
        if body.get("includeResourceData"):
            raise _bad("includeResourceData is not supported by this emulator.")
        with self.world.lock:
            calendars = self._resource(access, body.get("resource"))
            expiration = self._expiration(body.get("expirationDateTime"))
        assert isinstance(url, str)
        for target in (url, lifecycle):
            if isinstance(target, str) and not await self.validate(target):
                raise _bad(
                    "Subscription validation request failed. Notification endpoint must "
                    "respond with 200 OK to validation request."
                )
        grant = access.grant
        sub = Subscription(
            id=str(uuid.uuid4()),
            resource=str(body["resource"]),
            change_types=kinds,
            notification_url=url,
            lifecycle_url=lifecycle if isinstance(lifecycle, str) else None,
            client_state=state,
            expiration=expiration,
            email=grant.email,
            client_id=grant.client_id,
            grant=grant,
            calendars=calendars,
            tls=str(body.get("latestSupportedTlsVersion") or "v1_2"),
        )
        with self.world.lock:
            self.subscriptions[sub.id] = sub
        return sub

    async def validate(self, url: str) -> bool:
        """The handshake: 200, text/plain, the decoded token as the body, within 10 s."""
        token = (
            "Validation: Testing client application reachability for subscription "
            f"Request-Id: {uuid.uuid4()}"
        )
        target = f"{url}{'&' if '?' in url else '?'}validationToken={quote(token, safe='')}"
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        client = self.world.outbox.client
        try:
            if client is None:
                async with httpx.AsyncClient(timeout=VALIDATION_TIMEOUT) as own:
                    response = await asyncio.wait_for(
                        own.post(target, headers=headers), VALIDATION_TIMEOUT
                    )
            else:
                response = await asyncio.wait_for(
                    client.post(target, headers=headers), VALIDATION_TIMEOUT
                )
        except (httpx.HTTPError, TimeoutError):
            return False
        kind = response.headers.get("content-type", "")
        return (
            response.status_code == 200
            and kind.lower().startswith("text/plain")
            and response.text == token
        )

    def get(self, access: AccessGrant, sub_id: str) -> Subscription:
        self.check()
        sub = self.subscriptions.get(sub_id)
        if sub is None or sub.client_id != access.grant.client_id:
            raise GraphError(
                404, "ResourceNotFound", f"The object was not found: subscription {sub_id}."
            )
        return sub

    def mine(self, access: AccessGrant) -> list[Subscription]:
        self.check()
        with self.world.lock:
            return [s for s in self.subscriptions.values() if s.client_id == access.grant.client_id]

    def renew(self, access: AccessGrant, sub_id: str, body: dict[str, Any]) -> Subscription:
        """``PATCH /subscriptions/{id}``: a new expiration (§2.4 "Renew")."""
        with self.world.lock:
            sub = self.get(access, sub_id)
            sub.expiration = self._expiration(body.get("expirationDateTime"))
            sub.reauth_sent = False
            return sub

    def delete(self, access: AccessGrant, sub_id: str) -> None:
        with self.world.lock:
            self.get(access, sub_id)
            del self.subscriptions[sub_id]

    def reauthorize(self, access: AccessGrant, sub_id: str) -> None:
        with self.world.lock:
            self.get(access, sub_id).reauth_sent = False

    # ---- the clock and lifecycle events --------------------------------------------------

    def check(self) -> None:
        """Apply the world clock and revocations: expired subscriptions vanish; a revoked
        grant removes its subscriptions (``subscriptionRemoved``); an hour before expiry
        ``reauthorizationRequired`` is sent once per renewal."""
        with self.world.lock:
            now = self.world.clock.now()
            for sub in list(self.subscriptions.values()):
                if sub.grant.revoked:
                    self.lifecycle(sub.id, "subscriptionRemoved")
                elif now >= sub.expiration:
                    del self.subscriptions[sub.id]
                elif now >= sub.expiration - REAUTHORIZE_BEFORE and not sub.reauth_sent:
                    sub.reauth_sent = True
                    self.lifecycle(sub.id, "reauthorizationRequired")

    def lifecycle(self, sub_id: str, event: str) -> None:
        """Queue a lifecycle event (§2.4 "Lifecycle"); ``subscriptionRemoved`` also
        deletes the subscription. Without a lifecycle URL nothing is sent."""
        if event not in LIFECYCLE_EVENTS:
            raise ValueError(f"unknown lifecycle event {event!r}")
        with self.world.lock:
            sub = self.subscriptions.get(sub_id)
            if sub is None:
                raise NotFound(f"no subscription {sub_id}")
            if event == "subscriptionRemoved":
                del self.subscriptions[sub_id]
            if sub.lifecycle_url is None:
                return
            item = {
                "subscriptionId": sub.id,
                "subscriptionExpirationDateTime": ser.stamp(sub.expiration),
                "tenantId": ids.tenant_id(sub.email),
                "clientState": sub.client_state,
                "lifecycleEvent": event,
            }
            self.world.outbox.put(
                Outbound(
                    sub.lifecycle_url,
                    {"Content-Type": "application/json; charset=utf-8"},
                    label="graph-lifecycle",
                    items=[item],
                )
            )

    def _missed(self, message: Outbound) -> None:
        """The outbox gave a notification up: tell the lifecycle URL (§2.4 ``missed``)."""
        sub_id = (message.batch_key or "").partition(":")[2]
        with contextlib.suppress(NotFound):  # deleted meanwhile: nobody to tell
            self.lifecycle(sub_id, "missed")

    # ---- change notifications --------------------------------------------------------------

    def _changed(self, cal_id: str, core_id: str, items: list[str | None], fresh: bool) -> None:
        if not self.subscriptions:
            return
        self.check()
        cal = self.world.calendars[cal_id]
        watching = [s for s in self.subscriptions.values() if s.watches(cal_id, cal.owner)]
        if not watching:
            return
        entry = cal.entries[core_id]
        keep = self.world.settings.graph_attendee_cancellations
        changes: list[tuple[str, str, str]] = []  # (changeType, Graph id, change key)
        for item in items:
            occ = None
            if item is not None:
                split = split_instance_id(item)
                occ = entry.core.find_instance(split[1]) if split and entry.core.is_series else None
            gone = ser.state(cal, entry, occ, keep) == "gone" or (item is not None and occ is None)
            kind = "deleted" if gone else "created" if fresh and item is None else "updated"
            gid = ids.event_id(cal_id, item or core_id)
            changes.append((kind, gid, ser.change_key(cal, gid, entry.core.version)))
        user = ids.user_id(cal.owner)
        for sub in watching:
            batch = [
                self._item(sub, user, kind, gid, key)
                for kind, gid, key in changes
                if kind in sub.change_types
            ]
            if batch:
                self.world.outbox.put(
                    Outbound(
                        sub.notification_url,
                        {"Content-Type": "application/json; charset=utf-8"},
                        label="graph-notification",
                        batch_key=f"graph:{sub.id}",
                        items=batch,
                        on_give_up=self._missed,
                    )
                )

    def _item(self, sub: Subscription, user: str, kind: str, gid: str, key: str) -> dict[str, Any]:
        self._numbers += 1
        path = f"Users/{user}/Events/{gid}"
        return {
            "id": str(uuid.UUID(int=self._numbers)),
            "subscriptionId": sub.id,
            "subscriptionExpirationDateTime": ser.stamp(sub.expiration),
            "clientState": sub.client_state,
            "changeType": kind,
            "resource": path,
            "tenantId": ids.tenant_id(sub.email),
            "resourceData": {
                "@odata.type": "#Microsoft.Graph.Event",
                "@odata.id": path,
                "@odata.etag": f'W/"{key}"',
                "id": gid,
            },
        }


_HUBS_LOCK = threading.Lock()


def hub_for(world: World) -> SubscriptionHub:
    """The world's one subscription hub, created on first use."""
    with _HUBS_LOCK:
        hub = world.extensions.get("graph.subscriptions")
        if not isinstance(hub, SubscriptionHub):
            hub = SubscriptionHub(world)
            world.extensions["graph.subscriptions"] = hub
        return hub
