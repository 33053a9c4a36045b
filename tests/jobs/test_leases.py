"""claim_due: due rows, in due order, leased with the caller's values; others skipped."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select, update

from showup.calendars.service import NewCalendar, create_calendar
from showup.db.models import Calendar
from showup.jobs.leases import claim_due
from tests.support.helpers import counting_transactions

LEASE = timedelta(minutes=2)


async def _calendars(runtime: Any, tenant: Any, n: int) -> list[str]:
    ids = []
    async with runtime.sessions() as session:
        for i in range(n):
            cal = await create_calendar(
                session,
                runtime.clock,
                runtime.vault,
                tenant.tenant_id,
                NewCalendar(
                    platform="google_calendar",
                    oauth_client_id="client",
                    oauth_client_secret="secret",
                    oauth_refresh_token=f"refresh-{i}",
                ),
            )
            ids.append(cal.id)
        await session.commit()
    return ids


async def _claim(runtime: Any, owner: str, limit: int, **extra: Any) -> list[str]:
    async with runtime.sessions() as session:
        ids = await claim_due(
            session,
            Calendar,
            Calendar.next_sync_at,
            now=runtime.clock.now(),
            owner=owner,
            lease=LEASE,
            limit=limit,
            **extra,
        )
        await session.commit()
    return ids


async def test_claims_due_rows_in_due_order_up_to_the_limit(runtime: Any, tenant: Any) -> None:
    now = runtime.clock.now()
    a, b, c, d, e = await _calendars(runtime, tenant, 5)
    due = {
        a: now - timedelta(minutes=1),
        b: now - timedelta(minutes=3),
        c: now,
        d: now + timedelta(seconds=1),  # not due yet
        e: None,  # never due
    }
    async with runtime.sessions() as session:
        for cal_id, at in due.items():
            await session.execute(
                update(Calendar).where(Calendar.id == cal_id).values(next_sync_at=at)
            )
        await session.commit()
    with counting_transactions(runtime) as begun:
        assert await _claim(runtime, "w1", 2, values={"sync_requested_at": None}) == [b, a]
    assert len(begun) == 1
    # Leased rows are not claimed again; the rest, in due order.
    assert await _claim(runtime, "w2", 10) == [c]
    assert await _claim(runtime, "w2", 10) == []
    async with runtime.sessions() as session:
        rows = {
            r.id: r
            for r in (
                await session.execute(
                    select(Calendar.id, Calendar.lease_owner, Calendar.lease_expires_at)
                )
            ).all()
        }
    assert {k: rows[k].lease_owner for k in due} == {a: "w1", b: "w1", c: "w2", d: None, e: None}
    assert rows[a].lease_expires_at == now + LEASE
    # An expired lease may be claimed by another worker; ``due_by`` looks ahead.
    runtime.clock.advance(LEASE + timedelta(seconds=1))
    assert await _claim(runtime, "w3", 10, due_by=runtime.clock.now()) == [b, a, c, d]


async def test_claim_sets_the_callers_values(runtime: Any, tenant: Any) -> None:
    now = runtime.clock.now()
    [cal_id] = await _calendars(runtime, tenant, 1)
    async with runtime.sessions() as session:
        await session.execute(
            update(Calendar)
            .where(Calendar.id == cal_id)
            .values(next_sync_at=now, sync_failures=2, sync_requested_at=now)
        )
        await session.commit()
    values = {"sync_requested_at": None, "sync_failures": Calendar.sync_failures + 1}
    assert await _claim(runtime, "w1", 1, values=values) == [cal_id]
    async with runtime.sessions() as session:
        cal = await session.get(Calendar, cal_id)
    assert cal is not None
    assert (cal.lease_owner, cal.sync_requested_at, cal.sync_failures) == ("w1", None, 3)
    assert await _claim(runtime, "w1", 0) == []


async def test_many_rows_come_in_due_order(runtime: Any, tenant: Any) -> None:
    now = runtime.clock.now()
    ids = await _calendars(runtime, tenant, 12)
    # Due times unrelated to the ids' (random) or the rows' (insertion) order.
    order = [7, 2, 11, 0, 5, 9, 1, 10, 3, 8, 6, 4]
    async with runtime.sessions() as session:
        for rank, i in enumerate(order):
            await session.execute(
                update(Calendar)
                .where(Calendar.id == ids[i])
                .values(next_sync_at=now - timedelta(minutes=len(order) - rank))
            )
        await session.commit()
    assert await _claim(runtime, "w1", 12) == [ids[i] for i in order]
