"""The delivery job: send one due delivery, record the attempt, schedule what comes next.

The worker claims due deliveries under a lease (``claim_deliveries``; DESIGN invariant 1)
and runs :func:`deliver` for each. One run is three steps, and no database transaction
stays open across the HTTP call (on SQLite that would hold the single writer lock):

1. read the delivery, its message and its target; open the signing secrets;
2. re-check the URL with the SSRF guard (DNS may have been rebound since creation), then
   POST the stored payload bytes with Standard Webhooks headers (``webhook-id`` = message
   id, stable across retries; ``webhook-timestamp`` per attempt; signatures by the current
   secret and, during a rotation's grace period, the previous one). Redirects are not
   followed; at most 1 KB of the response is read, and only kept as a snippet;
3. record the attempt and apply ``policy.decide`` (see its table): delivered, retry at a
   time, failed, or gone (410: disable the endpoint and cancel its queue).

Neither secrets nor target URLs (which may carry tokens) are logged or stored in errors.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from showup.db.webhook_models import (
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookMessage,
)
from showup.jobs.leases import claim_due
from showup.runtime import Runtime
from showup.security.url_guard import UrlRejected
from showup.webhooks.endpoints import disable_endpoint, signing_secrets, tenant_secret
from showup.webhooks.policy import RetryPolicy, decide, parse_retry_after
from showup.webhooks.signing import build_headers

log = logging.getLogger("showup.webhooks")

SNIPPET_BYTES = 1024

Result = Literal["delivered", "retry", "failed", "cancelled", "skipped"]


@dataclass(frozen=True, slots=True)
class _Target:
    delivery_id: str
    tenant_id: str
    message_id: str
    endpoint_id: str | None
    url: str = field(repr=False)  # may carry a token in its query
    body: bytes = field(repr=False)
    secrets: list[str] = field(repr=False)


@dataclass(frozen=True, slots=True)
class AttemptResult:
    at: datetime
    status_code: int | None
    error: str | None  # a machine code: "timeout", "connect_error", a url_guard code, …
    latency_ms: int | None
    snippet: str | None
    retry_after: timedelta | None


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    delivery_id: str
    result: Result
    status_code: int | None = None
    error: str | None = None
    next_attempt_at: datetime | None = None


async def claim_deliveries(rt: Runtime, owner: str, limit: int) -> list[str]:
    """Lease up to ``limit`` pending deliveries whose ``next_attempt_at`` has passed."""
    async with rt.sessions() as session:
        ids = await claim_due(
            session,
            WebhookDelivery,
            WebhookDelivery.next_attempt_at,
            now=rt.clock.now(),
            owner=owner,
            lease=rt.settings.lease_duration,
            limit=limit,
            where=(WebhookDelivery.status == "pending",),
        )
        await session.commit()
    return ids


async def deliver(rt: Runtime, delivery_id: str, owner: str) -> DeliveryOutcome:
    """Attempt one claimed delivery; the worker's job body for kind ``webhooks``.

    A bug of ours (or an unreadable secret) must neither stop the worker nor leave the
    row to be re-claimed every lease period forever: it counts as a failed attempt with
    error ``internal_error`` and follows the retry policy.
    """
    try:
        return await _deliver(rt, delivery_id, owner)
    except Exception:
        log.exception("webhook delivery %s failed unexpectedly", delivery_id)
        failure = AttemptResult(rt.clock.now(), None, "internal_error", None, None, None)
        async with rt.sessions() as session:
            outcome = await _record(session, rt, delivery_id, failure, owner)
            await session.commit()
        return outcome


async def _deliver(rt: Runtime, delivery_id: str, owner: str) -> DeliveryOutcome:
    async with rt.sessions() as session:
        target = await _load(session, rt, delivery_id, owner)
        await session.commit()
    if isinstance(target, DeliveryOutcome):
        return target
    result = await _attempt(rt, target)
    async with rt.sessions() as session:
        outcome = await _record(session, rt, target.delivery_id, result, owner)
        await session.commit()
    log.info(
        "webhook delivery %s (message %s): %s, status %s, error %s",
        target.delivery_id,
        target.message_id,
        outcome.result,
        result.status_code,
        result.error,
    )
    return outcome


async def _load(
    session: AsyncSession, rt: Runtime, delivery_id: str, owner: str
) -> _Target | DeliveryOutcome:
    now = rt.clock.now()
    delivery = await session.get(WebhookDelivery, delivery_id)
    if delivery is None or delivery.lease_owner != owner or delivery.status != "pending":
        return DeliveryOutcome(delivery_id, "skipped")
    message = await session.get(WebhookMessage, delivery.message_id)
    if message is None:  # pragma: no cover - the FK cascades deliveries with their message
        return DeliveryOutcome(delivery_id, "skipped")
    if delivery.endpoint_id is not None:
        endpoint = await session.get(WebhookEndpoint, delivery.endpoint_id)
        if endpoint is None or endpoint.disabled:
            _finish(delivery, "cancelled", now, error="endpoint_disabled")
            return DeliveryOutcome(delivery_id, "cancelled", error="endpoint_disabled")
        url = endpoint.url
        secrets = signing_secrets(endpoint, rt.vault, now)
    else:
        assert delivery.target_url is not None  # the has_target check constraint
        url = delivery.target_url
        secrets = [await tenant_secret(session, rt.vault, delivery.tenant_id, now)]
    return _Target(
        delivery_id=delivery.id,
        tenant_id=delivery.tenant_id,
        message_id=message.id,
        endpoint_id=delivery.endpoint_id,
        url=url,
        body=message.payload.encode("utf-8"),
        secrets=secrets,
    )


async def _attempt(rt: Runtime, target: _Target) -> AttemptResult:
    """Check the URL again, then POST once. Never raises for the receiver's faults."""
    at = rt.clock.now()
    try:
        await rt.outbound.check(target.url, rt.settings)
    except UrlRejected as exc:
        return AttemptResult(at, None, exc.code, None, None, None)
    headers = build_headers(target.secrets, target.message_id, int(at.timestamp()), target.body)
    limit = rt.settings.webhook_timeout.total_seconds()
    status: int | None = None
    error: str | None = None
    snippet: str | None = None
    retry_after: timedelta | None = None
    # Latency is a measurement of the network, not a schedule: a monotonic timer, not the
    # injected clock (which a test may hold still).
    started = time.perf_counter()
    try:
        # httpx's timeout bounds each read; the outer one bounds the whole exchange, so a
        # receiver dripping one byte at a time cannot hold a worker slot.
        async with asyncio.timeout(limit):
            async with rt.webhook_http.stream(
                "POST",
                target.url,
                content=target.body,
                headers=headers,
                timeout=httpx.Timeout(limit),
                follow_redirects=False,
            ) as response:
                status = response.status_code
                retry_after = parse_retry_after(response.headers.get("retry-after"), now=at)
                snippet = await _snippet(response)
    except (TimeoutError, httpx.TimeoutException):
        error = "timeout"
    except httpx.ConnectError:
        error = "connect_error"
    except httpx.HTTPError as exc:
        # The exception text may repeat the URL (and its query token): keep the type only.
        error = f"network_error:{type(exc).__name__}"
    latency = round((time.perf_counter() - started) * 1000)
    return AttemptResult(at, status, error, latency, snippet, retry_after)


async def _snippet(response: httpx.Response) -> str | None:
    """At most SNIPPET_BYTES of the raw body, as text. Stops reading there."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_raw():
        chunks.append(chunk)
        size += len(chunk)
        if size >= SNIPPET_BYTES:
            break
    raw = b"".join(chunks)[:SNIPPET_BYTES]
    if not raw:
        return None
    # PostgreSQL text cannot hold NUL; the receiver's bytes are never trusted.
    return raw.decode("utf-8", errors="replace").replace("\x00", "\ufffd")


async def _record(
    session: AsyncSession, rt: Runtime, delivery_id: str, result: AttemptResult, owner: str
) -> DeliveryOutcome:
    now = rt.clock.now()
    delivery = await session.get(WebhookDelivery, delivery_id)
    if delivery is None:  # the endpoint was deleted meanwhile, taking its deliveries along
        return DeliveryOutcome(delivery_id, "skipped", result.status_code, result.error)
    session.add(
        WebhookAttempt(
            delivery_id=delivery.id,
            attempted_at=result.at,
            status_code=result.status_code,
            latency_ms=result.latency_ms,
            error=result.error,
            response_snippet=result.snippet,
        )
    )
    if delivery.lease_owner != owner or delivery.status != "pending":
        # Cancelled (endpoint disabled) or re-claimed after our lease ran out: the attempt
        # happened and is recorded, but the delivery's state is someone else's now.
        return DeliveryOutcome(delivery.id, "skipped", result.status_code, result.error)
    delivery.attempts += 1
    delivery.last_status_code = result.status_code
    delivery.last_error = result.error
    decision = decide(
        status_code=result.status_code,
        retry_after=result.retry_after,
        attempts=delivery.attempts,
        created_at=delivery.created_at,
        now=now,
        policy=RetryPolicy.from_settings(rt.settings),
    )
    if decision.verdict == "delivered":
        delivery.delivered_at = now
        _finish(delivery, "delivered", now, error=None)
        return DeliveryOutcome(delivery.id, "delivered", result.status_code)
    if decision.verdict == "retry":
        assert decision.next_attempt_at is not None
        delivery.next_attempt_at = decision.next_attempt_at
        delivery.lease_owner = None
        delivery.lease_expires_at = None
        delivery.updated_at = now
        return DeliveryOutcome(
            delivery.id, "retry", result.status_code, result.error, decision.next_attempt_at
        )
    # The last attempt keeps its own error; the delivery says why it stopped.
    reason = decision.reason or "failed"
    _finish(delivery, "failed", now, error=reason)
    if decision.verdict == "gone" and delivery.endpoint_id is not None:
        endpoint = await session.get(WebhookEndpoint, delivery.endpoint_id)
        if endpoint is not None and not endpoint.disabled:
            await disable_endpoint(
                session, endpoint, reason="the endpoint answered 410 Gone", now=now
            )
            log.warning("webhook endpoint %s disabled: it answered 410 Gone", endpoint.id)
    return DeliveryOutcome(delivery.id, "failed", result.status_code, reason)


def _finish(delivery: WebhookDelivery, status: str, now: datetime, *, error: str | None) -> None:
    delivery.status = status
    delivery.next_attempt_at = None
    delivery.lease_owner = None
    delivery.lease_expires_at = None
    if error is not None:
        delivery.last_error = error
    delivery.updated_at = now
