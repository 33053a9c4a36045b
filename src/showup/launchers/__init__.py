"""Launchers start bots (``base.Launcher``). This issue ships the tenant-webhook launcher;
vendor launchers (Recall.ai, Attendee, …) plug in behind :func:`launcher_for`."""

from __future__ import annotations

from showup.launchers.base import Launcher
from showup.runtime import Runtime


def launcher_for(runtime: Runtime, tenant_id: str) -> Launcher:
    """The launcher of ``tenant_id``. Every tenant uses its signed webhook for now."""
    from showup.launchers.webhook import WebhookLauncher

    return WebhookLauncher(runtime)
