"""Graph change-notification subscriptions for the Outlook adapter (PROTOCOLS §2.4).

A mixin of :class:`~showup.providers.microsoft.MicrosoftCalendarProvider`, which makes it
a :class:`~showup.providers.base.PushProvider` and a channel renewer:

=======================  ==========================================  =====================
operation                Graph call                                  answer
=======================  ==========================================  =====================
``watch``                ``POST /subscriptions``                     201 subscription
``renew_channel``        ``PATCH /subscriptions/{id}``               200 subscription
                         ``{expirationDateTime}``
``stop_channel``         ``DELETE /subscriptions/{id}``              204
=======================  ==========================================  =====================

Errors map as for every Graph call (``MicrosoftCalendarProvider._api_error``): a failed
validation handshake makes the create answer 400 (Rejected); a subscription Graph no
longer knows answers 404 (NotFound) to PATCH and DELETE.

Our channel id has no Graph field, so it rides in both callback URLs as the ``channel``
query parameter (Graph keeps the query string, §2.4): ``{address}?channel={id}`` gets the
change notifications and ``{address}/lifecycle?channel={id}`` the lifecycle events. The
receiver (``push.graph_receiver``) finds the row by that id (the table's unique key) and
checks every item's ``subscriptionId`` and ``clientState`` against it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx

from showup.clock import Clock
from showup.providers.base import ChannelInfo, TokenSource
from showup.providers.errors import ProviderError, Transient
from showup.providers.http import describe, json_object, send_authorized

# §2.4: Outlook events without resource data live at most 10,080 minutes.
MAX_LIFETIME = timedelta(minutes=10080)
# Our clock and Graph's differ a little: asking for the exact maximum could be refused.
CLOCK_SKEW = timedelta(minutes=2)
CHANGE_TYPES = "created,updated,deleted"
# The documented event resource (§2.4): every event of the signed-in user's mailbox. A
# change on another of her calendars only costs this calendar one extra (empty) delta round.
RESOURCE = "me/events"
CHANNEL_PARAM = "channel"
LIFECYCLE_PATH = "/lifecycle"
MAX_CLIENT_STATE = 128


def notification_urls(address: str, channel_id: str) -> tuple[str, str]:
    """``(notificationUrl, lifecycleNotificationUrl)`` for a channel, both carrying its id."""
    base = httpx.URL(address)
    lifecycle = base.copy_with(path=base.path.rstrip("/") + LIFECYCLE_PATH)
    return (
        str(base.copy_merge_params({CHANNEL_PARAM: channel_id})),
        str(lifecycle.copy_merge_params({CHANNEL_PARAM: channel_id})),
    )


def requested_expiration(now: datetime, ttl: timedelta) -> datetime:
    """``now + ttl``, capped just under Graph's maximum, in whole seconds."""
    life = min(ttl, MAX_LIFETIME - CLOCK_SKEW)
    if life <= timedelta(0):
        raise ValueError("ttl must be positive")
    return (now + life).astimezone(UTC).replace(microsecond=0)


def _stamp(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def graph_time(value: Any) -> datetime | None:
    """A Graph ``DateTimeOffset`` (``2026-11-09T09:00:00.0000000Z``), or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


class GraphSubscriptions:
    """Subscriptions over the adapter's client; needs ``_http``, ``_graph_url``,
    ``_clock`` and ``_api_error`` from the adapter."""

    _http: httpx.AsyncClient
    _graph_url: str
    _clock: Clock

    def _api_error(self, response: httpx.Response, *, cursor_sent: bool) -> ProviderError:
        raise NotImplementedError

    async def watch(
        self,
        token: TokenSource,
        calendar_id: str,
        channel_id: str,
        address: str,
        secret: str,
        ttl: timedelta,
    ) -> ChannelInfo:
        """``POST /subscriptions`` on ``me/events`` (``calendar_id`` does not narrow it: the
        documented resource is the mailbox's events), ``secret`` as ``clientState``.

        Graph validates both URLs *during* this call (``?validationToken=…``, §2.4), so
        the receiver must already answer there. ``ttl`` is capped at the 10,080-minute
        maximum; the expiration Graph answers with is the truth.
        """
        if not 0 < len(secret) <= MAX_CLIENT_STATE:
            raise ValueError("clientState must be 1 to 128 characters")
        if not channel_id:
            raise ValueError("channel id must not be empty")
        notification_url, lifecycle_url = notification_urls(address, channel_id)
        expiration = requested_expiration(self._clock.now(), ttl)
        payload = {
            "changeType": CHANGE_TYPES,
            "notificationUrl": notification_url,
            "lifecycleNotificationUrl": lifecycle_url,
            "resource": RESOURCE,
            "expirationDateTime": _stamp(expiration),
            "clientState": secret,
            "latestSupportedTlsVersion": "v1_2",
        }
        url = f"{self._graph_url}/subscriptions"
        response = await send_authorized(self._http, token, "POST", url, json_body=payload)
        if response.status_code not in (200, 201):
            raise self._api_error(response, cursor_sent=False)
        return self._channel(response, channel_id, expiration)

    async def renew_channel(
        self, token: TokenSource, channel_id: str, resource_id: str, ttl: timedelta
    ) -> ChannelInfo:
        """``PATCH /subscriptions/{id}`` with a new ``expirationDateTime`` (§2.4 "Renew"):
        the same subscription, so no gap and no new validation. NotFound when it is gone."""
        expiration = requested_expiration(self._clock.now(), ttl)
        response = await send_authorized(
            self._http,
            token,
            "PATCH",
            self._subscription_url(resource_id),
            json_body={"expirationDateTime": _stamp(expiration)},
        )
        if response.status_code != 200:
            raise self._api_error(response, cursor_sent=False)
        return self._channel(response, channel_id, expiration)

    async def stop_channel(self, token: TokenSource, channel_id: str, resource_id: str) -> None:
        """``DELETE /subscriptions/{id}``; 204. A subscription Graph no longer knows (expired,
        removed) answers 404: NotFound."""
        response = await send_authorized(
            self._http, token, "DELETE", self._subscription_url(resource_id)
        )
        if response.status_code not in (200, 204):
            raise self._api_error(response, cursor_sent=False)

    def _subscription_url(self, resource_id: str) -> str:
        if not resource_id:
            raise ValueError("subscription id must not be empty")
        return f"{self._graph_url}/subscriptions/{quote(resource_id, safe='')}"

    @staticmethod
    def _channel(response: httpx.Response, channel_id: str, asked: datetime) -> ChannelInfo:
        body = json_object(response)
        sub_id = body.get("id")
        if not isinstance(sub_id, str) or not sub_id:
            raise Transient(
                f"subscription without id ({describe(response.request)})",
                status=response.status_code,
            )
        return ChannelInfo(
            channel_id=channel_id,
            resource_id=sub_id,
            expiration=graph_time(body.get("expirationDateTime")) or asked,
        )
