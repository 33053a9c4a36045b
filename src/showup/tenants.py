"""Tenants and their API keys."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from showup.clock import Clock
from showup.db.models import ApiKey, Tenant
from showup.security.api_keys import display_prefix, generate_api_key, hash_api_key


@dataclass(frozen=True, slots=True)
class NewTenant:
    tenant_id: str
    api_key: str  # shown once; only its hash is stored


async def create_tenant(session: AsyncSession, clock: Clock, name: str) -> NewTenant:
    name = name.strip()
    if not name or len(name) > 200:
        raise ValueError("tenant name must be 1 to 200 characters")
    tenant = Tenant(name=name, created_at=clock.now())
    session.add(tenant)
    await session.flush()
    key = await issue_api_key(session, clock, tenant.id)
    return NewTenant(tenant_id=tenant.id, api_key=key)


async def issue_api_key(session: AsyncSession, clock: Clock, tenant_id: str) -> str:
    key = generate_api_key()
    session.add(
        ApiKey(
            tenant_id=tenant_id,
            key_hash=hash_api_key(key),
            prefix=display_prefix(key),
            created_at=clock.now(),
        )
    )
    await session.flush()
    return key


async def tenant_for_key(session: AsyncSession, key: str) -> str | None:
    """The tenant id owning a live API key, or None."""
    row = await session.scalar(
        select(ApiKey.tenant_id).where(
            ApiKey.key_hash == hash_api_key(key), ApiKey.revoked_at.is_(None)
        )
    )
    return row
