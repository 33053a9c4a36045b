"""The delivery job: send due deliveries, record each attempt, schedule what comes next.

Deliveries are claimed under a lease (DESIGN invariant 1). One attempt is three steps, and
no database transaction stays open across the HTTP call (on SQLite that would hold the
single writer lock):

1. **prepare**: read the delivery, its message and its target; open the signing secrets.
   A delivery whose endpoint was disabled meanwhile is cancelled here;
2. **attempt**: re-check the URL with the SSRF guard (DNS may have been rebound since
   creation), then POST the stored payload bytes with Standard Webhooks headers
   (``webhook-id`` = message id, stable across retries; ``webhook-timestamp`` and the
   signatures per attempt, by the current secret and, during a rotation's grace period,
   the previous one). Redirects are not followed; at most 1 KB of the response is read,
   and only kept as a snippet;
3. **record**, fenced on the lease: the attempt is stored, and ``policy.decide`` (see its
   table) moves the delivery on: delivered, retry at a time, failed, or gone (410: disable
   the endpoint and cancel its queue). A delivery that is no longer ours (re-claimed after
   our lease ran out, or cancelled) keeps its state; the attempt is recorded anyway.

:func:`deliver` takes each step in its own transaction. The worker's ``webhooks`` kind
runs the same steps through :class:`Deliverer`, which shares transactions the way the
bots dispatcher does (``bots/dispatcher.py``), since on SQLite every transaction takes the
single write lock and a burst of changes brings a burst of deliveries:

- **claim and prepare together**: the claim's transaction also prepares every claimed
  delivery (one query for deliveries, messages and endpoints) and, when the claim had
  room to spare, finds when the next one is due (the worker sleeps until then). A job
  then posts without a transaction of its own;
- **record in groups**: attempts are recorded by whichever job gets the turn first, with
  every attempt waiting at that moment, in one transaction (three statements, Core: no
  ORM flush). Under a burst, the groups grow by themselves; in ``run_forever`` an
  attempt also lingers :data:`RECORD_LINGER` for others to join it, so that deliveries
  arriving a few at a time share transactions too (the webhook has been sent by then:
  only the job's slot waits). Should a group fail, its attempts are written one by one,
  so one bad row fails only its own job.

A bug of ours (or an unreadable secret) must neither stop the worker nor leave the row to
be re-claimed every lease period forever: it counts as a failed attempt with error
``internal_error`` and follows the retry policy.

Neither secrets nor target URLs (which may carry tokens) are logged or stored in errors.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal, cast

import httpx
from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from showup.db.models import new_id
from showup.db.webhook_models import (
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookMessage,
)
from showup.jobs.groups import GroupWriter
from showup.jobs.leases import claim_due, next_due
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
class _Broken:
    """Preparing the attempt failed (a bug of ours, a secret that does not open)."""

    delivery_id: str


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


# How long an attempt of run_forever's waits for others to share its record transaction.
# Not on the webhook's path (the POST is done); the job holds its slot that much longer.
# At 33 deliveries/s (push-latency at 20 changes/s) 50 ms makes groups of about 2.5.
RECORD_LINGER = timedelta(milliseconds=50)

# What a claimed delivery's job starts from: an attempt to make, an attempt that failed
# before the POST, or the outcome already (skipped, cancelled).
_Prepared = _Target | _Broken | DeliveryOutcome
_Recorded = tuple[str, AttemptResult]  # delivery id, its attempt


def _internal_error(rt: Runtime) -> AttemptResult:
    return AttemptResult(rt.clock.now(), None, "internal_error", None, None, None)


# ---- the steps, over a caller's session -----------------------------------------------


async def claim(
    session: AsyncSession, rt: Runtime, now: datetime, owner: str, limit: int
) -> list[str]:
    """Lease up to ``limit`` pending deliveries due by ``now``, in the caller's transaction."""
    return await claim_due(
        session,
        WebhookDelivery,
        WebhookDelivery.next_attempt_at,
        now=now,
        owner=owner,
        lease=rt.settings.lease_duration,
        limit=limit,
        where=(WebhookDelivery.status == "pending",),
    )


async def prepare(
    session: AsyncSession, rt: Runtime, now: datetime, delivery_ids: Sequence[str], owner: str
) -> dict[str, _Prepared]:
    """What each delivery's attempt needs, or its outcome when it must not be attempted:
    not ``owner``'s (skipped), or its endpoint disabled (cancelled, written here)."""
    rows = (
        await session.execute(
            select(
                WebhookDelivery.id,
                WebhookDelivery.tenant_id,
                WebhookDelivery.message_id,
                WebhookDelivery.endpoint_id,
                WebhookDelivery.target_url,
                WebhookDelivery.lease_owner,
                WebhookDelivery.status,
                WebhookMessage.payload,
                WebhookEndpoint,
            )
            .join(WebhookMessage, WebhookMessage.id == WebhookDelivery.message_id)
            .outerjoin(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
            .where(WebhookDelivery.id.in_(delivery_ids))
        )
    ).all()
    out: dict[str, _Prepared] = {}
    cancelled: list[str] = []
    tenant_secrets: dict[str, str] = {}
    for (
        d_id,
        tenant_id,
        message_id,
        endpoint_id,
        target_url,
        lease_owner,
        status,
        payload,
        ep,
    ) in rows:
        if lease_owner != owner or status != "pending":
            out[d_id] = DeliveryOutcome(d_id, "skipped")
            continue
        if endpoint_id is not None and (ep is None or ep.disabled):
            cancelled.append(d_id)
            out[d_id] = DeliveryOutcome(d_id, "cancelled", error="endpoint_disabled")
            continue
        try:
            if ep is not None:
                url = ep.url
                secrets = signing_secrets(ep, rt.vault, now)
            else:
                assert target_url is not None  # the has_target check constraint
                url = target_url
                if tenant_id not in tenant_secrets:
                    tenant_secrets[tenant_id] = await tenant_secret(
                        session, rt.vault, tenant_id, now
                    )
                secrets = [tenant_secrets[tenant_id]]
        except Exception:
            log.exception("webhook delivery %s could not be prepared", d_id)
            out[d_id] = _Broken(d_id)
            continue
        out[d_id] = _Target(
            delivery_id=d_id,
            tenant_id=tenant_id,
            message_id=message_id,
            endpoint_id=endpoint_id,
            url=url,
            body=payload.encode("utf-8"),
            secrets=secrets,
        )
    if cancelled:
        await session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id.in_(cancelled))
            .values(
                status="cancelled",
                next_attempt_at=None,
                lease_owner=None,
                lease_expires_at=None,
                last_error="endpoint_disabled",
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
    for d_id in delivery_ids:  # gone with its message (the FK cascades): nothing to send
        out.setdefault(d_id, DeliveryOutcome(d_id, "skipped"))
    return out


_DELIVERIES = cast(Table, WebhookDelivery.__table__)
_ATTEMPTS = cast(Table, WebhookAttempt.__table__)
# One UPDATE for every recorded attempt of a group (executemany), whatever its outcome:
# the columns an outcome leaves alone get the value they have (a pending delivery has no
# delivered_at, and the lease is released in every case).
_ADVANCE = (
    update(_DELIVERIES)
    .where(_DELIVERIES.c.id == bindparam("b_id"))
    .values(
        status=bindparam("b_status"),
        attempts=bindparam("b_attempts"),
        next_attempt_at=bindparam("b_next_attempt_at"),
        lease_owner=None,
        lease_expires_at=None,
        last_status_code=bindparam("b_status_code"),
        last_error=bindparam("b_error"),
        delivered_at=bindparam("b_delivered_at"),
        updated_at=bindparam("b_now"),
    )
)


async def record_attempts(
    session: AsyncSession, rt: Runtime, owner: str, attempts: Sequence[_Recorded]
) -> list[DeliveryOutcome]:
    """Store each attempt and apply its outcome, in order, where ``owner`` still holds the
    delivery's lease; one outcome per attempt. The caller commits.

    Three statements for the group (the deliveries locked, the attempts inserted, the
    deliveries moved on), plus disabling an endpoint that answered 410 Gone: as if the
    attempts were recorded one after the other, that cancels the endpoint's queue,
    including its deliveries further down the group (they are left as cancelled).
    """
    now = rt.clock.now()
    policy = RetryPolicy.from_settings(rt.settings)
    d = _DELIVERIES.c
    rows = await session.execute(
        select(d.id, d.lease_owner, d.status, d.attempts, d.created_at, d.endpoint_id)
        .where(d.id.in_([delivery_id for delivery_id, _ in attempts]))
        .order_by(d.id)
        .with_for_update()
    )
    found = {row.id: row for row in rows}
    inserts: list[dict[str, object]] = []
    updates: dict[str, dict[str, object]] = {}
    gone: list[str] = []  # endpoints to disable, in order
    outcomes: list[DeliveryOutcome] = []
    for delivery_id, result in attempts:
        row = found.get(delivery_id)
        if row is None:  # the endpoint was deleted meanwhile, taking its deliveries
            outcomes.append(
                DeliveryOutcome(delivery_id, "skipped", result.status_code, result.error)
            )
            continue
        inserts.append(
            {
                "id": new_id(),
                "delivery_id": delivery_id,
                "attempted_at": result.at,
                "status_code": result.status_code,
                "latency_ms": result.latency_ms,
                "error": result.error,
                "response_snippet": result.snippet,
            }
        )
        if (
            row.lease_owner != owner
            or row.status != "pending"
            or delivery_id in updates
            or row.endpoint_id in gone
        ):
            # Cancelled (endpoint disabled) or re-claimed after our lease ran out: the
            # attempt happened and is recorded, but the delivery's state is someone else's.
            outcomes.append(
                DeliveryOutcome(delivery_id, "skipped", result.status_code, result.error)
            )
            continue
        outcome, updates[delivery_id], is_gone = _advance(
            delivery_id, row.attempts + 1, row.created_at, result, now, policy
        )
        outcomes.append(outcome)
        if is_gone and row.endpoint_id is not None:
            gone.append(row.endpoint_id)
    if inserts:
        await session.execute(insert(_ATTEMPTS), inserts)
    if updates:
        await session.execute(_ADVANCE, list(updates.values()))
    for endpoint_id in gone:
        endpoint = await session.get(WebhookEndpoint, endpoint_id)
        if endpoint is not None and not endpoint.disabled:
            await disable_endpoint(
                session, endpoint, reason="the endpoint answered 410 Gone", now=now
            )
            log.warning("webhook endpoint %s disabled: it answered 410 Gone", endpoint.id)
    return outcomes


def _advance(
    delivery_id: str,
    attempts: int,
    created_at: datetime,
    result: AttemptResult,
    now: datetime,
    policy: RetryPolicy,
) -> tuple[DeliveryOutcome, dict[str, object], bool]:
    """The delivery's outcome after its ``attempts``-th attempt, its new column values
    (``_ADVANCE``'s parameters), and whether its endpoint is gone (410)."""
    decision = decide(
        status_code=result.status_code,
        retry_after=result.retry_after,
        attempts=attempts,
        created_at=created_at,
        now=now,
        policy=policy,
    )
    code = result.status_code
    values: dict[str, object] = {
        "b_id": delivery_id,
        "b_status": "pending",
        "b_attempts": attempts,
        "b_next_attempt_at": None,
        "b_status_code": code,
        "b_error": result.error,
        "b_delivered_at": None,
        "b_now": now,
    }
    if decision.verdict == "delivered":
        values.update(b_status="delivered", b_delivered_at=now)
        return DeliveryOutcome(delivery_id, "delivered", code), values, False
    if decision.verdict == "retry":
        values.update(b_next_attempt_at=decision.next_attempt_at)
        outcome = DeliveryOutcome(
            delivery_id, "retry", code, result.error, decision.next_attempt_at
        )
        return outcome, values, False
    # The last attempt keeps its own error; the delivery says why it stopped.
    reason = decision.reason or "failed"
    values.update(b_status="failed", b_error=reason)
    return DeliveryOutcome(delivery_id, "failed", code, reason), values, decision.verdict == "gone"


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
    except UrlRejected as exc:  # the client's own lookup refused it (security/egress.py)
        error = exc.code
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


async def _attempt_prepared(rt: Runtime, prepared: _Target | _Broken) -> AttemptResult:
    """The attempt of a prepared delivery; a bug of ours is an ``internal_error`` attempt."""
    if isinstance(prepared, _Broken):
        return _internal_error(rt)
    try:
        return await _attempt(rt, prepared)
    except Exception:
        log.exception("webhook delivery %s failed unexpectedly", prepared.delivery_id)
        return _internal_error(rt)


def _log_outcome(prepared: _Target | _Broken, outcome: DeliveryOutcome) -> None:
    log.info(
        "webhook delivery %s (message %s): %s, status %s, error %s",
        outcome.delivery_id,
        prepared.message_id if isinstance(prepared, _Target) else None,
        outcome.result,
        outcome.status_code,
        outcome.error,
    )


# ---- one delivery at a time, each step in its own transaction --------------------------


async def claim_deliveries(rt: Runtime, owner: str, limit: int) -> list[str]:
    """Lease up to ``limit`` pending deliveries whose ``next_attempt_at`` has passed."""
    async with rt.sessions() as session:
        ids = await claim(session, rt, rt.clock.now(), owner, limit)
        await session.commit()
    return ids


async def deliver(rt: Runtime, delivery_id: str, owner: str) -> DeliveryOutcome:
    """Attempt one claimed delivery: prepare, POST, record, each step on its own."""
    try:
        async with rt.sessions() as session:
            [prepared] = (await prepare(session, rt, rt.clock.now(), [delivery_id], owner)).values()
            await session.commit()
        if isinstance(prepared, DeliveryOutcome):
            return prepared
        result = await _attempt_prepared(rt, prepared)
        async with rt.sessions() as session:
            [outcome] = await record_attempts(session, rt, owner, [(delivery_id, result)])
            await session.commit()
    except Exception:
        log.exception("webhook delivery %s failed unexpectedly", delivery_id)
        return await _record_alone(rt, owner, delivery_id, _internal_error(rt))
    _log_outcome(prepared, outcome)
    return outcome


async def _record_alone(
    rt: Runtime, owner: str, delivery_id: str, result: AttemptResult
) -> DeliveryOutcome:
    async with rt.sessions() as session:
        [outcome] = await record_attempts(session, rt, owner, [(delivery_id, result)])
        await session.commit()
    return outcome


# ---- the worker's ``webhooks`` kind: shared transactions --------------------------------


class Deliverer:
    """Claim, run and claim-next functions of the ``webhooks`` job kind (``jobs/kinds.py``).

    ``linger``: how long an attempt of a delivery claimed by :meth:`claim_next`
    (``run_forever``) waits for others to be recorded with it (see :class:`_GroupRecorder`).
    """

    def __init__(self, runtime: Runtime, linger: timedelta = RECORD_LINGER) -> None:
        self.rt = runtime
        self.linger = linger
        self._ready: dict[str, tuple[_Prepared, float]] = {}  # and its linger, in seconds
        self._recorder = _GroupRecorder(runtime)

    async def claim(self, rt: Runtime, owner: str, limit: int) -> list[str]:
        """Claim and prepare up to ``limit`` due deliveries (``drain``: no lingering)."""
        ids, _ = await self._claim(rt, owner, limit, want_next=False)
        return ids

    async def claim_next(
        self, rt: Runtime, owner: str, limit: int
    ) -> tuple[list[str], datetime | None]:
        """:meth:`claim`; with room to spare, also when the next delivery is due (None when
        none is, or when full: the worker comes back when a slot frees)."""
        return await self._claim(rt, owner, limit, want_next=True)

    async def _claim(
        self, rt: Runtime, owner: str, limit: int, *, want_next: bool
    ) -> tuple[list[str], datetime | None]:
        now = rt.clock.now()
        async with rt.sessions() as session:
            ids = await claim(session, rt, now, owner, limit)
            prepared = await prepare(session, rt, now, ids, owner) if ids else {}
            due = None
            if want_next and len(ids) < limit:
                due = await next_due(
                    session,
                    WebhookDelivery.next_attempt_at,
                    now=now,
                    where=(WebhookDelivery.status == "pending",),
                )
            await session.commit()
        linger = self.linger.total_seconds() if want_next else 0.0
        self._ready.update((d_id, (item, linger)) for d_id, item in prepared.items())
        return ids, due

    async def run(self, rt: Runtime, delivery_id: str, owner: str) -> DeliveryOutcome:
        ready = self._ready.pop(delivery_id, None)
        if ready is None:  # claimed by another caller than our claim
            return await deliver(rt, delivery_id, owner)
        prepared, linger = ready
        if isinstance(prepared, DeliveryOutcome):
            return prepared
        result = await _attempt_prepared(rt, prepared)
        try:
            outcome = await self._recorder.record(owner, (delivery_id, result), linger)
        except Exception:
            log.exception("webhook delivery %s: recording its attempt failed", delivery_id)
            outcome = await _record_alone(rt, owner, delivery_id, _internal_error(rt))
        _log_outcome(prepared, outcome)
        return outcome


class _GroupRecorder(GroupWriter[_Recorded, DeliveryOutcome]):
    """Records attempts, those waiting together in one transaction (``jobs/groups.py``).

    Without lingering, attempts group only while a write is under way (under a burst);
    with it (``run_forever``), attempts finishing within ``linger`` of each other share a
    transaction at any rate.
    """

    lost = "attempt not recorded"

    def __init__(self, runtime: Runtime) -> None:
        super().__init__()
        self.rt = runtime

    async def _write(self, owner: str, attempts: Sequence[_Recorded]) -> list[DeliveryOutcome]:
        async with self.rt.sessions() as session:
            results = await record_attempts(session, self.rt, owner, attempts)
            await session.commit()
        return results
