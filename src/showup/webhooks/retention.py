"""Webhook retention: old finished messages go, with their deliveries and attempts.

Nothing else deletes them (deleting an endpoint takes only its own deliveries along), and
every calendar or bot change writes some, so without this the three tables only grow. A
message is purged when

- it was created more than ``SHOWUP_WEBHOOK_RETENTION`` ago, and
- every delivery of it is finished (``delivered``, ``failed`` or ``cancelled``), holds no
  lease, and ended (its ``updated_at``) more than the retention ago.

So a pending or leased delivery keeps its message whatever its age, and replaying an old
delivery keeps the whole message (the replay and the deliveries before it) for another
full retention period after the replay ends. A message is purged whole or not at all.

How: in passes of short batches, a few batches per call of the worker's maintenance
(``jobs/retention.py`` has the bookkeeping, shared with event retention):

- a *pass* starts at most once an hour (or when forced) with a fixed cutoff,
  and walks each tenant's messages older than the cutoff through the
  ``(tenant_id, created_at)`` index, in order, so a pass looks at each message once;
- each *batch* is one short transaction over at most ``batch_size`` messages: the
  current tenant's, then the next tenants' when it has no more;
- by default a call runs one batch of 200, and the next call goes on a second later
  (about 20 ms of CPU on SQLite; 17 million messages a day), which neither holds up
  claims for long nor takes over a busy loop;
- deliveries and attempts go by the foreign keys' ``ON DELETE CASCADE`` (on SQLite the
  ``foreign_keys`` pragma is set on every connection), in the same order (deliveries,
  then attempts) as when an endpoint is deleted.

On PostgreSQL a batch locks its messages ``FOR UPDATE SKIP LOCKED`` before checking
them, in a statement of its own, so the check sees every delivery committed before the
lock. A replay adding a delivery to one of them takes a key-share lock on the message: if
it came first, the message is skipped (it is no longer finished anyway); if it comes
after, it waits for the purge to commit and then fails on the foreign key, which the API
answers with 404 (the delivery is gone). Two workers purging at once skip each other's
messages.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from sqlalchemy import and_, delete, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from showup.db.engine import dialect_of
from showup.db.models import Tenant
from showup.db.webhook_models import WebhookDelivery, WebhookMessage
from showup.jobs.retention import Pass, Retention, all_ids
from showup.runtime import Runtime

log = logging.getLogger("showup.webhooks")


@dataclass(slots=True, kw_only=True)
class _Pass(Pass):
    """Also: the tenants left, and where the current one is."""

    tenants: list[str]
    after: tuple[datetime, str] | None = None  # last (created_at, id) looked at

    @property
    def done(self) -> bool:
        return not self.tenants


@dataclass(slots=True)
class WebhookRetention(Retention[_Pass]):
    """Purges finished webhook messages past the retention, a few batches per call."""

    what: ClassVar[str] = "webhook retention"
    logger: ClassVar[logging.Logger] = log

    async def _start(self, rt: Runtime, now: datetime) -> _Pass:
        tenants = await all_ids(rt, Tenant.id)
        return _Pass(started=now, cutoff=now - rt.settings.webhook_retention, tenants=tenants)

    async def _batch(self, rt: Runtime, p: _Pass) -> int:
        """One transaction over the next ``batch_size`` old messages of the pass: the
        current tenant's, then the next tenants' when it has no more (at most
        ``batch_size`` tenants, so a pass over many quiet tenants takes few batches)."""
        purged = 0
        async with rt.sessions() as session:
            room = self.batch_size
            for _ in range(self.batch_size):
                if not p.tenants or room <= 0:
                    break
                limit = room
                page = await _page(session, p.tenants[0], p.cutoff, p.after, limit)
                purged += await purge_messages(session, [mid for _, mid in page], p.cutoff)
                room -= len(page)
                if len(page) < limit:  # this tenant has no more
                    p.tenants.pop(0)
                    p.after = None
                else:
                    p.after = page[-1]
            await session.commit()
        return purged

    def _report(self, p: _Pass) -> None:
        self.logger.info(
            "purged %d webhook messages finished before %s", p.purged, p.cutoff.isoformat()
        )


async def _page(
    session: AsyncSession,
    tenant_id: str,
    cutoff: datetime,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[tuple[datetime, str]]:
    """The tenant's next messages created before ``cutoff``, by (created_at, id)."""
    q = select(WebhookMessage.created_at, WebhookMessage.id).where(
        WebhookMessage.tenant_id == tenant_id, WebhookMessage.created_at < cutoff
    )
    if after is not None:
        at, last_id = after
        q = q.where(
            or_(
                WebhookMessage.created_at > at,
                and_(WebhookMessage.created_at == at, WebhookMessage.id > last_id),
            )
        )
    rows = await session.execute(
        q.order_by(WebhookMessage.created_at, WebhookMessage.id).limit(limit)
    )
    return [(at, mid) for at, mid in rows.all()]


async def purge_messages(session: AsyncSession, message_ids: list[str], cutoff: datetime) -> int:
    """Delete those of ``message_ids`` that are finished since before ``cutoff`` (see the
    module docstring), with their deliveries and attempts; return how many. Flushes only:
    the caller commits."""
    if not message_ids:
        return 0
    ids = message_ids
    if dialect_of(session) == "postgresql":
        ids = list(
            await session.scalars(
                select(WebhookMessage.id)
                .where(WebhookMessage.id.in_(ids))
                .with_for_update(skip_locked=True)
            )
        )
        if not ids:
            return 0
    # Checked after the lock, in a statement of its own (a fresh snapshot on PostgreSQL).
    # created_at again: a caller may pass any ids.
    unfinished = exists().where(
        WebhookDelivery.message_id == WebhookMessage.id,
        or_(
            WebhookDelivery.status == "pending",
            WebhookDelivery.lease_owner.is_not(None),
            WebhookDelivery.updated_at >= cutoff,
        ),
    )
    doomed = list(
        await session.scalars(
            select(WebhookMessage.id).where(
                WebhookMessage.id.in_(ids), WebhookMessage.created_at < cutoff, ~unfinished
            )
        )
    )
    if doomed:
        await session.execute(
            delete(WebhookMessage)
            .where(WebhookMessage.id.in_(doomed))
            .execution_options(synchronize_session=False)
        )
    return len(doomed)
