"""``/api/v2/calendar-events/``: Recall Calendar V2 compatible (PEERS §1a/b).

Deleted events are listed (``is_deleted: true``) unless filtered out, so a client polling
``updated_at__gte`` sees deletions as updates.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from sqlalchemy import func, select

from showup.api.deps import CallerDep, RuntimeDep, SessionDep, public_base
from showup.api.errors import not_found
from showup.api.pagination import page_url, paginate
from showup.api.serializers import event_json
from showup.bots.queries import bots_for_events
from showup.clock import utc
from showup.db.models import Calendar, Event

router = APIRouter(prefix="/api/v2/calendar-events", tags=["calendar-events"])


@router.get("/")
async def list_events(
    request: Request,
    caller: CallerDep,
    session: SessionDep,
    runtime: RuntimeDep,
    calendar_id: Annotated[str | None, Query(max_length=64)] = None,
    updated_at__gte: datetime | None = None,
    start_time: datetime | None = None,
    start_time__gte: datetime | None = None,
    start_time__lte: datetime | None = None,
    is_deleted: bool | None = None,
    ical_uid: Annotated[str | None, Query(max_length=1024)] = None,
    external_user_id: Annotated[str | None, Query(max_length=255)] = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    page_size: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    q = select(Event).where(Event.tenant_id == caller.tenant_id)
    if calendar_id:
        q = q.where(Event.calendar_id == calendar_id)
    if updated_at__gte:
        q = q.where(Event.updated_at >= utc(updated_at__gte))
    if start_time:
        q = q.where(Event.start_time == utc(start_time))
    if start_time__gte:
        q = q.where(Event.start_time >= utc(start_time__gte))
    if start_time__lte:
        q = q.where(Event.start_time <= utc(start_time__lte))
    if is_deleted is not None:
        q = q.where(Event.is_deleted.is_(is_deleted))
    if ical_uid:
        # Recall documents ical_uid as a case-sensitive prefix filter. Not LIKE: SQLite's
        # is case-insensitive. substr() counts characters on both databases, as len() does.
        q = q.where(func.substr(Event.ical_uid, 1, len(ical_uid)) == ical_uid)
    if external_user_id:
        q = q.where(
            Event.calendar_id.in_(
                select(Calendar.id).where(
                    Calendar.tenant_id == caller.tenant_id,
                    Calendar.external_user_id == external_user_id,
                )
            )
        )
    page = await paginate(
        session,
        q,
        time_col=Event.updated_at,
        id_col=Event.id,
        key_of=lambda e: (e.updated_at, e.id),
        cursor=cursor,
        page_size=page_size,
    )
    platforms = await _platforms(session, caller.tenant_id, {e.calendar_id for e in page.results})
    bots = await bots_for_events(session, caller.tenant_id, [e.id for e in page.results])
    base = public_base(request, runtime) + request.url.path
    params = dict(request.query_params)
    return {
        "next": page_url(base, params, page.next_cursor),
        "previous": page_url(base, params, page.previous_cursor),
        "results": [event_json(e, platforms[e.calendar_id], bots.get(e.id)) for e in page.results],
    }


async def _platforms(session: SessionDep, tenant_id: str, ids: set[str]) -> dict[str, str]:
    if not ids:
        return {}
    rows = await session.execute(
        select(Calendar.id, Calendar.platform).where(
            Calendar.tenant_id == tenant_id, Calendar.id.in_(ids)
        )
    )
    return {cid: platform for cid, platform in rows}


@router.get("/{event_id}/")
async def get_event(event_id: str, caller: CallerDep, session: SessionDep) -> dict[str, Any]:
    row = (
        await session.execute(
            select(Event, Calendar.platform)
            .join(Calendar, Calendar.id == Event.calendar_id)
            .where(Event.id == event_id, Event.tenant_id == caller.tenant_id)
        )
    ).first()
    if row is None:
        raise not_found("calendar event")
    ev, platform = row
    bots = await bots_for_events(session, caller.tenant_id, [ev.id])
    return event_json(ev, platform, bots.get(ev.id))
