"""Calendar lifecycle. Services flush; the caller (request handler, job) commits."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from showup.bots import hooks as bot_hooks
from showup.clock import Clock
from showup.config import Settings
from showup.db.models import Calendar, Event
from showup.providers.base import OAuthCredentials
from showup.push import lifecycle as push_lifecycle
from showup.security.vault import Vault
from showup.sync import announce

# A new calendar's first sync waits for the create call to answer (``release_first_sync``
# runs right after the response), so its first webhooks never reach a tenant that does not
# know the calendar's id yet. Should that step be lost, the sync starts after this anyway.
FIRST_SYNC_GRACE = timedelta(seconds=2)

# The one status that blocks a calendar's bots (bots/reconcile.py: ``calendar_disconnected``).
DISCONNECTED = "disconnected"

SUPPORTED_PLATFORMS = ("google_calendar", "microsoft_outlook")
KNOWN_PLATFORMS = ("google_calendar", "microsoft_outlook")


@dataclass(frozen=True, slots=True)
class NewCalendar:
    platform: str
    oauth_client_id: str
    oauth_client_secret: str
    oauth_refresh_token: str
    external_user_id: str | None = None
    platform_calendar_id: str = "primary"
    oauth_tenant_id: str | None = None
    webhook_url: str | None = None


def record_status(
    calendar: Calendar,
    status: str,
    clock: Clock,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
) -> bool:
    """Move ``calendar`` to ``status``, appending to ``status_changes``. False if unchanged."""
    if calendar.status == status:
        return False
    change: dict[str, Any] = {"status": status, "created_at": clock.now().isoformat()}
    if reason:
        change["reason"] = reason
    if details:
        change["details"] = details
    # Reassign (not append) so the JSON column is seen as changed.
    calendar.status_changes = [*calendar.status_changes, change]
    calendar.status = status
    return True


async def create_calendar(
    session: AsyncSession, clock: Clock, vault: Vault, tenant_id: str, data: NewCalendar
) -> Calendar:
    now = clock.now()
    cal = Calendar(
        tenant_id=tenant_id,
        external_user_id=data.external_user_id,
        platform=data.platform,
        platform_calendar_id=data.platform_calendar_id,
        status="connecting",
        status_changes=[{"status": "connecting", "created_at": now.isoformat()}],
        webhook_url=data.webhook_url,
        oauth_client_id=data.oauth_client_id,
        oauth_tenant_id=data.oauth_tenant_id,
        oauth_client_secret_enc=vault.seal(tenant_id, data.oauth_client_secret),
        oauth_refresh_token_enc=vault.seal(tenant_id, data.oauth_refresh_token),
        sync_failures=0,
        next_sync_at=now + FIRST_SYNC_GRACE,
        created_at=now,
        updated_at=now,
    )
    session.add(cal)
    await session.flush()
    return cal


def credentials(calendar: Calendar, vault: Vault) -> OAuthCredentials:
    return OAuthCredentials(
        client_id=calendar.oauth_client_id,
        client_secret=vault.open(calendar.tenant_id, calendar.oauth_client_secret_enc),
        refresh_token=vault.open(calendar.tenant_id, calendar.oauth_refresh_token_enc),
        oauth_tenant=calendar.oauth_tenant_id,
    )


def set_credentials(
    calendar: Calendar,
    vault: Vault,
    *,
    client_id: str | None = None,
    client_secret: str | None = None,
    refresh_token: str | None = None,
) -> None:
    if client_id is not None:
        calendar.oauth_client_id = client_id
    if client_secret is not None:
        calendar.oauth_client_secret_enc = vault.seal(calendar.tenant_id, client_secret)
    if refresh_token is not None:
        calendar.oauth_refresh_token_enc = vault.seal(calendar.tenant_id, refresh_token)


def reconnect(calendar: Calendar, clock: Clock) -> None:
    """New credentials arrived: try again now."""
    now = clock.now()
    record_status(calendar, "connecting", clock, reason="credentials_updated")
    calendar.sync_failures = 0
    calendar.last_error = None
    calendar.last_error_at = None
    calendar.next_sync_at = now


async def release_first_sync(session: AsyncSession, calendar_id: str, now: datetime) -> None:
    """Make a just-created calendar due now (never later than it already is)."""
    await session.execute(
        update(Calendar)
        .where(Calendar.id == calendar_id, Calendar.next_sync_at > now)
        .values(next_sync_at=now)
        .execution_options(synchronize_session=False)
    )


async def status_changed(
    session: AsyncSession,
    calendar: Calendar,
    *,
    now: datetime,
    settings: Settings,
    previous: str | None = None,
) -> None:
    """What follows a calendar's status change, in the same transaction: its bots are
    reconciled (a disconnected calendar's events keep no bot unless another calendar's
    event shares it; reconnected, they come back) and the tenant gets ``calendar.update``.

    ``previous``, the status before the change when the caller knows it, spares the
    reconcile when neither status is ``disconnected``, the only status that bots depend
    on (``bots/reconcile.py``): e.g. a first sync's ``connecting`` to ``connected``.
    """
    if previous is None or DISCONNECTED in (previous, calendar.status):
        await bot_hooks.calendar_changed(session, calendar.id, now=now, settings=settings)
    await announce.calendar_updated(
        session,
        tenant_id=calendar.tenant_id,
        calendar_id=calendar.id,
        webhook_url=calendar.webhook_url,
        now=now,
    )


async def get_calendar(session: AsyncSession, tenant_id: str, calendar_id: str) -> Calendar | None:
    return await session.scalar(
        select(Calendar).where(Calendar.id == calendar_id, Calendar.tenant_id == tenant_id)
    )


async def delete_calendar(
    session: AsyncSession, calendar: Calendar, *, now: datetime, settings: Settings
) -> None:
    """Delete the calendar and its events; their bots are cancelled in the same
    transaction unless another calendar's event still shares them (Recall: delete
    "unschedules future bots")."""
    bot_ids = await bot_hooks.bots_of_calendar(session, calendar.id)
    # Explicit delete of events first: SQLite enforces ON DELETE CASCADE only with the
    # foreign_keys pragma, which we set, but being explicit keeps both databases identical.
    await session.execute(delete(Event).where(Event.calendar_id == calendar.id))
    # Its push channels outlive it until the push job has stopped them.
    await push_lifecycle.calendar_deleted(session, calendar, now)
    await session.delete(calendar)
    await session.flush()
    await bot_hooks.calendar_deleted(session, bot_ids, now=now, settings=settings)
