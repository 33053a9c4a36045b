"""Launchers start bots (``base.Launcher``). This issue ships the tenant-webhook launcher;
vendor launchers (Recall.ai, Attendee, …) plug in behind :func:`launcher_for`."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from showup.launchers.base import Launcher
from showup.runtime import Runtime


def launcher_for(runtime: Runtime, tenant_id: str) -> Launcher:
    """The launcher of ``tenant_id``. Every tenant uses its signed webhook for now."""
    from showup.launchers.webhook import WebhookLauncher

    return WebhookLauncher(runtime)


async def loaded_launcher(session: AsyncSession, runtime: Runtime, tenant_id: str) -> Launcher:
    """Like :func:`launcher_for`, with what it reads per launch (the tenant's endpoints)
    read now, in the caller's transaction: for launches claimed together."""
    from showup.launchers.webhook import WebhookLauncher

    return await WebhookLauncher.loaded(session, runtime, tenant_id)
