"""The tenant-webhook launcher: ``bot.dispatch`` as a signed Standard Webhooks message.

The tenant runs its own bots; we tell it when and where. Each attempt POSTs one message to
every enabled endpoint of the tenant subscribed to ``bot.dispatch``:

- body: the outbox's envelope (``{"event", "type", "timestamp", "data"}``) with ``data``
  = the meeting (URL, platform, join time, deadline), the bot config, the events and
  calendar users (``external_user_id``) it serves, and ``idempotency_key`` = the bot id;
- headers: Standard Webhooks (``signing.build_headers``), with ``webhook-id`` =
  ``dispatch_<bot id>`` on every attempt of the bot, so a receiver can deduplicate
  retries, crashes and racing workers by either;
- every URL is re-checked by the SSRF guard right before the call (DNS may have been
  rebound), and the client connects only to addresses the guard allows (it resolves
  again when connecting; ``security/egress.py``); redirects are not followed, and the
  exchange is bounded by ``bot_launch_timeout``.

What counts as dispatched: **a 2xx from at least one endpoint** (it took the job; a
receiver's JSON ``vendor_bot_id``/``bot_id``/``id`` is kept as ``vendor_bot_id``).
Otherwise, a timeout, network error, 408, 409, 425, 429 or 5xx from any endpoint makes the
attempt retryable (``Retry-After`` honoured); only when every endpoint refused outright
(another 3xx/4xx, or a URL the guard refuses) is it rejected. No subscribed endpoint is
retryable too: the tenant may be adding one, and the deadline bounds the wait.

Neither secrets nor URLs appear in reasons: they end up in the bot's ``error``.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from showup.bots.serialize import iso
from showup.db.webhook_models import WebhookEndpoint
from showup.launchers.base import (
    Launched,
    LaunchOutcome,
    LaunchRequest,
    Rejected,
    Retryable,
)
from showup.runtime import Runtime
from showup.security.url_guard import UrlRejected
from showup.security.vault import Vault
from showup.webhooks.endpoints import signing_secrets
from showup.webhooks.outbox import BOT_DISPATCH, envelope, matches
from showup.webhooks.policy import parse_retry_after
from showup.webhooks.signing import build_headers

RETRYABLE_STATUSES: Final = frozenset({408, 409, 425, 429})
READ_LIMIT: Final = 4096
MAX_REASON: Final = 500


def message_id(bot_id: str) -> str:
    """The ``webhook-id`` of a bot's dispatch: stable across attempts and workers."""
    return f"dispatch_{bot_id}"


def dispatch_data(req: LaunchRequest) -> dict[str, Any]:
    users = sorted({e.external_user_id for e in req.events if e.external_user_id})
    return {
        "bot_id": req.bot_id,
        "idempotency_key": req.idempotency_key,
        "deduplication_key": req.deduplication_key,
        "meeting_url": req.meeting_url,
        "meeting_platform": req.meeting_platform,
        "join_at": iso(req.join_at),
        "deadline": iso(req.deadline),
        "bot_config": req.bot_config,
        "calendar_users": users,
        "events": [
            {
                "id": e.event_id,
                "calendar_id": e.calendar_id,
                "external_user_id": e.external_user_id,
                "platform_email": e.platform_email,
                "title": e.title,
                "ical_uid": e.ical_uid,
                "start_time": iso(e.start_time),
                "end_time": iso(e.end_time),
            }
            for e in req.events
        ],
    }


@dataclass(frozen=True, slots=True)
class _Endpoint:
    id: str
    url: str
    secrets: list[str]


@dataclass(frozen=True, slots=True)
class _Result:
    endpoint_id: str
    status: int | None
    error: str | None
    retry_after: timedelta | None
    vendor_bot_id: str | None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def retryable(self) -> bool:
        if self.status is None:
            # Network trouble heals; of the guard's refusals only an unresolvable name may.
            error = self.error or ""
            return not error.startswith("url:") or error == "url:unresolvable"
        return self.status in RETRYABLE_STATUSES or self.status >= 500

    def describe(self) -> str:
        what = f"HTTP {self.status}" if self.status is not None else (self.error or "error")
        return f"endpoint {self.endpoint_id}: {what}"


async def load_endpoints(
    session: AsyncSession, vault: Vault, tenant_id: str, now: datetime
) -> list[_Endpoint]:
    """The tenant's enabled endpoints subscribed to ``bot.dispatch``, with their secrets."""
    rows = await session.scalars(
        select(WebhookEndpoint)
        .where(WebhookEndpoint.tenant_id == tenant_id, WebhookEndpoint.disabled.is_(False))
        .order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)
    )
    return [
        _Endpoint(ep.id, ep.url, signing_secrets(ep, vault, now))
        for ep in rows
        if matches(ep.event_types, BOT_DISPATCH)
    ]


class WebhookLauncher:
    """Launches through the tenant's endpoints, read per launch; or, given ``endpoints``
    (read by :meth:`loaded` in the caller's transaction), through those, for a batch of
    launches claimed together."""

    def __init__(self, runtime: Runtime, endpoints: list[_Endpoint] | None = None) -> None:
        self.rt = runtime
        self._loaded = endpoints

    @classmethod
    async def loaded(
        cls, session: AsyncSession, runtime: Runtime, tenant_id: str
    ) -> WebhookLauncher:
        now = runtime.clock.now()
        return cls(runtime, await load_endpoints(session, runtime.vault, tenant_id, now))

    async def _endpoints(self, tenant_id: str) -> list[_Endpoint]:
        if self._loaded is not None:
            return self._loaded
        now = self.rt.clock.now()
        async with self.rt.sessions() as session:
            return await load_endpoints(session, self.rt.vault, tenant_id, now)

    async def launch(self, request: LaunchRequest) -> LaunchOutcome:
        endpoints = await self._endpoints(request.tenant_id)
        if not endpoints:
            return Retryable("no_endpoint: no enabled webhook endpoint subscribes to bot.dispatch")
        # The envelope's timestamp is the join time, so every attempt sends the same body.
        body = envelope(BOT_DISPATCH, dispatch_data(request), request.join_at).encode()
        msg_id = message_id(request.bot_id)
        results = await asyncio.gather(*(self._post(ep, body, msg_id) for ep in endpoints))
        return aggregate(results)

    async def _post(self, ep: _Endpoint, body: bytes, msg_id: str) -> _Result:
        at = self.rt.clock.now()
        try:
            await self.rt.outbound.check(ep.url, self.rt.settings)
        except UrlRejected as exc:
            return _Result(ep.id, None, f"url:{exc.code}", None, None)
        headers = build_headers(ep.secrets, msg_id, int(at.timestamp()), body)
        limit = self.rt.settings.bot_launch_timeout.total_seconds()
        try:
            # httpx's timeout bounds each read; the outer one the whole exchange.
            async with asyncio.timeout(limit):
                async with self.rt.webhook_http.stream(
                    "POST",
                    ep.url,
                    content=body,
                    headers=headers,
                    timeout=httpx.Timeout(limit),
                    follow_redirects=False,
                ) as response:
                    status = response.status_code
                    retry_after = parse_retry_after(response.headers.get("retry-after"), now=at)
                    vendor = _vendor_id(await _read(response)) if 200 <= status < 300 else None
        except UrlRejected as exc:
            # The client's own lookup, when it connected, found an address the guard
            # refuses (security/egress.py): the same error as a refused re-check. First,
            # since it is an httpx error too.
            return _Result(ep.id, None, f"url:{exc.code}", None, None)
        except (TimeoutError, httpx.TimeoutException):
            return _Result(ep.id, None, "timeout", None, None)
        except httpx.HTTPError as exc:
            # The exception text may repeat the URL (and a token in it): the type only.
            return _Result(ep.id, None, f"network_error:{type(exc).__name__}", None, None)
        return _Result(ep.id, status, None, retry_after, vendor)


def aggregate(results: list[_Result]) -> LaunchOutcome:
    """One outcome for one attempt at all endpoints (see the module docstring)."""
    for r in results:
        if r.ok:
            return Launched(r.vendor_bot_id)
    reason = "; ".join(r.describe() for r in results)[:MAX_REASON]
    retryable = [r for r in results if r.retryable]
    if retryable:
        hints = [r.retry_after for r in retryable if r.retry_after is not None]
        return Retryable(reason, max(hints) if hints else None)
    return Rejected(reason)


async def _read(response: httpx.Response) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_raw():
        chunks.append(chunk)
        size += len(chunk)
        if size >= READ_LIMIT:
            break
    return b"".join(chunks)[:READ_LIMIT]


def _vendor_id(raw: bytes) -> str | None:
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    for key in ("vendor_bot_id", "bot_id", "id"):
        value = data.get(key)
        if isinstance(value, str) and 0 < len(value) <= 255:
            return value
    return None
