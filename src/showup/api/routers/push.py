"""Push notification receivers: ``POST /push/google`` (PROTOCOLS §1.5), ``POST
/push/microsoft`` and ``POST /push/microsoft/lifecycle`` (§2.4).

Called by the provider, not by a tenant: no API key (the channel token or ``clientState``
is the proof, checked in ``push.google_receiver`` / ``push.graph_receiver``), outside
``/api/v2``. Answers fast and never syncs here; the sync runs in the worker.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import PlainTextResponse

from showup.api.deps import RuntimeDep
from showup.api.errors import ApiError
from showup.push import google_receiver, graph_receiver
from showup.push.limiter import SyncRequestLimiter
from showup.runtime import Runtime

router = APIRouter(tags=["push"], include_in_schema=False)


def _limiter(request: Request, runtime: Runtime) -> SyncRequestLimiter:
    """The app's one limiter (per process, see ``push.limiter``)."""
    limiter = getattr(request.app.state, "push_limiter", None)
    if not isinstance(limiter, SyncRequestLimiter):
        s = runtime.settings
        limiter = SyncRequestLimiter(s.push_rate_burst, s.push_rate_interval)
        request.app.state.push_limiter = limiter
    return limiter


async def _require_no_body(request: Request) -> None:
    """Google's notifications have no body (``Content-Length: 0``); refuse any."""
    length = request.headers.get("content-length")
    if length is not None and not length.strip().isdigit():
        raise ApiError(400, "invalid_notification", "Content-Length is not a number.")
    if length is not None and int(length) > 0:
        raise ApiError(413, "payload_too_large", "Push notifications have no body.")
    async for chunk in request.stream():  # a chunked body declares no length
        if chunk:
            raise ApiError(413, "payload_too_large", "Push notifications have no body.")


@router.post("/push/google")
async def google_push(request: Request, runtime: RuntimeDep) -> Response:
    await _require_no_body(request)
    try:
        note = google_receiver.parse_notification(request.headers)
    except google_receiver.Malformed as exc:
        raise ApiError(400, "invalid_notification", str(exc)) from None
    verdict = await google_receiver.receive(runtime, _limiter(request, runtime), note)
    if verdict == "bad_token":
        raise ApiError(401, "invalid_channel_token", "The channel token does not match.")
    return Response(status_code=200)


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 past ``limit`` bytes (declared or streamed)."""
    length = request.headers.get("content-length")
    if length is not None and not length.strip().isdigit():
        raise ApiError(400, "invalid_notification", "Content-Length is not a number.")
    too_large = ApiError(413, "payload_too_large", f"Notifications are at most {limit} bytes.")
    if length is not None and int(length) > limit:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large
    return bytes(body)


async def _graph(request: Request, runtime: Runtime, *, lifecycle: bool) -> Response:
    channel_id = request.query_params.get("channel")
    token = request.query_params.get("validationToken")
    if token is not None:  # the subscription is being created (§2.4 "Validation")
        try:
            echo = graph_receiver.validation_echo(token, channel_id)
        except graph_receiver.Malformed as exc:
            raise ApiError(400, "invalid_validation_request", str(exc)) from None
        return PlainTextResponse(echo, headers={"X-Content-Type-Options": "nosniff"})
    raw = await _read_body(request, graph_receiver.MAX_BODY)
    try:
        items = graph_receiver.parse_batch(raw, lifecycle=lifecycle)
    except graph_receiver.Malformed as exc:
        raise ApiError(400, "invalid_notification", str(exc)) from None
    verdict = await graph_receiver.receive(runtime, _limiter(request, runtime), channel_id, items)
    if verdict == "bad_client_state":
        raise ApiError(401, "invalid_client_state", "The clientState does not match.")
    return Response(status_code=202)


@router.post("/push/microsoft")
async def microsoft_push(request: Request, runtime: RuntimeDep) -> Response:
    return await _graph(request, runtime, lifecycle=False)


@router.post("/push/microsoft/lifecycle")
async def microsoft_lifecycle(request: Request, runtime: RuntimeDep) -> Response:
    return await _graph(request, runtime, lifecycle=True)
