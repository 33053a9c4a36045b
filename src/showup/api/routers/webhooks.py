"""Webhook endpoints, their deliveries, and the tenant's default secret.

- ``/api/v2/webhook-endpoints/``: create (the ``secret`` is in this response only), list,
  get, update (``url``, ``event_types``, ``description``, ``disabled``: a disabled
  endpoint is re-enabled here), delete, ``rotate-secret`` (the new secret shown once; the
  old one keeps signing for ``SHOWUP_WEBHOOK_ROTATION_GRACE``), ``deliveries`` with their
  attempts, and ``replay``.
- ``/api/v2/webhook-secret/``: the tenant's default secret, which signs deliveries to
  calendars' own ``webhook_url``. It is the tenant's own secret, returned only here.

A replayed delivery reuses the message id as ``webhook-id`` (Standard Webhooks: the id is
the receiver's idempotency key), so receivers can tell a replay from a new event.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from showup.api.deps import CallerDep, RuntimeDep, SessionDep, public_base
from showup.api.errors import ApiError, bad_request, not_found
from showup.api.pagination import page_url, paginate
from showup.api.serializers import iso
from showup.db.webhook_models import (
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookMessage,
)
from showup.security.url_guard import MAX_URL_LENGTH, UrlRejected
from showup.webhooks import endpoints as service
from showup.webhooks.outbox import EVENT_TYPES

router = APIRouter(tags=["webhooks"])

PREFIX = "/api/v2/webhook-endpoints"


class EndpointCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    url: str = Field(min_length=1, max_length=MAX_URL_LENGTH)
    event_types: list[Annotated[str, Field(max_length=64)]] | None = Field(
        default=None, max_length=len(EVENT_TYPES)
    )
    description: str | None = Field(default=None, max_length=500)


class EndpointUpdate(BaseModel):
    """PATCH: only the fields sent change. ``event_types: null`` means every type,
    ``description: null`` (or "") clears it; ``url`` and ``disabled`` cannot be null."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    url: str | None = Field(default=None, min_length=1, max_length=MAX_URL_LENGTH)
    event_types: list[Annotated[str, Field(max_length=64)]] | None = Field(
        default=None, max_length=len(EVENT_TYPES)
    )
    description: str | None = Field(default=None, max_length=500)
    disabled: bool | None = None


def _event_types(given: list[str] | None) -> list[str] | None:
    if given is None:
        return None
    if not given:
        raise bad_request(
            "invalid_request",
            "event_types must not be empty; omit it for every type.",
            "event_types",
        )
    unknown = [t for t in given if t not in EVENT_TYPES]
    if unknown:
        raise bad_request(
            "unknown_event_type",
            f"Unknown event type {unknown[0]!r}; known types: {', '.join(EVENT_TYPES)}.",
            "event_types",
        )
    return list(dict.fromkeys(given))


def endpoint_json(ep: WebhookEndpoint, secret: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": ep.id,
        "url": ep.url,
        "description": ep.description,
        "event_types": ep.event_types,
        "disabled": ep.disabled,
        "disabled_reason": ep.disabled_reason,
        "disabled_at": iso(ep.disabled_at),
        "previous_secret_expires_at": iso(ep.previous_secret_expires_at),
        "created_at": iso(ep.created_at),
        "updated_at": iso(ep.updated_at),
    }
    if secret is not None:
        body["secret"] = secret
    return body


def attempt_json(a: WebhookAttempt) -> dict[str, Any]:
    return {
        "id": a.id,
        "attempted_at": iso(a.attempted_at),
        "status_code": a.status_code,
        "latency_ms": a.latency_ms,
        "error": a.error,
        "response_snippet": a.response_snippet,
    }


def delivery_json(
    d: WebhookDelivery, event_type: str, attempts: list[WebhookAttempt]
) -> dict[str, Any]:
    return {
        "id": d.id,
        "endpoint_id": d.endpoint_id,
        "webhook_id": d.message_id,
        "event_type": event_type,
        "status": d.status,
        "attempt_count": d.attempts,
        "next_attempt_at": iso(d.next_attempt_at),
        "last_status_code": d.last_status_code,
        "last_error": d.last_error,
        "delivered_at": iso(d.delivered_at),
        "created_at": iso(d.created_at),
        "updated_at": iso(d.updated_at),
        "attempts": [attempt_json(a) for a in attempts],
    }


async def _load(session: SessionDep, caller: CallerDep, endpoint_id: str) -> WebhookEndpoint:
    ep = await service.get_endpoint(session, caller.tenant_id, endpoint_id)
    if ep is None:
        raise not_found("webhook endpoint")
    return ep


async def _check_url(session: SessionDep, runtime: RuntimeDep, url: str) -> None:
    """The SSRF guard, DNS included, outside any transaction: the lookup may take up to
    ``webhook_timeout``, and on SQLite an open transaction holds the process's only
    connection. Ends the session's transaction (nothing is written before this), which
    expires what it loaded: the caller reads again afterwards."""
    await session.rollback()
    try:
        await runtime.outbound.check(url, runtime.settings)
    except UrlRejected as exc:
        raise ApiError(400, exc.code, str(exc), [{"field": "url", "message": str(exc)}]) from None


@router.post(f"{PREFIX}/", status_code=201)
async def create_endpoint(
    body: EndpointCreate, caller: CallerDep, session: SessionDep, runtime: RuntimeDep
) -> dict[str, Any]:
    event_types = _event_types(body.event_types)
    await _check_url(session, runtime, body.url)
    created = await service.create_endpoint(
        session,
        runtime.vault,
        tenant_id=caller.tenant_id,
        url=body.url,
        event_types=event_types,
        description=body.description or None,
        now=runtime.clock.now(),
    )
    await session.commit()
    return endpoint_json(created.endpoint, created.secret)


@router.get(f"{PREFIX}/")
async def list_endpoints(
    request: Request,
    caller: CallerDep,
    session: SessionDep,
    runtime: RuntimeDep,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    page_size: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    page = await paginate(
        session,
        select(WebhookEndpoint).where(WebhookEndpoint.tenant_id == caller.tenant_id),
        time_col=WebhookEndpoint.created_at,
        id_col=WebhookEndpoint.id,
        key_of=lambda e: (e.created_at, e.id),
        cursor=cursor,
        page_size=page_size,
    )
    base = public_base(request, runtime) + request.url.path
    params = dict(request.query_params)
    return {
        "next": page_url(base, params, page.next_cursor),
        "previous": page_url(base, params, page.previous_cursor),
        "results": [endpoint_json(e) for e in page.results],
    }


@router.get(f"{PREFIX}/{{endpoint_id}}/")
async def get_endpoint(endpoint_id: str, caller: CallerDep, session: SessionDep) -> dict[str, Any]:
    return endpoint_json(await _load(session, caller, endpoint_id))


@router.patch(f"{PREFIX}/{{endpoint_id}}/")
async def update_endpoint(
    endpoint_id: str,
    body: EndpointUpdate,
    caller: CallerDep,
    session: SessionDep,
    runtime: RuntimeDep,
) -> dict[str, Any]:
    """Change the endpoint's ``url``, ``event_types``, ``description``, or re-enable it
    (``disabled: false``; disabling with ``true`` cancels its queued deliveries, as a 410
    does). Every field is checked as at creation, a new URL by the SSRF guard too, before
    anything is written. Re-enabling queues nothing again: replay what you need."""
    fields = body.model_fields_set
    for name in ("url", "disabled"):
        if name in fields and getattr(body, name) is None:
            raise bad_request("invalid_request", f"{name} cannot be null.", name)
    event_types: list[str] | service.Keep | None = service.KEEP
    if "event_types" in fields:
        event_types = _event_types(body.event_types)
    description: str | service.Keep | None = service.KEEP
    if "description" in fields:
        description = body.description or None
    disabled: bool | service.Keep = service.KEEP if body.disabled is None else body.disabled
    url: str | service.Keep = service.KEEP
    ep = await _load(session, caller, endpoint_id)
    if body.url is not None and body.url != ep.url:
        # The stored URL passed at creation (and every delivery checks it again).
        await _check_url(session, runtime, body.url)
        ep = await _load(session, caller, endpoint_id)
        url = body.url
    await service.update_endpoint(
        session,
        ep,
        now=runtime.clock.now(),
        url=url,
        event_types=event_types,
        description=description,
        disabled=disabled,
    )
    await session.commit()
    return endpoint_json(ep)


@router.delete(f"{PREFIX}/{{endpoint_id}}/", status_code=204)
async def delete_endpoint(endpoint_id: str, caller: CallerDep, session: SessionDep) -> Response:
    """Delete the endpoint with its pending deliveries and their history."""
    ep = await _load(session, caller, endpoint_id)
    await session.delete(ep)
    await session.commit()
    return Response(status_code=204)


@router.post(f"{PREFIX}/{{endpoint_id}}/rotate-secret/")
async def rotate_secret(
    endpoint_id: str, caller: CallerDep, session: SessionDep, runtime: RuntimeDep
) -> dict[str, Any]:
    ep = await _load(session, caller, endpoint_id)
    secret = service.rotate_secret(
        ep, runtime.vault, now=runtime.clock.now(), grace=runtime.settings.webhook_rotation_grace
    )
    await session.commit()
    return endpoint_json(ep, secret)


@router.get(f"{PREFIX}/{{endpoint_id}}/deliveries/")
async def list_deliveries(
    endpoint_id: str,
    request: Request,
    caller: CallerDep,
    session: SessionDep,
    runtime: RuntimeDep,
    status: Literal["pending", "delivered", "failed", "cancelled"] | None = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    page_size: Annotated[int, Query(ge=1, le=100)] = 50,
) -> dict[str, Any]:
    ep = await _load(session, caller, endpoint_id)
    q = select(WebhookDelivery).where(
        WebhookDelivery.endpoint_id == ep.id, WebhookDelivery.tenant_id == caller.tenant_id
    )
    if status:
        q = q.where(WebhookDelivery.status == status)
    page = await paginate(
        session,
        q,
        time_col=WebhookDelivery.created_at,
        id_col=WebhookDelivery.id,
        key_of=lambda d: (d.created_at, d.id),
        cursor=cursor,
        page_size=page_size,
    )
    results = await _deliveries_json(session, page.results)
    base = public_base(request, runtime) + request.url.path
    params = dict(request.query_params)
    return {
        "next": page_url(base, params, page.next_cursor),
        "previous": page_url(base, params, page.previous_cursor),
        "results": results,
    }


async def _deliveries_json(
    session: SessionDep, deliveries: list[WebhookDelivery]
) -> list[dict[str, Any]]:
    """Deliveries with their attempts and event types, in two queries for the whole page."""
    ids = [d.id for d in deliveries]
    by_delivery: dict[str, list[WebhookAttempt]] = {i: [] for i in ids}
    types: dict[str, str] = {}
    if ids:
        attempts = await session.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id.in_(ids))
            .order_by(WebhookAttempt.attempted_at, WebhookAttempt.id)
        )
        for a in attempts:
            by_delivery[a.delivery_id].append(a)
        rows = await session.execute(
            select(WebhookMessage.id, WebhookMessage.event_type).where(
                WebhookMessage.id.in_({d.message_id for d in deliveries})
            )
        )
        types = {mid: etype for mid, etype in rows.all()}
    return [delivery_json(d, types.get(d.message_id, ""), by_delivery[d.id]) for d in deliveries]


@router.post(f"{PREFIX}/{{endpoint_id}}/deliveries/{{delivery_id}}/replay/", status_code=201)
async def replay_delivery(
    endpoint_id: str,
    delivery_id: str,
    caller: CallerDep,
    session: SessionDep,
    runtime: RuntimeDep,
) -> dict[str, Any]:
    """Queue the delivery's message again to this endpoint (same ``webhook-id``)."""
    ep = await _load(session, caller, endpoint_id)
    delivery = await session.scalar(
        select(WebhookDelivery).where(
            WebhookDelivery.id == delivery_id,
            WebhookDelivery.endpoint_id == ep.id,
            WebhookDelivery.tenant_id == caller.tenant_id,
        )
    )
    if delivery is None:
        raise not_found("delivery")
    if ep.disabled:
        raise ApiError(
            409, "endpoint_disabled", "The endpoint is disabled; nothing can be delivered to it."
        )
    try:
        fresh = await service.replay(session, delivery, now=runtime.clock.now())
    except (LookupError, IntegrityError):
        # Purged meanwhile by webhook retention (webhooks/retention.py), message and all.
        await session.rollback()
        raise not_found("delivery") from None
    event_type = await session.scalar(
        select(WebhookMessage.event_type).where(WebhookMessage.id == fresh.message_id)
    )
    await session.commit()
    runtime.notifier.notify()
    return delivery_json(fresh, event_type or "", [])


@router.get("/api/v2/webhook-secret/")
async def get_tenant_secret(
    caller: CallerDep, session: SessionDep, runtime: RuntimeDep
) -> dict[str, str]:
    """The secret signing deliveries to calendars' own ``webhook_url`` (created on first use)."""
    secret = await service.tenant_secret(
        session, runtime.vault, caller.tenant_id, runtime.clock.now()
    )
    await session.commit()
    return {"secret": secret}
