"""Calendar API v3 routes (PROTOCOLS §1.2 to §1.5), mounted at ``/calendar/v3``.

Every call needs a live Bearer access token from ``/token``; "me" is the grant's user,
and only her own calendars exist for her (no sharing ACLs: others' calendars are 404).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from showup.emulator.events import Calendar
from showup.emulator.google import serialize as ser
from showup.emulator.google.errors import GoogleError, error_response
from showup.emulator.google.listing import EventLister, parse_query
from showup.emulator.google.push import hub_for
from showup.emulator.model import NotFound
from showup.emulator.world import AuthError, User, World

Handler = Callable[[Request], Awaitable[Response]]


def _calendar_entry(cal: Calendar) -> dict[str, Any]:
    """A calendarList entry (§1.4)."""
    out: dict[str, Any] = {
        "kind": "calendar#calendarListEntry",
        "etag": f'"{cal.last_seq}"',
        "id": cal.id,
        "summary": cal.summary,
        "timeZone": cal.time_zone,
        "colorId": "14",
        "backgroundColor": "#9fe1e7",
        "foregroundColor": "#000000",
        "selected": True,
        "accessRole": "owner",
        "defaultReminders": [],
        "conferenceProperties": {"allowedConferenceSolutionTypes": ["hangoutsMeet"]},
    }
    if cal.description:
        out["description"] = cal.description
    if cal.primary:
        out["primary"] = True
    return out


def _calendar_resource(cal: Calendar) -> dict[str, Any]:
    return {
        "kind": "calendar#calendar",
        "etag": f'"{cal.last_seq}"',
        "id": cal.id,
        "summary": cal.summary,
        "timeZone": cal.time_zone,
        "conferenceProperties": {"allowedConferenceSolutionTypes": ["hangoutsMeet"]},
    }


def _json_body(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw) if raw.strip() else {}
    except ValueError:
        raise GoogleError(400, "Parse Error", "parseError") from None
    if not isinstance(body, dict):
        raise GoogleError(400, "Parse Error", "parseError")
    return body


def routes(world: World) -> list[BaseRoute]:
    lister = EventLister(world)

    def guarded(fn: Callable[[Request, User], Response]) -> Handler:
        async def handler(request: Request) -> Response:
            header = request.headers.get("authorization", "")
            token = header[7:].strip() if header.lower().startswith("bearer ") else None
            token = token or request.query_params.get("access_token")
            try:
                if not token:
                    raise AuthError("missing")
                access = world.authenticate(token)
                request.state.access = access
                if request.method == "POST":
                    request.state.json = _json_body(await request.body())
                return fn(request, world.user(access.grant.email))
            except AuthError:
                exc = GoogleError(401, "Invalid Credentials", "authError", location="Authorization")
                exc.location_type = "header"
                challenge = 'Bearer realm="https://accounts.google.com/", error="invalid_token"'
                return error_response(exc, {"WWW-Authenticate": challenge})
            except NotFound:
                return error_response(GoogleError(404, "Not Found", "notFound"))
            except GoogleError as exc:
                return error_response(exc)

        return handler

    def calendar_of(request: Request, user: User) -> Calendar:
        return world.calendar(user.email, request.path_params["calendar_id"])

    def calendar_list(request: Request, user: User) -> Response:
        params = request.query_params
        if params.get("syncToken") and params.get("minAccessRole"):
            raise GoogleError(
                400,
                "minAccessRole is not allowed with syncToken.",
                "invalid",
                location="minAccessRole",
            )
        with world.lock:
            entries = [_calendar_entry(world.calendars[c]) for c in user.calendars]
        try:
            size = min(int(params.get("maxResults", "100")), 250)
            offset = int(params.get("pageToken", "0") or "0")
        except ValueError:
            raise GoogleError(400, "Invalid value.", "invalid") from None
        body: dict[str, Any] = {
            "kind": "calendar#calendarList",
            "etag": f'"{world.seq}"',
            "items": entries[offset : offset + size],
        }
        if offset + size < len(entries):
            body["nextPageToken"] = str(offset + size)
        else:
            # Calendars are never removed, so a calendarList sync token just replays all.
            body["nextSyncToken"] = f"L{world.seq}"
        return JSONResponse(body)

    def calendar_list_entry(request: Request, user: User) -> Response:
        with world.lock:
            return JSONResponse(_calendar_entry(calendar_of(request, user)))

    def calendar_get(request: Request, user: User) -> Response:
        with world.lock:
            return JSONResponse(_calendar_resource(calendar_of(request, user)))

    def events_list(request: Request, user: User) -> Response:
        cal = calendar_of(request, user)
        query = parse_query(request.query_params.getlist)
        return JSONResponse(lister.list_events(cal, query))

    def event_get(request: Request, user: User) -> Response:
        cal = calendar_of(request, user)
        return JSONResponse(world.get_event(user.email, request.path_params["event_id"], cal.id))

    def event_instances(request: Request, user: User) -> Response:
        """events.instances: one series' instances, paged like events.list."""
        cal = calendar_of(request, user)
        event_id = request.path_params["event_id"]
        with world.lock:
            entry = cal.entries.get(event_id)
            if entry is None or not entry.core.is_series:
                raise NotFound(event_id)
            query = parse_query(request.query_params.getlist)
            horizon = query.time_max or world.horizon()
            items = []
            for occ in entry.core.windowed(horizon):
                if query.time_min is not None and occ.end_utc <= query.time_min:
                    continue
                if occ.cancelled or entry.cancelled:
                    if query.show_deleted:
                        items.append(ser.occurrence_stub(entry, occ))
                elif query.time_max is None or occ.start_utc < query.time_max:
                    items.append(ser.render_occurrence(cal, entry, occ))
        body = {"kind": "calendar#events", "timeZone": cal.time_zone, "items": items}
        return JSONResponse(body)

    def events_watch(request: Request, user: User) -> Response:
        cal = calendar_of(request, user)
        hub = hub_for(world)
        return JSONResponse(hub.watch(cal.id, request.state.access, request.state.json))

    def channels_stop(request: Request, user: User) -> Response:
        hub_for(world).stop(request.state.access, request.state.json)
        return Response(status_code=204)

    return [
        Route("/channels/stop", guarded(channels_stop), methods=["POST"]),
        Route("/calendars/{calendar_id}/events/watch", guarded(events_watch), methods=["POST"]),
        Route("/users/me/calendarList", guarded(calendar_list), methods=["GET"]),
        Route(
            "/users/me/calendarList/{calendar_id}", guarded(calendar_list_entry), methods=["GET"]
        ),
        Route("/calendars/{calendar_id}", guarded(calendar_get), methods=["GET"]),
        Route("/calendars/{calendar_id}/events", guarded(events_list), methods=["GET"]),
        Route(
            "/calendars/{calendar_id}/events/{event_id}/instances",
            guarded(event_instances),
            methods=["GET"],
        ),
        Route("/calendars/{calendar_id}/events/{event_id}", guarded(event_get), methods=["GET"]),
    ]
