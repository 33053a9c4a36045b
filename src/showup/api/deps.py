"""Request dependencies: the runtime, a session per request, the caller's tenant."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from showup.api.errors import ApiError
from showup.runtime import Runtime
from showup.tenants import tenant_for_key


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_session(runtime: RuntimeDep) -> AsyncIterator[AsyncSession]:
    """One session per request. Handlers commit explicitly; anything else rolls back."""
    async with runtime.sessions() as session:
        try:
            yield session
        finally:
            if session.in_transaction():
                await session.rollback()


SessionDep = Annotated[AsyncSession, Depends(get_session)]


@dataclass(frozen=True, slots=True)
class Caller:
    tenant_id: str


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() not in ("token", "bearer") or not value.strip():
        raise ApiError(
            401,
            "unauthenticated",
            "Authentication credentials were not provided. Send 'Authorization: Token <key>'.",
            headers={"WWW-Authenticate": "Token"},
        )
    return value.strip()


async def get_caller(request: Request, session: SessionDep) -> Caller:
    key = _bearer(request)
    tenant_id = await tenant_for_key(session, key)
    if tenant_id is None:
        raise ApiError(
            401, "invalid_api_key", "Invalid API key.", headers={"WWW-Authenticate": "Token"}
        )
    return Caller(tenant_id=tenant_id)


CallerDep = Annotated[Caller, Depends(get_caller)]


def public_base(request: Request, runtime: Runtime) -> str:
    """The base URL clients reach us at: the public URL setting, else the request's own."""
    if runtime.settings.public_url:
        return runtime.settings.public_url
    return str(request.base_url).rstrip("/")
