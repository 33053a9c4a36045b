"""``GET /api/v2/calendar-events/`` filters, on events written straight to the database."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx

from showup.db.models import Event, new_id
from tests.support.helpers import bare_calendar

UIDS = [
    "Abc123@google.com",
    "abc123@google.com",
    "abc124@google.com",
    "abc%x@google.com",
    "abc_x@google.com",
    "äbc@example.com",
    None,
]


async def _seed(runtime: Any, tenant_id: str) -> dict[str | None, str]:
    """One event per iCalUID above on one calendar of ``tenant_id``; their ids by uid."""
    now = runtime.clock.now()
    ids: dict[str | None, str] = {}
    async with runtime.sessions() as session:
        cal = bare_calendar(tenant_id, now)
        session.add(cal)
        await session.flush()
        for i, uid in enumerate(UIDS):
            start = now + timedelta(hours=i)
            ev = Event(
                id=new_id(),
                tenant_id=tenant_id,
                calendar_id=cal.id,
                platform_id=f"p{i}",
                ical_uid=uid,
                start_time=start,
                end_time=start + timedelta(hours=1),
                raw={"id": f"p{i}"},
                fingerprint="f",
                created_at=now,
                updated_at=now,
            )
            session.add(ev)
            ids[uid] = ev.id
        await session.commit()
    return ids


async def _uids(api: httpx.AsyncClient, prefix: str) -> set[str | None]:
    r = await api.get("/api/v2/calendar-events/", params={"ical_uid": prefix})
    assert r.status_code == 200, r.text
    return {e["ical_uid"] for e in r.json()["results"]}


async def test_ical_uid_is_a_case_sensitive_prefix_filter(
    api: httpx.AsyncClient, runtime: Any, tenant: Any
) -> None:
    await _seed(runtime, tenant.tenant_id)
    assert await _uids(api, "abc123@google.com") == {"abc123@google.com"}
    assert await _uids(api, "Abc") == {"Abc123@google.com"}
    assert await _uids(api, "abc12") == {"abc123@google.com", "abc124@google.com"}
    # LIKE's wildcards are plain characters here.
    assert await _uids(api, "abc%") == {"abc%x@google.com"}
    assert await _uids(api, "abc_") == {"abc_x@google.com"}
    assert await _uids(api, "äb") == {"äbc@example.com"}
    assert await _uids(api, "ABC") == set()
    assert await _uids(api, "abc123@google.com.") == set()


async def test_ical_uid_filter_stays_within_the_callers_tenant(
    api: httpx.AsyncClient, runtime: Any, tenant: Any
) -> None:
    from showup.tenants import create_tenant

    async with runtime.sessions() as session:
        other = await create_tenant(session, runtime.clock, "Other")
        await session.commit()
    await _seed(runtime, other.tenant_id)
    assert await _uids(api, "abc") == set()
    ours = await _seed(runtime, tenant.tenant_id)
    r = await api.get("/api/v2/calendar-events/", params={"ical_uid": "abc123"})
    assert [e["id"] for e in r.json()["results"]] == [ours["abc123@google.com"]]
