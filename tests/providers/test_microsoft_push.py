"""MicrosoftCalendarProvider subscriptions (PROTOCOLS §2.4): wire format and error mapping
against MockTransport handlers, then against the Graph emulator, whose validation
handshake reaches a small echoing app over ASGI."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from showup.clock import FakeClock
from showup.providers.base import OAuthCredentials, PushProvider
from showup.providers.errors import AuthRevoked, NotFound, RateLimited, Rejected, Transient
from showup.providers.microsoft import MicrosoftCalendarProvider
from showup.providers.microsoft_push import notification_urls, requested_expiration
from showup.push.renewal import ChannelRenewer

GRAPH = "https://graph.test/v1.0"
NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
ADDRESS = "https://showup.example/push/microsoft"
STATE = "s" * 43


async def token(force: bool = False) -> str:
    return "at"


def make(handler: Callable[[httpx.Request], httpx.Response]) -> MicrosoftCalendarProvider:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return MicrosoftCalendarProvider(
        http, graph_url=GRAPH, login_url="https://login.test", clock=FakeClock(NOW)
    )


def error(status: int, code: str) -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": code, "message": "m"}})


def subscription(expires: str = "2026-11-09T08:58:00Z", **extra: Any) -> dict[str, Any]:
    return {"id": "sub-1", "expirationDateTime": expires, **extra}


async def test_watch_creates_a_subscription_with_both_urls_and_the_client_state() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json=subscription("2026-11-05T09:00:00.0000000Z"))

    provider = make(handler)
    assert isinstance(provider, PushProvider) and isinstance(provider, ChannelRenewer)
    info = await provider.watch(token, "primary", "su-1", ADDRESS, STATE, timedelta(days=30))
    # Graph's answer is the truth (here: less than asked).
    assert (info.channel_id, info.resource_id) == ("su-1", "sub-1")
    assert info.expiration == datetime(2026, 11, 5, 9, tzinfo=UTC)
    [request] = seen
    assert (request.method, request.url.path) == ("POST", "/v1.0/subscriptions")
    assert request.headers["authorization"] == "Bearer at"
    assert json.loads(request.content) == {
        "changeType": "created,updated,deleted",
        "notificationUrl": ADDRESS + "?channel=su-1",
        "lifecycleNotificationUrl": ADDRESS + "/lifecycle?channel=su-1",
        "resource": "me/events",
        # 30 days asked: capped under the 10,080-minute maximum, clock skew allowed for.
        "expirationDateTime": "2026-11-09T08:58:00Z",
        "clientState": STATE,
        "latestSupportedTlsVersion": "v1_2",
    }


def test_expiration_and_urls() -> None:
    assert requested_expiration(NOW, timedelta(hours=1)) == NOW + timedelta(hours=1)
    assert requested_expiration(NOW, timedelta(days=7)) == NOW + timedelta(minutes=10078)
    with pytest.raises(ValueError):
        requested_expiration(NOW, timedelta(0))
    assert notification_urls("https://x.example/a/?k=v", "c") == (
        "https://x.example/a/?k=v&channel=c",
        "https://x.example/a/lifecycle?k=v&channel=c",
    )


async def test_watch_without_expiration_in_the_answer_assumes_the_request() -> None:
    provider = make(lambda r: httpx.Response(201, json={"id": "sub-1"}))
    info = await provider.watch(token, "primary", "su-1", ADDRESS, STATE, timedelta(hours=2))
    assert info.expiration == NOW + timedelta(hours=2)


@pytest.mark.parametrize(
    ("response", "raised"),
    [
        (error(400, "InvalidRequest"), Rejected),  # e.g. the validation handshake failed
        (error(403, "ErrorAccessDenied"), AuthRevoked),
        (error(429, "TooManyRequests"), RateLimited),
        (error(503, "ServiceUnavailable"), Transient),
        (httpx.Response(201, json={"expirationDateTime": "2026-11-05T09:00:00Z"}), Transient),
        (httpx.Response(201, content=b"<html>"), Transient),
    ],
)
async def test_watch_errors_are_typed(response: httpx.Response, raised: type[Exception]) -> None:
    provider = make(lambda r: response)
    with pytest.raises(raised):
        await provider.watch(token, "primary", "su-1", ADDRESS, STATE, timedelta(days=1))


async def test_watch_checks_the_client_state_limit_before_sending() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise AssertionError("sent")

    provider = make(refuse)
    for secret in ("", "s" * 129):
        with pytest.raises(ValueError):
            await provider.watch(token, "primary", "su-1", ADDRESS, secret, timedelta(days=1))


async def test_renew_patches_the_expiration_and_404_is_not_found() -> None:
    seen: list[tuple[str, str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.raw_path.decode(), json.loads(request.content)))
        return httpx.Response(200, json=subscription("2026-11-03T09:00:00Z"))

    info = await make(handler).renew_channel(token, "su-1", "sub/1", timedelta(days=1))
    assert (info.resource_id, info.expiration) == ("sub-1", NOW + timedelta(days=1))
    assert seen == [
        ("PATCH", "/v1.0/subscriptions/sub%2F1", {"expirationDateTime": "2026-11-03T09:00:00Z"})
    ]
    with pytest.raises(NotFound):
        await make(lambda r: error(404, "ResourceNotFound")).renew_channel(
            token, "su-1", "sub-1", timedelta(days=1)
        )


async def test_stop_deletes_and_404_is_not_found() -> None:
    seen: list[tuple[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.path))
        return httpx.Response(204)

    await make(handler).stop_channel(token, "su-1", "sub-1")
    assert seen == [("DELETE", "/v1.0/subscriptions/sub-1")]
    with pytest.raises(NotFound):
        await make(lambda r: error(404, "ResourceNotFound")).stop_channel(token, "su-1", "sub-1")


def echo_app(log: list[str], *, echo: bool = True) -> Starlette:
    """A receiver that answers the validation handshake (or answers it wrongly)."""

    async def endpoint(request: Request) -> Response:
        log.append(str(request.url))
        value = request.query_params.get("validationToken", "")
        return PlainTextResponse(value if echo else "nope")

    return Starlette(
        routes=[
            Route("/push/microsoft", endpoint, methods=["POST"]),
            Route("/push/microsoft/lifecycle", endpoint, methods=["POST"]),
        ]
    )


async def test_against_the_emulator(world: Any, emulator_app: Any, clock: FakeClock) -> None:
    from showup.emulator.graph import subscriptions

    client_id, client_secret = world.add_oauth_client(provider="microsoft")
    world.add_user("alice@example.com")
    refresh = world.grant(client_id, "alice@example.com")
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=emulator_app))
    provider = MicrosoftCalendarProvider(
        http, graph_url="http://emu.test/graph/v1.0", login_url="http://emu.test/login", clock=clock
    )
    creds = OAuthCredentials(client_id, client_secret, refresh)

    async def access(force: bool = False) -> str:
        return (await provider.refresh_access_token(creds)).token  # fresh each time

    handshakes: list[str] = []
    world.outbox.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=echo_app(handshakes)))
    address = "http://showup.test/push/microsoft"
    info = await provider.watch(access, "primary", "su-1", address, STATE, timedelta(days=7))
    # Both URLs were validated during the create call, each carrying our channel id.
    assert [urlsplit(u).path for u in handshakes] == [
        "/push/microsoft",
        "/push/microsoft/lifecycle",
    ]
    assert all(parse_qs(urlsplit(u).query)["channel"] == ["su-1"] for u in handshakes)
    sub = subscriptions(world).subscriptions[info.resource_id]
    assert (sub.client_state, sub.expiration) == (STATE, info.expiration)
    assert info.expiration == clock.now() + timedelta(minutes=10078)

    clock.advance(timedelta(days=6))
    renewed = await provider.renew_channel(access, "su-1", info.resource_id, timedelta(days=7))
    assert renewed.resource_id == info.resource_id  # the same subscription, extended
    assert renewed.expiration == clock.now() + timedelta(minutes=10078)

    await provider.stop_channel(access, "su-1", info.resource_id)
    assert subscriptions(world).subscriptions == {}
    with pytest.raises(NotFound):
        await provider.stop_channel(access, "su-1", info.resource_id)
    with pytest.raises(NotFound):
        await provider.renew_channel(access, "su-1", info.resource_id, timedelta(days=1))

    # A receiver that does not echo the token: Graph refuses the subscription (400).
    world.outbox.client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=echo_app([], echo=False))
    )
    with pytest.raises(Rejected):
        await provider.watch(access, "primary", "su-2", address, STATE, timedelta(days=1))
    await http.aclose()
