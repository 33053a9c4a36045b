"""Webhook endpoints and secrets: create, update, rotate, disable, replay (services over a
session).

Secrets are generated here (``signing.generate_secret``), sealed with the tenant's vault
key at once, and handed back in clear only to the caller that must show them once (the
create and rotate responses, and the tenant's own default secret). Nothing here logs.
Every function only flushes; the edge commits (DESIGN invariant 2).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Final

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from showup.db.engine import dialect_of
from showup.db.webhook_models import (
    TenantWebhookSecret,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookMessage,
)
from showup.security.vault import Vault
from showup.webhooks.outbox import new_delivery
from showup.webhooks.signing import generate_secret


@dataclass(frozen=True, slots=True)
class Created:
    endpoint: WebhookEndpoint
    secret: str  # shown once; only the sealed form is stored


async def create_endpoint(
    session: AsyncSession,
    vault: Vault,
    *,
    tenant_id: str,
    url: str,
    event_types: list[str] | None,
    description: str | None,
    now: datetime,
) -> Created:
    """Store a new endpoint with a fresh secret. The URL must already have been checked."""
    secret = generate_secret()
    endpoint = WebhookEndpoint(
        tenant_id=tenant_id,
        url=url,
        description=description,
        event_types=event_types,
        secret_enc=vault.seal(tenant_id, secret),
        disabled=False,
        created_at=now,
        updated_at=now,
    )
    session.add(endpoint)
    await session.flush()
    return Created(endpoint, secret)


async def get_endpoint(
    session: AsyncSession, tenant_id: str, endpoint_id: str
) -> WebhookEndpoint | None:
    """The tenant's endpoint, or None (also for another tenant's id: no existence leak)."""
    return await session.scalar(
        select(WebhookEndpoint).where(
            WebhookEndpoint.id == endpoint_id, WebhookEndpoint.tenant_id == tenant_id
        )
    )


def rotate_secret(
    endpoint: WebhookEndpoint, vault: Vault, *, now: datetime, grace: timedelta
) -> str:
    """Give ``endpoint`` a new secret; the current one keeps signing until ``now + grace``.

    Deliveries during the grace period carry two signatures (Standard Webhooks: a
    space-delimited list, any match passes), so receivers can switch at their own pace.
    A rotation during a grace period drops the oldest secret.
    """
    secret = generate_secret()
    endpoint.previous_secret_enc = endpoint.secret_enc
    endpoint.previous_secret_expires_at = now + grace
    endpoint.secret_enc = vault.seal(endpoint.tenant_id, secret)
    endpoint.updated_at = now
    return secret


def signing_secrets(endpoint: WebhookEndpoint, vault: Vault, now: datetime) -> list[str]:
    """The secrets to sign with now: the current one, then the previous one in grace."""
    secrets = [vault.open(endpoint.tenant_id, endpoint.secret_enc)]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret_enc is not None and expires is not None and now < expires:
        secrets.append(vault.open(endpoint.tenant_id, endpoint.previous_secret_enc))
    return secrets


async def disable_endpoint(
    session: AsyncSession, endpoint: WebhookEndpoint, *, reason: str, now: datetime
) -> int:
    """Disable ``endpoint`` and cancel its pending deliveries; return how many were cancelled.

    A delivery being attempted right now by another worker sees ``cancelled`` when it
    records its result and leaves it so.
    """
    await session.flush()  # pending changes of the caller first (autoflush is off)
    endpoint.disabled = True
    endpoint.disabled_reason = reason
    endpoint.disabled_at = now
    endpoint.updated_at = now
    res = await session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.endpoint_id == endpoint.id, WebhookDelivery.status == "pending")
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
    await session.flush()
    cancelled: int = res.rowcount  # type: ignore[attr-defined]
    return cancelled


class Keep(Enum):
    """update_endpoint: leave this field as it is."""

    KEEP = "keep"


KEEP: Final = Keep.KEEP

DISABLED_BY_API: Final = "disabled through the API"


async def update_endpoint(
    session: AsyncSession,
    endpoint: WebhookEndpoint,
    *,
    now: datetime,
    url: str | Keep = KEEP,
    event_types: list[str] | Keep | None = KEEP,
    description: str | Keep | None = KEEP,
    disabled: bool | Keep = KEEP,
) -> bool:
    """Change what is given (already validated, the URL checked); return whether anything
    changed. ``event_types=None`` means every type.

    Re-enabling (``disabled=False``) clears the reason and time and queues nothing: the
    deliveries cancelled when the endpoint was disabled stay cancelled (each can be
    replayed), and messages announced while it was disabled were never queued to it.
    Disabling cancels the queued deliveries, as a 410 does. Queued deliveries go to the
    new URL, if it changes, and are kept whatever the new event types.
    """
    changed = False
    if url is not KEEP and url != endpoint.url:
        endpoint.url = url
        changed = True
    if event_types is not KEEP and event_types != endpoint.event_types:
        endpoint.event_types = event_types
        changed = True
    if description is not KEEP and description != endpoint.description:
        endpoint.description = description
        changed = True
    if disabled is not KEEP and disabled != endpoint.disabled:
        if disabled:
            await disable_endpoint(session, endpoint, reason=DISABLED_BY_API, now=now)
        else:
            endpoint.disabled = False
            endpoint.disabled_reason = None
            endpoint.disabled_at = None
        changed = True
    if changed:
        endpoint.updated_at = now
        await session.flush()
    return changed


async def replay(
    session: AsyncSession, delivery: WebhookDelivery, *, now: datetime
) -> WebhookDelivery:
    """A new pending delivery of the same message to the same target, due now.

    It reuses the message id as ``webhook-id``: Standard Webhooks makes the id the
    receiver's idempotency key, so a receiver that already processed the message can
    recognise the replay (and one that lost it processes it again).
    """
    message = await session.get(WebhookMessage, delivery.message_id)
    if message is None:  # the FK cascades, so this is a concurrent delete
        raise LookupError("message not found")
    fresh = new_delivery(
        message, now, endpoint_id=delivery.endpoint_id, target_url=delivery.target_url
    )
    session.add(fresh)
    await session.flush()
    return fresh


async def tenant_secret(session: AsyncSession, vault: Vault, tenant_id: str, now: datetime) -> str:
    """The tenant's default signing secret (for calendar ``webhook_url`` targets).

    Created on first use. Two transactions creating it at once both end up with the one
    that committed first: the insert is ``ON CONFLICT DO NOTHING`` and the row is re-read.
    """
    sealed = await session.scalar(
        select(TenantWebhookSecret.secret_enc).where(TenantWebhookSecret.tenant_id == tenant_id)
    )
    if sealed is None:
        values = {
            "tenant_id": tenant_id,
            "secret_enc": vault.seal(tenant_id, generate_secret()),
            "created_at": now,
        }
        if dialect_of(session) == "postgresql":
            await session.execute(
                pg_insert(TenantWebhookSecret).values(values).on_conflict_do_nothing()
            )
        else:
            await session.execute(
                sqlite_insert(TenantWebhookSecret).values(values).on_conflict_do_nothing()
            )
        sealed = await session.scalar(
            select(TenantWebhookSecret.secret_enc).where(TenantWebhookSecret.tenant_id == tenant_id)
        )
        if sealed is None:  # pragma: no cover - the row exists after the insert
            raise RuntimeError("tenant webhook secret vanished")
    return vault.open(tenant_id, sealed)
