"""Shared HTTP helpers: Retry-After parsing, transport errors, the 401 refresh dance."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from showup.providers.errors import AuthRevoked, Rejected, Transient
from showup.providers.http import (
    MAX_RETRY_AFTER,
    json_object,
    parse_retry_after,
    send,
    send_authorized,
)

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("  ", None),
        ("120", timedelta(seconds=120)),
        (" 7 ", timedelta(seconds=7)),
        ("1.5", timedelta(seconds=1.5)),
        ("-3", timedelta(0)),
        ("nan", None),
        ("99999999", MAX_RETRY_AFTER),
        ("Mon, 02 Nov 2026 09:00:30 GMT", timedelta(seconds=30)),
        ("Mon, 02 Nov 2026 08:59:00 GMT", timedelta(0)),  # in the past: retry now
        ("Mon, 02 Nov 2026 09:00:30 -0000", timedelta(seconds=30)),
        ("tomorrow-ish", None),
    ],
)
def test_parse_retry_after(value: str | None, expected: timedelta | None) -> None:
    assert parse_retry_after(value, now=NOW) == expected


class Tokens:
    """A token source handing out tok-0, tok-1, … and counting forced refreshes."""

    def __init__(self) -> None:
        self.current = 0
        self.forced = 0

    async def __call__(self, force: bool = False) -> str:
        if force:
            self.forced += 1
            self.current += 1
        return f"tok-{self.current}"


def client(handler: httpx.MockTransport) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=handler)


async def test_send_authorized_passes_bearer_and_returns_response() -> None:
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("Authorization"))
        return httpx.Response(404, json={})

    tokens = Tokens()
    async with client(httpx.MockTransport(handler)) as http:
        response = await send_authorized(http, tokens, "GET", "https://api.test/x", params={"a": 1})
    assert response.status_code == 404  # the caller maps statuses
    assert seen == ["Bearer tok-0"]
    assert tokens.forced == 0


async def test_send_authorized_refreshes_once_on_401() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.headers["Authorization"] == "Bearer tok-0":
            return httpx.Response(401, json={"error": {"code": 401}})
        return httpx.Response(200, json={"ok": True})

    tokens = Tokens()
    async with client(httpx.MockTransport(handler)) as http:
        response = await send_authorized(http, tokens, "GET", "https://api.test/x")
    assert response.status_code == 200
    assert tokens.forced == 1


async def test_send_authorized_second_401_is_auth_revoked() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(401)

    tokens = Tokens()
    async with client(httpx.MockTransport(handler)) as http:
        with pytest.raises(AuthRevoked) as info:
            await send_authorized(
                http, tokens, "GET", "https://api.test/x", params={"syncToken": "s3cr3t"}
            )
    assert calls == 2
    assert tokens.forced == 1
    assert info.value.status == 401
    assert "s3cr3t" not in str(info.value)  # no query strings in messages
    assert "tok-" not in str(info.value)


async def test_token_source_errors_propagate() -> None:
    class Revoked:
        async def __call__(self, force: bool = False) -> str:
            if force:
                raise AuthRevoked("invalid_grant")
            return "old"

    async with client(httpx.MockTransport(lambda r: httpx.Response(401))) as http:
        with pytest.raises(AuthRevoked, match="invalid_grant"):
            await send_authorized(http, Revoked(), "GET", "https://api.test/x")


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (httpx.ConnectTimeout("slow"), Transient),
        (httpx.ReadTimeout("slow"), Transient),
        (httpx.ConnectError("refused"), Transient),
        (httpx.RemoteProtocolError("eof"), Transient),
        (httpx.ReadError("reset"), Transient),
        (httpx.UnsupportedProtocol("ftp"), Rejected),
    ],
)
async def test_transport_errors_are_typed(exc: Exception, expected: type[Exception]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    async with client(httpx.MockTransport(handler)) as http:
        with pytest.raises(expected) as info:
            await send(http, http.build_request("GET", "https://api.test/p?pageToken=zz"))
    assert "GET /p" in str(info.value)
    assert "zz" not in str(info.value)
    assert info.value.__cause__ is exc


def test_json_object_rejects_non_objects() -> None:
    request = httpx.Request("GET", "https://api.test/x")
    assert json_object(httpx.Response(200, json={"a": 1}, request=request)) == {"a": 1}
    with pytest.raises(Transient):
        json_object(httpx.Response(200, text="<html>bad gateway</html>", request=request))
    with pytest.raises(Transient):
        json_object(httpx.Response(200, json=[1, 2], request=request))
