"""The control API, mounted at ``/_emulator``: the World's Python methods over JSON.

For tools and demos that drive a standalone emulator from another process. Errors are
``{"error": {"code": "not_found" | "invalid", "message": ...}}`` with 404 / 400.
Documented in docs/emulator.md.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from showup.emulator.model import InvalidEvent, NotFound, format_rfc3339_ms, parse_rfc3339
from showup.emulator.world import World

Handler = Callable[[Request], Awaitable[Response]]
Body = dict[str, Any]


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def _seconds(value: Any) -> timedelta | None:
    return None if value is None else timedelta(seconds=float(value))


def _settings(world: World) -> Body:
    s = world.settings
    return {
        "quirky_pages": s.quirky_pages,
        "expansion_horizon_days": s.expansion_horizon.total_seconds() / 86400,
        "access_token_ttl_seconds": s.access_token_ttl.total_seconds(),
        "sync_token_ttl_seconds": s.sync_token_ttl.total_seconds() if s.sync_token_ttl else None,
        **{name: getattr(s, name) for name in _GRAPH_SETTINGS},
    }


# Graph switches settable as they are (docs/emulator.md "Microsoft Graph").
_GRAPH_SETTINGS = (
    "graph_page_size",
    "graph_replays",
    "graph_sparse_occurrences",
    "graph_attendee_cancellations",
    "graph_old_refresh_tokens",
)


def routes(world: World) -> list[BaseRoute]:
    def endpoint(fn: Callable[[Request, Body], Any]) -> Handler:
        async def handler(request: Request) -> Response:
            raw = await request.body()
            try:
                body = json.loads(raw) if raw.strip() else {}
                if not isinstance(body, dict):
                    raise InvalidEvent("the body must be a JSON object")
                result = fn(request, body)
            except NotFound as exc:
                return _error(404, "not_found", str(exc))
            except (InvalidEvent, ValueError, KeyError, TypeError) as exc:
                return _error(400, "invalid", str(exc))
            if isinstance(result, Response):
                return result
            return JSONResponse(result if result is not None else {})

        return handler

    def cal_id(request: Request) -> str:
        return request.query_params.get("calendar_id", "primary")

    def email(request: Request) -> str:
        return str(request.path_params["email"])

    def event_id(request: Request) -> str:
        return str(request.path_params["event_id"])

    def health(request: Request, body: Body) -> Any:
        return {"ok": True, "now": format_rfc3339_ms(world.clock.now())}

    def reset(request: Request, body: Body) -> Any:
        world.reset()

    def add_client(request: Request, body: Body) -> Any:
        cid, secret = world.add_oauth_client(
            body.get("client_id"),
            body.get("client_secret"),
            provider=body.get("provider", "google"),
        )
        return {"client_id": cid, "client_secret": secret}

    def add_user(request: Request, body: Body) -> Any:
        user = world.add_user(
            body["email"], name=body.get("name"), time_zone=body.get("time_zone", "UTC")
        )
        return {"email": user.email, "calendars": list(user.calendars)}

    def add_calendar(request: Request, body: Body) -> Any:
        new_id = world.add_calendar(
            email(request), body["summary"], body.get("time_zone"), body.get("id")
        )
        return {"id": new_id}

    def grant(request: Request, body: Body) -> Any:
        scopes = body.get("scopes")
        args = (tuple(scopes),) if scopes else ()
        return {"refresh_token": world.grant(body["client_id"], body["email"], *args)}

    def revoke(request: Request, body: Body) -> Any:
        world.revoke(body["token"])

    def create_event(request: Request, body: Body) -> Any:
        return world.create_event(email(request), body, cal_id(request))

    def get_event(request: Request, body: Body) -> Any:
        return world.get_event(email(request), event_id(request), cal_id(request))

    def update_event(request: Request, body: Body) -> Any:
        return world.update_event(email(request), event_id(request), body, cal_id(request))

    def move_event(request: Request, body: Body) -> Any:
        end = parse_rfc3339(body["end"]) if body.get("end") else None
        start = parse_rfc3339(body["start"])
        return world.move_event(email(request), event_id(request), start, end, cal_id(request))

    def cancel_event(request: Request, body: Body) -> Any:
        return world.cancel_event(email(request), event_id(request), cal_id(request))

    def respond(request: Request, body: Body) -> Any:
        return world.respond(email(request), event_id(request), body["response"], cal_id(request))

    def expire_sync_tokens(request: Request, body: Body) -> Any:
        world.expire_sync_tokens(body.get("email"))

    def list_faults(request: Request, body: Body) -> Any:
        return {"faults": [f.as_dict() for f in world.faults.list()]}

    def add_fault(request: Request, body: Body) -> Any:
        fault = world.faults.add(
            body.get("status"),
            times=body.get("times", 1),
            path_contains=body.get("path_contains"),
            method=body.get("method"),
            retry_after=body.get("retry_after"),
            reason=body.get("reason"),
            message=body.get("message"),
            latency=_seconds(body.get("latency_seconds")),
        )
        return fault.as_dict()

    def clear_faults(request: Request, body: Body) -> Any:
        world.faults.clear()

    def remove_fault(request: Request, body: Body) -> Any:
        if not world.faults.remove(int(request.path_params["fault_id"])):
            raise NotFound("no such fault")

    def settings(request: Request, body: Body) -> Any:
        s = world.settings
        if "quirky_pages" in body:
            s.quirky_pages = bool(body["quirky_pages"])
        if "expansion_horizon_days" in body:
            s.expansion_horizon = timedelta(days=float(body["expansion_horizon_days"]))
        if "access_token_ttl_seconds" in body:
            s.access_token_ttl = timedelta(seconds=float(body["access_token_ttl_seconds"]))
        if "sync_token_ttl_seconds" in body:
            s.sync_token_ttl = _seconds(body["sync_token_ttl_seconds"])
        for name in _GRAPH_SETTINGS:
            if name in body:
                kind = type(getattr(s, name))
                setattr(s, name, kind(body[name]))
        return _settings(world)

    def outbox(request: Request, body: Body) -> Any:
        if "drop" in body:
            world.outbox.drop(int(body["drop"]), body.get("label"))
        if "duplicate" in body:
            world.outbox.duplicate(int(body["duplicate"]), body.get("label"))
        if "reorder" in body:
            world.outbox.reorder(bool(body["reorder"]))
        return world.outbox.state()

    async def deliver(request: Request) -> Response:
        sent = await world.outbox.deliver()
        return JSONResponse({"attempted": len(sent), **world.outbox.state()})

    def graph_subscriptions(request: Request, body: Body) -> Any:
        from showup.emulator.graph.subscriptions import hub_for

        with world.lock:
            subs = list(hub_for(world).subscriptions.values())
        return {"subscriptions": [s.as_json() for s in subs]}

    def graph_lifecycle(request: Request, body: Body) -> Any:
        from showup.emulator.graph.subscriptions import hub_for

        hub_for(world).lifecycle(str(request.path_params["sub_id"]), str(body["event"]))

    def advance_clock(request: Request, body: Body) -> Any:
        """Only for a world on a FakeClock (tests, demos); real clocks answer 409."""
        advance = getattr(world.clock, "advance", None)
        if advance is None:
            return _error(409, "conflict", "this world's clock cannot be advanced")
        advance(timedelta(seconds=float(body["seconds"])))
        return {"now": format_rfc3339_ms(world.clock.now())}

    ev = "/users/{email}/events/{event_id}"
    return [
        Route("/health", endpoint(health), methods=["GET"]),
        Route("/reset", endpoint(reset), methods=["POST"]),
        Route("/clients", endpoint(add_client), methods=["POST"]),
        Route("/users", endpoint(add_user), methods=["POST"]),
        Route("/users/{email}/calendars", endpoint(add_calendar), methods=["POST"]),
        Route("/grants", endpoint(grant), methods=["POST"]),
        Route("/revoke", endpoint(revoke), methods=["POST"]),
        Route("/users/{email}/events", endpoint(create_event), methods=["POST"]),
        Route(ev, endpoint(get_event), methods=["GET"]),
        Route(ev, endpoint(update_event), methods=["PATCH"]),
        Route(ev, endpoint(cancel_event), methods=["DELETE"]),
        Route(ev + "/move", endpoint(move_event), methods=["POST"]),
        Route(ev + "/cancel", endpoint(cancel_event), methods=["POST"]),
        Route(ev + "/respond", endpoint(respond), methods=["POST"]),
        Route("/sync-tokens/expire", endpoint(expire_sync_tokens), methods=["POST"]),
        Route("/faults", endpoint(list_faults), methods=["GET"]),
        Route("/faults", endpoint(add_fault), methods=["POST"]),
        Route("/faults", endpoint(clear_faults), methods=["DELETE"]),
        Route("/faults/{fault_id:int}", endpoint(remove_fault), methods=["DELETE"]),
        Route("/settings", endpoint(settings), methods=["GET", "PATCH"]),
        Route("/clock/advance", endpoint(advance_clock), methods=["POST"]),
        Route("/outbox", endpoint(outbox), methods=["GET", "POST"]),
        Route("/outbox/deliver", deliver, methods=["POST"]),
        Route("/graph/subscriptions", endpoint(graph_subscriptions), methods=["GET"]),
        Route(
            "/graph/subscriptions/{sub_id}/lifecycle",
            endpoint(graph_lifecycle),
            methods=["POST"],
        ),
    ]
