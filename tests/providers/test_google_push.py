"""GoogleCalendarProvider push methods (PROTOCOLS §1.5): wire format and error mapping
against MockTransport handlers, then against the emulator."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from showup.clock import FakeClock
from showup.providers.base import PushProvider
from showup.providers.errors import AuthRevoked, NotFound, RateLimited, Rejected, Transient
from showup.providers.google import GoogleCalendarProvider

API = "https://calendar.test/calendar/v3"
NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


async def token(force: bool = False) -> str:
    return "at"


def make(handler: Callable[[httpx.Request], httpx.Response]) -> GoogleCalendarProvider:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return GoogleCalendarProvider(
        http, api_url=API, token_url="https://oauth.test/token", clock=FakeClock(NOW)
    )


def error(status: int, reason: str) -> httpx.Response:
    return httpx.Response(
        status, json={"error": {"code": status, "errors": [{"reason": reason}], "message": "m"}}
    )


async def test_watch_sends_the_channel_and_reads_the_grant() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200,
            json={
                "kind": "api#channel",
                "id": "chan",
                "resourceId": "res",
                "resourceUri": "u",
                "token": "secret",
                "expiration": str(int((NOW + timedelta(hours=1)).timestamp() * 1000)),
            },
        )

    provider = make(handler)
    assert isinstance(provider, PushProvider)
    info = await provider.watch(
        token, "a@b.example", "chan", "https://x.example/push/google", "secret", timedelta(days=7)
    )
    # Google may grant less than asked: its expiration is the truth.
    assert (info.channel_id, info.resource_id, info.expiration) == (
        "chan",
        "res",
        NOW + timedelta(hours=1),
    )
    [request] = seen
    assert request.url.raw_path == b"/calendar/v3/calendars/a%40b.example/events/watch"
    assert request.headers["authorization"] == "Bearer at"
    assert json.loads(request.content) == {
        "id": "chan",
        "type": "web_hook",
        "address": "https://x.example/push/google",
        "token": "secret",
        "params": {"ttl": "604800"},
    }


async def test_watch_without_expiration_assumes_the_ttl() -> None:
    provider = make(lambda r: httpx.Response(200, json={"id": "chan", "resourceId": "res"}))
    info = await provider.watch(token, "primary", "chan", "https://x", "s", timedelta(hours=2))
    assert info.expiration == NOW + timedelta(hours=2)


@pytest.mark.parametrize(
    ("response", "raised"),
    [
        (error(400, "push.webhookUrlNotHttps"), Rejected),
        (error(404, "notFound"), NotFound),
        (error(403, "rateLimitExceeded"), RateLimited),
        (error(503, "backendError"), Transient),
        (error(403, "insufficientPermissions"), AuthRevoked),
        (httpx.Response(200, json={"id": "chan"}), Transient),  # no resourceId
        (httpx.Response(200, content=b"<html>"), Transient),
    ],
)
async def test_watch_errors_are_typed(response: httpx.Response, raised: type[Exception]) -> None:
    provider = make(lambda r: response)
    with pytest.raises(raised):
        await provider.watch(token, "primary", "chan", "https://x", "s", timedelta(days=1))


async def test_watch_checks_google_limits_before_sending() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise AssertionError("sent")

    provider = make(refuse)
    with pytest.raises(ValueError):
        await provider.watch(token, "primary", "c" * 65, "https://x", "s", timedelta(days=1))
    with pytest.raises(ValueError):
        await provider.watch(token, "primary", "c", "https://x", "s" * 257, timedelta(days=1))


async def test_stop_channel() -> None:
    seen: list[Any] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.path, json.loads(request.content)))
        return httpx.Response(204)

    await make(handler).stop_channel(token, "chan", "res")
    assert seen == [("/calendar/v3/channels/stop", {"id": "chan", "resourceId": "res"})]
    with pytest.raises(NotFound):
        await make(lambda r: error(404, "notFound")).stop_channel(token, "chan", "res")


async def test_against_the_emulator(world: Any, emulator_app: Any, clock: FakeClock) -> None:
    client_id, client_secret = world.add_oauth_client()
    world.add_user("alice@example.com")
    refresh = world.grant(client_id, "alice@example.com")
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=emulator_app))
    provider = GoogleCalendarProvider(
        http, api_url="http://emu.test/calendar/v3", token_url="http://emu.test/token", clock=clock
    )
    from showup.providers.base import OAuthCredentials

    grant = await provider.refresh_access_token(OAuthCredentials(client_id, client_secret, refresh))

    async def access(force: bool = False) -> str:
        return grant.token

    info = await provider.watch(
        access, "primary", "chan-1", "http://showup.test/push/google", "tok", timedelta(hours=3)
    )
    assert info.expiration == clock.now() + timedelta(hours=3)
    with pytest.raises(Rejected):  # a live id cannot be reused
        await provider.watch(
            access, "primary", "chan-1", "http://showup.test/push/google", "tok", timedelta(hours=3)
        )
    with pytest.raises(Rejected):  # Google wants HTTPS
        await provider.watch(
            access, "primary", "chan-2", "http://showup.example/push", "tok", timedelta(hours=3)
        )
    await provider.stop_channel(access, "chan-1", info.resource_id)
    with pytest.raises(NotFound):
        await provider.stop_channel(access, "chan-1", "no-such-resource")
    await http.aclose()
