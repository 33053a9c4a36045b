"""Microsoft Graph v1.0 routes (PROTOCOLS §2.2 to §2.5), mounted at ``/graph/v1.0``.

Every call needs a live Bearer access token of a Microsoft client (§2.1); "me" is the
grant's user and only her calendars exist for her. Collections page with
``@odata.nextLink`` whole URLs; ``calendarView/delta`` is in :mod:`.delta`,
subscriptions in :mod:`.subscriptions`. Path segments are matched in the two spellings
clients use (``calendarView`` and ``calendarview``).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from showup.emulator.events import Calendar
from showup.emulator.graph import ids
from showup.emulator.graph import serialize as ser
from showup.emulator.graph.delta import (
    DeltaEngine,
    Range,
    max_page_size,
    parse_range,
    preferences,
    view_of,
)
from showup.emulator.graph.errors import GraphError, error_response
from showup.emulator.graph.subscriptions import Subscription, hub_for
from showup.emulator.model import NotFound
from showup.emulator.world import AccessGrant, AuthError, World

Handler = Callable[[Request], Awaitable[Response]]
Endpoint = Callable[[Request, AccessGrant], Awaitable[Response]]
_CHALLENGE = (
    'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/'
    'authorize", client_id="00000003-0000-0000-c000-000000000000"'
)


def root_url(request: Request) -> str:
    """The service root (``…/graph/v1.0``) as the client addressed it."""
    full = str(request.url.replace(query=""))
    tail = request.scope["path"][len(request.scope.get("root_path", "")) :]
    return full[: len(full) - len(tail)] if tail and full.endswith(tail) else full


def _json(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw) if raw.strip() else {}
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise GraphError(400, "BadRequest", "Unable to read JSON request payload.")
    return body


def calendar_json(world: World, cal: Calendar) -> dict[str, Any]:
    user = world.users[cal.owner]
    return {
        "id": ids.calendar_id(cal.id),
        "name": "Calendar" if cal.primary else cal.summary,
        "color": "auto",
        "hexColor": "",
        "isDefaultCalendar": cal.primary,
        "changeKey": ser.change_key(cal, cal.id, 0),
        "canShare": True,
        "canViewPrivateItems": True,
        "canEdit": True,
        "allowedOnlineMeetingProviders": ["teamsForBusiness"],
        "defaultOnlineMeetingProvider": "teamsForBusiness",
        "isTallyingResponses": True,
        "isRemovable": not cal.primary,
        "owner": {"name": user.name or user.email, "address": user.email},
    }


def routes(world: World) -> list[BaseRoute]:
    engine = DeltaEngine(world)
    hub = hub_for(world)

    def guarded(fn: Endpoint) -> Handler:
        async def handler(request: Request) -> Response:
            try:
                header = request.headers.get("authorization", "")
                token = header[7:].strip() if header.lower().startswith("bearer ") else ""
                if not token:
                    raise AuthError("missing")
                access = world.authenticate(token)
                if access.grant.provider != "microsoft":
                    raise AuthError("not a Microsoft token")
                hub.check()
                return await fn(request, access)
            except AuthError:
                exc = GraphError(
                    401,
                    "InvalidAuthenticationToken",
                    "Access token has expired or is not yet valid.",
                    {"WWW-Authenticate": _CHALLENGE},
                )
                return error_response(exc, world.clock.now())
            except NotFound:
                exc = GraphError(
                    404, "ErrorItemNotFound", "The specified object was not found in the store."
                )
                return error_response(exc, world.clock.now())
            except GraphError as exc:
                return error_response(exc, world.clock.now())

        return handler

    def calendar_of(request: Request, access: AccessGrant) -> Calendar:
        raw = request.path_params.get("calendar_id")
        if raw is None:
            return world.calendar(access.grant.email)
        cal_id = ids.parse_calendar_id(raw)
        if cal_id is None:
            raise NotFound(raw)
        return world.calendar(access.grant.email, cal_id)

    def paged(request: Request, items: list[dict[str, Any]], context: str) -> JSONResponse:
        """``$top``/``$skip`` paging (or ``Prefer: odata.maxpagesize``) for plain lists."""
        params = request.query_params
        try:
            top = int(params.get("$top", "0"))
            skip = int(params.get("$skip", "0"))
        except ValueError:
            raise GraphError(400, "BadRequest", "Invalid $top or $skip.") from None
        prefs = preferences(request.headers.getlist("prefer"))
        size = top or max_page_size(prefs) or world.settings.graph_page_size
        size = max(1, min(size, 1000))
        root = root_url(request)
        body: dict[str, Any] = {
            "@odata.context": f"{root}/$metadata#{context}",
            "value": items[skip : skip + size],
        }
        if skip + size < len(items):
            query = {k: v for k, v in params.items() if k != "$skip"}
            query["$skip"] = str(skip + size)
            encoded = "&".join(f"{k}={quote(v, safe=':$')}" for k, v in query.items())
            body["@odata.nextLink"] = f"{request.url.replace(query='')}?{encoded}"
        return JSONResponse(body)

    async def me(request: Request, access: AccessGrant) -> Response:
        user = world.user(access.grant.email)
        return JSONResponse(
            {
                "@odata.context": f"{root_url(request)}/$metadata#users/$entity",
                "id": ids.user_id(user.email),
                "displayName": user.name or user.email,
                "mail": user.email,
                "userPrincipalName": user.email,
            }
        )

    async def calendars(request: Request, access: AccessGrant) -> Response:
        with world.lock:
            user = world.user(access.grant.email)
            items = [calendar_json(world, world.calendars[c]) for c in user.calendars]
        return paged(request, items, "users('me')/calendars")

    async def calendar(request: Request, access: AccessGrant) -> Response:
        with world.lock:
            return JSONResponse(calendar_json(world, calendar_of(request, access)))

    async def delta(request: Request, access: AccessGrant) -> Response:
        cal = calendar_of(request, access)
        params = {k.lower(): v for k, v in request.query_params.items()}
        prefs = preferences(request.headers.getlist("prefer"))
        url = str(request.url.replace(query=""))
        body = engine.page(cal, params, prefs, url)
        applied = ["odata.track-changes"]
        if max_page_size(prefs) is not None:
            applied.append(f"odata.maxpagesize={max_page_size(prefs)}")
        if "outlook.timezone" in prefs:
            applied.append(f'outlook.timezone="{prefs["outlook.timezone"]}"')
        context = {"@odata.context": f"{root_url(request)}/$metadata#Collection(event)"}
        return JSONResponse({**context, **body}, headers={"Preference-Applied": ", ".join(applied)})

    def _expanded(
        cal: Calendar, rng: Range, view: ser.View, only: str | None
    ) -> list[dict[str, Any]]:
        keep = world.settings.graph_attendee_cancellations
        rows: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
        for entry in cal.entries.values():
            core = entry.core
            if only is not None and core.id != only:
                continue
            if not core.is_series:
                if ser.state(cal, entry, None, keep) != "gone" and rng.overlaps(
                    core.start_utc(), core.end_utc()
                ):
                    rows.append(
                        ((core.start_utc(), core.id, ""), ser.render(cal, entry, None, view))
                    )
                continue
            for occ in core.windowed(rng.end):
                if rng.overlaps(occ.start_utc, occ.end_utc) and (
                    ser.state(cal, entry, occ, keep) != "gone"
                ):
                    item = ser.render(cal, entry, occ, view)
                    rows.append(((occ.start_utc, core.id, occ.instance_id), item))
        rows.sort(key=lambda r: r[0])
        return [r[1] for r in rows]

    async def calendar_view(request: Request, access: AccessGrant) -> Response:
        cal = calendar_of(request, access)
        params = {k.lower(): v for k, v in request.query_params.items()}
        rng = parse_range(params)
        view = view_of(preferences(request.headers.getlist("prefer")))
        with world.lock:
            items = _expanded(cal, rng, view, None)
        return paged(request, items, "Collection(event)")

    async def events(request: Request, access: AccessGrant) -> Response:
        """Single instances and series masters, not expanded (§2.2 ``GET /me/events``)."""
        cal = calendar_of(request, access)
        view = view_of(preferences(request.headers.getlist("prefer")))
        keep = world.settings.graph_attendee_cancellations
        with world.lock:
            rows = [
                (entry.core.start_utc(), entry.core.id, ser.render(cal, entry, None, view))
                for entry in cal.entries.values()
                if ser.state(cal, entry, None, keep) != "gone"
            ]
        rows.sort(key=lambda r: (r[0], r[1]))
        return paged(request, [r[2] for r in rows], "Collection(event)")

    def _owned(access: AccessGrant, event_id: str) -> tuple[Calendar, str]:
        parsed = ids.parse_event_id(event_id)
        if parsed is None:
            raise NotFound(event_id)
        return world.calendar(access.grant.email, parsed[0]), parsed[1]

    async def event(request: Request, access: AccessGrant) -> Response:
        view = view_of(preferences(request.headers.getlist("prefer")))
        keep = world.settings.graph_attendee_cancellations
        with world.lock:
            cal, world_id = _owned(access, request.path_params["event_id"])
            entry, occ = world._target(cal, world_id)
            if ser.state(cal, entry, occ, keep) == "gone":
                raise NotFound(world_id)
            return JSONResponse(ser.render(cal, entry, occ, view))

    async def instances(request: Request, access: AccessGrant) -> Response:
        params = {k.lower(): v for k, v in request.query_params.items()}
        rng = parse_range(params)
        view = view_of(preferences(request.headers.getlist("prefer")))
        with world.lock:
            cal, world_id = _owned(access, request.path_params["event_id"])
            entry = cal.entries.get(world_id)
            if entry is None or not entry.core.is_series:
                raise NotFound(world_id)
            items = _expanded(cal, rng, view, world_id)
        return paged(request, items, "Collection(event)")

    def subscription_json(request: Request, sub: Subscription) -> dict[str, Any]:
        return sub.as_json(root_url(request))

    async def subscribe(request: Request, access: AccessGrant) -> Response:
        sub = await hub.create(access, _json(await request.body()))
        return JSONResponse(subscription_json(request, sub), status_code=201)

    async def subscriptions(request: Request, access: AccessGrant) -> Response:
        items = [subscription_json(request, s) for s in hub.mine(access)]
        root = root_url(request)
        return JSONResponse({"@odata.context": f"{root}/$metadata#subscriptions", "value": items})

    async def subscription(request: Request, access: AccessGrant) -> Response:
        sub_id = request.path_params["sub_id"]
        if request.method == "DELETE":
            hub.delete(access, sub_id)
            return Response(status_code=204)
        if request.method == "PATCH":
            sub = hub.renew(access, sub_id, _json(await request.body()))
        else:
            sub = hub.get(access, sub_id)
        return JSONResponse(subscription_json(request, sub))

    async def reauthorize(request: Request, access: AccessGrant) -> Response:
        hub.reauthorize(access, request.path_params["sub_id"])
        return Response(status_code=200)

    table: list[tuple[str, Endpoint, list[str]]] = [
        ("/me", me, ["GET"]),
        ("/me/calendars", calendars, ["GET"]),
        ("/me/calendar", calendar, ["GET"]),
        ("/me/calendars/{calendar_id}", calendar, ["GET"]),
        ("/me/events", events, ["GET"]),
        ("/me/calendar/events", events, ["GET"]),
        ("/me/calendars/{calendar_id}/events", events, ["GET"]),
        ("/me/events/{event_id}", event, ["GET"]),
        ("/me/events/{event_id}/instances", instances, ["GET"]),
        ("/subscriptions", subscribe, ["POST"]),
        ("/subscriptions", subscriptions, ["GET"]),
        ("/subscriptions/{sub_id}", subscription, ["GET", "PATCH", "DELETE"]),
        ("/subscriptions/{sub_id}/reauthorize", reauthorize, ["POST"]),
    ]
    for spelling in ("calendarView", "calendarview"):
        for prefix in ("/me", "/me/calendar", "/me/calendars/{calendar_id}"):
            table.append((f"{prefix}/{spelling}/delta", delta, ["GET"]))
            table.append((f"{prefix}/{spelling}", calendar_view, ["GET"]))
    return [Route(path, guarded(fn), methods=methods) for path, fn, methods in table]
