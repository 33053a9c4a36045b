"""``/api/v2/calendars/``: Recall Calendar V2 compatible (PEERS §1a/b), plus our additions."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, BackgroundTasks, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select

from showup.api.deps import CallerDep, RuntimeDep, SessionDep, public_base
from showup.api.errors import ApiError, bad_request, not_found
from showup.api.pagination import page_url, paginate
from showup.api.serializers import calendar_json
from showup.calendars import service
from showup.clock import utc
from showup.db.models import Calendar
from showup.runtime import Runtime
from showup.security.url_guard import UrlPolicy, UrlRejected, check_url_syntax

router = APIRouter(prefix="/api/v2/calendars", tags=["calendars"])

Secret = Annotated[str, Field(min_length=1, max_length=4096)]
Ident = Annotated[str, Field(min_length=1, max_length=512)]
# Microsoft identity platform tenant (PROTOCOLS §2.1): common, organizations, consumers, a
# tenant GUID or a verified domain. It becomes a URL path segment, so nothing else is let in.
TenantId = Annotated[
    str, Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9][A-Za-z0-9.\-]*$")
]
DEFAULT_MICROSOFT_TENANT = "common"


class CalendarCreate(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    platform: Literal["google_calendar", "microsoft_outlook"]
    oauth_client_id: Ident
    oauth_client_secret: Secret
    oauth_refresh_token: Secret
    oauth_email: str | None = Field(default=None, max_length=320)
    oauth_tenant_id: TenantId | None = None
    external_user_id: str | None = Field(default=None, min_length=1, max_length=255)
    platform_calendar_id: str = Field(default="primary", min_length=1, max_length=1024)
    webhook_url: str | None = Field(default=None, max_length=2048)


class CalendarUpdate(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    platform: Literal["google_calendar", "microsoft_outlook"] | None = None
    oauth_client_id: Ident | None = None
    oauth_client_secret: Secret | None = None
    oauth_refresh_token: Secret | None = None
    oauth_email: str | None = Field(default=None, max_length=320)
    oauth_tenant_id: TenantId | None = None
    external_user_id: str | None = Field(default=None, min_length=1, max_length=255)
    webhook_url: str | None = Field(default=None, max_length=2048)

    @field_validator("webhook_url")
    @classmethod
    def _empty_is_none(cls, v: str | None) -> str | None:
        return v or None


def _check_webhook_url(runtime: RuntimeDep, url: str | None) -> None:
    if url is None:
        return
    policy = UrlPolicy(
        allow_http_loopback=runtime.settings.allow_http_loopback_webhooks,
        allow_private=runtime.settings.allow_private_webhook_targets,
    )
    try:
        check_url_syntax(url, policy)
    except UrlRejected as exc:
        raise ApiError(
            400, exc.code, str(exc), [{"field": "webhook_url", "message": str(exc)}]
        ) from None


def _check_platform(platform: str) -> None:
    if platform not in service.SUPPORTED_PLATFORMS:
        raise bad_request(
            "platform_not_supported",
            f"Platform {platform!r} is not supported by this server yet.",
            "platform",
        )


@router.post("/", status_code=201)
async def create_calendar(
    body: CalendarCreate,
    caller: CallerDep,
    session: SessionDep,
    runtime: RuntimeDep,
    background: BackgroundTasks,
) -> dict[str, Any]:
    _check_platform(body.platform)
    _check_webhook_url(runtime, body.webhook_url)
    cal = await service.create_calendar(
        session,
        runtime.clock,
        runtime.vault,
        caller.tenant_id,
        service.NewCalendar(
            platform=body.platform,
            oauth_client_id=body.oauth_client_id,
            oauth_client_secret=body.oauth_client_secret,
            oauth_refresh_token=body.oauth_refresh_token,
            external_user_id=body.external_user_id,
            platform_calendar_id=body.platform_calendar_id,
            oauth_tenant_id=body.oauth_tenant_id
            or (DEFAULT_MICROSOFT_TENANT if body.platform == "microsoft_outlook" else None),
            webhook_url=body.webhook_url,
        ),
    )
    await session.commit()
    # Runs after the response is sent: the client has the id before any webhook names it.
    background.add_task(_release_first_sync, runtime, cal.id)
    return calendar_json(cal)


async def _release_first_sync(runtime: Runtime, calendar_id: str) -> None:
    async with runtime.sessions() as session:
        await service.release_first_sync(session, calendar_id, runtime.clock.now())
        await session.commit()
    runtime.notifier.notify()


@router.get("/")
async def list_calendars(
    request: Request,
    caller: CallerDep,
    session: SessionDep,
    runtime: RuntimeDep,
    status: Literal["connecting", "connected", "disconnected"] | None = None,
    platform: Literal["google_calendar", "microsoft_outlook"] | None = None,
    email: Annotated[str | None, Query(max_length=320)] = None,
    external_user_id: Annotated[str | None, Query(max_length=255)] = None,
    created_at__gte: datetime | None = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    page_size: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    q = select(Calendar).where(Calendar.tenant_id == caller.tenant_id)
    if status:
        q = q.where(Calendar.status == status)
    if platform:
        q = q.where(Calendar.platform == platform)
    if email:
        q = q.where(Calendar.platform_email == email.lower())
    if external_user_id:
        q = q.where(Calendar.external_user_id == external_user_id)
    if created_at__gte:
        q = q.where(Calendar.created_at >= utc(created_at__gte))
    page = await paginate(
        session,
        q,
        time_col=Calendar.created_at,
        id_col=Calendar.id,
        key_of=lambda c: (c.created_at, c.id),
        cursor=cursor,
        page_size=page_size,
    )
    base = public_base(request, runtime) + request.url.path
    params = dict(request.query_params)
    return {
        "next": page_url(base, params, page.next_cursor),
        "previous": page_url(base, params, page.previous_cursor),
        "results": [calendar_json(c) for c in page.results],
    }


async def _load(session: SessionDep, caller: CallerDep, calendar_id: str) -> Calendar:
    cal = await service.get_calendar(session, caller.tenant_id, calendar_id)
    if cal is None:
        raise not_found("calendar")
    return cal


@router.get("/{calendar_id}/")
async def get_calendar(calendar_id: str, caller: CallerDep, session: SessionDep) -> dict[str, Any]:
    return calendar_json(await _load(session, caller, calendar_id))


@router.patch("/{calendar_id}/")
async def update_calendar(
    calendar_id: str,
    body: CalendarUpdate,
    caller: CallerDep,
    session: SessionDep,
    runtime: RuntimeDep,
) -> dict[str, Any]:
    cal = await _load(session, caller, calendar_id)
    fields = body.model_fields_set
    if body.platform is not None and body.platform != cal.platform:
        raise bad_request(
            "platform_change_not_supported",
            "A calendar cannot change platform; create a new calendar instead.",
            "platform",
        )
    if "webhook_url" in fields:
        _check_webhook_url(runtime, body.webhook_url)
        cal.webhook_url = body.webhook_url
    if "external_user_id" in fields and body.external_user_id is not None:
        cal.external_user_id = body.external_user_id
    if "oauth_tenant_id" in fields:
        cal.oauth_tenant_id = body.oauth_tenant_id
    new_creds = any(
        v is not None
        for v in (body.oauth_client_id, body.oauth_client_secret, body.oauth_refresh_token)
    )
    if new_creds:
        service.set_credentials(
            cal,
            runtime.vault,
            client_id=body.oauth_client_id,
            client_secret=body.oauth_client_secret,
            refresh_token=body.oauth_refresh_token,
        )
        if cal.status == "disconnected" or cal.last_error:
            was = cal.status
            service.reconnect(cal, runtime.clock)
            if cal.status != was:
                await service.status_changed(
                    session, cal, now=runtime.clock.now(), settings=runtime.settings
                )
        else:
            cal.next_sync_at = runtime.clock.now()
    cal.updated_at = runtime.clock.now()
    await session.commit()
    if new_creds:
        runtime.notifier.notify()
    return calendar_json(cal)


@router.delete("/{calendar_id}/", status_code=204)
async def delete_calendar(
    calendar_id: str, caller: CallerDep, session: SessionDep, runtime: RuntimeDep
) -> Response:
    cal = await _load(session, caller, calendar_id)
    await service.delete_calendar(session, cal, now=runtime.clock.now(), settings=runtime.settings)
    await session.commit()
    return Response(status_code=204)
