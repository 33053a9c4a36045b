"""Bots: Recall's ``POST/DELETE /api/v2/calendar-events/{id}/bot/`` (PEERS §1c), plus
``/api/v2/bots/`` (list, get, PATCH, DELETE) and ``/api/v2/tenant/settings/``.

Handlers are thin: parse, call a ``bots`` service with the session, commit, answer. A
refused request (``BotError``) writes nothing. A unique-index conflict with a concurrent
request (two POSTs of one meeting racing) is retried from the start, so the loser sees
the winner's bot and attaches to it instead of failing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from showup.api.deps import CallerDep, RuntimeDep, SessionDep, public_base
from showup.api.errors import ApiError, not_found
from showup.api.pagination import page_url, paginate
from showup.api.serializers import event_json
from showup.bots import manage, schedule
from showup.bots.bot_config import parse_bot_config, parse_join_at
from showup.bots.errors import BotError
from showup.bots.policy import BotPolicy
from showup.bots.queries import bots_for_events, event_ids_of
from showup.bots.serialize import bot_json
from showup.clock import utc
from showup.db.bot_models import Bot, BotEvent
from showup.db.models import Calendar, Event

router = APIRouter(tags=["bots"])

_ATTEMPTS = 3


class ScheduleBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    deduplication_key: str = Field(min_length=1, max_length=1024)
    bot_config: dict[str, Any]


class BotPatch(BaseModel):
    model_config = ConfigDict(extra="ignore")

    join_at: str | None = Field(default=None, max_length=64)
    bot_config: dict[str, Any] | None = None


class TenantSettingsPatch(BaseModel):
    model_config = ConfigDict(extra="ignore")

    bot_lead_time_seconds: int | None = Field(default=None, ge=0, le=3600)


def _api_error(exc: BotError) -> ApiError:
    errors = [{"field": exc.field, "message": exc.detail}] if exc.field else None
    return ApiError(exc.status, exc.code, exc.detail, errors)


async def _commit(session: AsyncSession, work: Callable[[], Awaitable[object]]) -> None:
    """Run ``work`` and commit; on a unique conflict with a concurrent writer, start over
    (the winner is committed by then, so the retry sees and joins it)."""
    for attempt in range(_ATTEMPTS):
        try:
            await work()
            await session.commit()
            return
        except BotError as exc:
            await session.rollback()
            raise _api_error(exc) from None
        except IntegrityError:
            await session.rollback()
            if attempt == _ATTEMPTS - 1:
                raise ApiError(
                    409, "conflict", "A concurrent change got in the way; retry."
                ) from None


async def _event_json(session: AsyncSession, tenant_id: str, event_id: str) -> dict[str, Any]:
    row = (
        await session.execute(
            select(Event, Calendar.platform)
            .join(Calendar, Calendar.id == Event.calendar_id)
            .where(Event.id == event_id, Event.tenant_id == tenant_id)
            .execution_options(populate_existing=True)
        )
    ).first()
    if row is None:
        raise not_found("calendar event")
    ev, platform = row
    bots = await bots_for_events(session, tenant_id, [ev.id])
    return event_json(ev, platform, bots.get(ev.id))


async def _bot_json(session: AsyncSession, bot: Bot) -> dict[str, Any]:
    await session.refresh(bot)
    events = await event_ids_of(session, [bot.id])
    return bot_json(bot, events[bot.id])


@router.post("/api/v2/calendar-events/{event_id}/bot/")
async def schedule_bot(
    event_id: str, body: ScheduleBody, caller: CallerDep, session: SessionDep, runtime: RuntimeDep
) -> dict[str, Any]:
    try:
        config = parse_bot_config(body.bot_config)
    except BotError as exc:
        raise _api_error(exc) from None
    policy = BotPolicy.from_settings(runtime.settings)

    async def work() -> None:
        await schedule.schedule_event_bot(
            session,
            tenant_id=caller.tenant_id,
            event_id=event_id,
            deduplication_key=body.deduplication_key,
            config=config,
            now=runtime.clock.now(),
            policy=policy,
        )

    await _commit(session, work)
    runtime.notifier.notify()
    return await _event_json(session, caller.tenant_id, event_id)


@router.delete("/api/v2/calendar-events/{event_id}/bot/")
async def unschedule_bot(
    event_id: str, caller: CallerDep, session: SessionDep, runtime: RuntimeDep
) -> dict[str, Any]:
    policy = BotPolicy.from_settings(runtime.settings)

    async def work() -> None:
        await schedule.unschedule_event_bot(
            session,
            tenant_id=caller.tenant_id,
            event_id=event_id,
            now=runtime.clock.now(),
            policy=policy,
        )

    await _commit(session, work)
    runtime.notifier.notify()
    return await _event_json(session, caller.tenant_id, event_id)


BotStatus = Literal["scheduled", "dispatching", "dispatched", "failed", "cancelled"]


@router.get("/api/v2/bots/")
async def list_bots(
    request: Request,
    caller: CallerDep,
    session: SessionDep,
    runtime: RuntimeDep,
    status: BotStatus | None = None,
    calendar_id: Annotated[str | None, Query(max_length=64)] = None,
    external_user_id: Annotated[str | None, Query(max_length=255)] = None,
    deduplication_key: Annotated[str | None, Query(max_length=1024)] = None,
    join_at__gte: datetime | None = None,
    join_at__lte: datetime | None = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    page_size: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    tenant = caller.tenant_id
    q = select(Bot).where(Bot.tenant_id == tenant)
    if status:
        q = q.where(Bot.status == status)
    if deduplication_key:
        q = q.where(Bot.deduplication_key == deduplication_key)
    if join_at__gte:
        q = q.where(Bot.join_at >= utc(join_at__gte))
    if join_at__lte:
        q = q.where(Bot.join_at <= utc(join_at__lte))
    linked = select(BotEvent.bot_id).where(
        BotEvent.tenant_id == tenant, BotEvent.state != "removed"
    )
    if calendar_id:
        q = q.where(Bot.id.in_(linked.where(BotEvent.calendar_id == calendar_id)))
    if external_user_id:
        users = select(Calendar.id).where(
            Calendar.tenant_id == tenant, Calendar.external_user_id == external_user_id
        )
        q = q.where(Bot.id.in_(linked.where(BotEvent.calendar_id.in_(users))))
    # created_at never changes, so a walk through the pages never skips a bot.
    page = await paginate(
        session,
        q,
        time_col=Bot.created_at,
        id_col=Bot.id,
        key_of=lambda b: (b.created_at, b.id),
        cursor=cursor,
        page_size=page_size,
    )
    events = await event_ids_of(session, [b.id for b in page.results])
    base = public_base(request, runtime) + request.url.path
    params = dict(request.query_params)
    return {
        "next": page_url(base, params, page.next_cursor),
        "previous": page_url(base, params, page.previous_cursor),
        "results": [bot_json(b, events[b.id]) for b in page.results],
    }


async def _load(session: AsyncSession, tenant_id: str, bot_id: str) -> Bot:
    bot = await session.scalar(select(Bot).where(Bot.id == bot_id, Bot.tenant_id == tenant_id))
    if bot is None:
        raise not_found("bot")
    return bot


@router.get("/api/v2/bots/{bot_id}/")
async def get_bot(bot_id: str, caller: CallerDep, session: SessionDep) -> dict[str, Any]:
    return await _bot_json(session, await _load(session, caller.tenant_id, bot_id))


@router.patch("/api/v2/bots/{bot_id}/")
async def patch_bot(
    bot_id: str, body: BotPatch, caller: CallerDep, session: SessionDep, runtime: RuntimeDep
) -> dict[str, Any]:
    try:
        join_at: datetime | None = manage.UNSET
        if "join_at" in body.model_fields_set:
            join_at = parse_join_at(body.join_at, "join_at")
        config = parse_bot_config(body.bot_config) if body.bot_config is not None else None
    except BotError as exc:
        raise _api_error(exc) from None
    policy = BotPolicy.from_settings(runtime.settings)

    async def work() -> None:
        await manage.patch_bot(
            session,
            tenant_id=caller.tenant_id,
            bot_id=bot_id,
            join_at=join_at,
            config=config,
            now=runtime.clock.now(),
            policy=policy,
        )

    await _commit(session, work)
    runtime.notifier.notify()
    return await _bot_json(session, await _load(session, caller.tenant_id, bot_id))


@router.delete("/api/v2/bots/{bot_id}/")
async def delete_bot(
    bot_id: str, caller: CallerDep, session: SessionDep, runtime: RuntimeDep
) -> dict[str, Any]:
    policy = BotPolicy.from_settings(runtime.settings)

    async def work() -> None:
        await manage.cancel_bot(
            session,
            tenant_id=caller.tenant_id,
            bot_id=bot_id,
            now=runtime.clock.now(),
            policy=policy,
        )

    await _commit(session, work)
    return await _bot_json(session, await _load(session, caller.tenant_id, bot_id))


def _settings_json(defaults: manage.TenantBotDefaults) -> dict[str, Any]:
    return {
        "bot_lead_time_seconds": defaults.bot_lead_time_seconds,
        "bot_lead_time_is_default": defaults.is_default,
    }


@router.get("/api/v2/tenant/settings/")
async def get_tenant_settings(
    caller: CallerDep, session: SessionDep, runtime: RuntimeDep
) -> dict[str, Any]:
    policy = BotPolicy.from_settings(runtime.settings)
    return _settings_json(await manage.get_tenant_settings(session, caller.tenant_id, policy))


@router.patch("/api/v2/tenant/settings/")
async def patch_tenant_settings(
    body: TenantSettingsPatch, caller: CallerDep, session: SessionDep, runtime: RuntimeDep
) -> dict[str, Any]:
    policy = BotPolicy.from_settings(runtime.settings)
    if "bot_lead_time_seconds" in body.model_fields_set:

        async def work() -> None:
            await manage.set_tenant_lead(
                session,
                tenant_id=caller.tenant_id,
                seconds=body.bot_lead_time_seconds,
                now=runtime.clock.now(),
                policy=policy,
            )

        await _commit(session, work)
        runtime.notifier.notify()
    return _settings_json(await manage.get_tenant_settings(session, caller.tenant_id, policy))
