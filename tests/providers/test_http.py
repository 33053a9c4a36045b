"""Shared HTTP helpers: Retry-After parsing, transport errors, the 401 refresh dance."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from showup.providers import http as provider_http
from showup.providers.errors import AuthRevoked, Rejected, Transient
from showup.providers.http import (
    MAX_RETRY_AFTER,
    decode_json,
    error_payload,
    json_object,
    parse_retry_after,
    send,
    send_authorized,
    without_nul,
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


# Bodies orjson refuses or reads otherwise than the stdlib, and ordinary ones.
ODD_BODIES = [
    b'{"summary":"Caf\xc3\xa9 \xf0\x9f\x98\x80","n":[1,-2,2.5,-0.0,null,true]}',
    b'{"s":"\\ud800","t":"\\udc00x","ok":"\\ud83d\\ude00"}',  # lone surrogate escapes
    b'{"big":123456789012345678901234567890}',  # beyond 64 bits: orjson gives a float
    b'{"neg":-9223372036854775809,"max":18446744073709551615,"min":-9223372036854775808}',
    b'{"n":9223372036854775807,"in a string":"tel:+1234567890123456789"}',
    b"\xef\xbb\xbf{}",  # UTF-8 byte order mark
    '{"a":"\u00e9"}'.encode("utf-16"),
    b'{"nan":NaN,"inf":-Infinity,"huge":1e400}',
    b'{"a":1,"a":2}',
    b" [1] ",
]


def _same(a: object, b: object) -> bool:
    # == with exact types (1 vs 1.0) and NaN equal to itself.
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        assert isinstance(b, dict)
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        assert isinstance(b, list)
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


@pytest.mark.parametrize("body", ODD_BODIES)
def test_decode_json_gives_what_the_stdlib_gives(body: bytes) -> None:
    assert _same(decode_json(body), json.loads(body))


@pytest.mark.parametrize(
    "body", [b"", b"<html>bad gateway</html>", b'{"a":', b'{"a":"\xff"}', b"[1] 2", b"\x00"]
)
def test_decode_json_raises_what_the_stdlib_raises(body: bytes) -> None:
    with pytest.raises(ValueError) as stdlib:
        json.loads(body)
    with pytest.raises(ValueError) as ours:
        decode_json(body)
    assert type(ours.value) is type(stdlib.value)
    request = httpx.Request("GET", "https://api.test/x")
    with pytest.raises(Transient):
        json_object(httpx.Response(200, content=body, request=request))
    assert error_payload(httpx.Response(500, content=body, request=request)) == {}


def _nul_free(value: object) -> object:
    """``value`` with NUL written as U+FFFD in every string, keys included."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_nul_free(k): _nul_free(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nul_free(v) for v in value]
    return value


@pytest.mark.parametrize(
    "body",
    [
        b'{"summary":"a\\u0000b","n\\u0000k":["\\u0000","x\\u0000\\u0000"]}',
        b'{"escaped backslash":"\\\\u0000","then NUL":"\\\\\\u0000"}',
        b'{"big":123456789012345678901234567890,"s":"\\u0000"}',  # the stdlib's path too
        b'{"none":"\\u0001 u0000 \\\\"}',
    ],
)
def test_decoded_text_never_holds_nul(body: bytes) -> None:
    expected = _nul_free(json.loads(body))
    assert _same(decode_json(body), expected)
    assert _same(json.loads(without_nul(body)), expected)


def test_ordinary_bodies_do_not_go_through_the_stdlib(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(body: bytes) -> None:
        raise AssertionError("stdlib json.loads called")

    monkeypatch.setattr(provider_http.json, "loads", refuse)
    body = b'{"items":[{"id":"e1","summary":"Caf\xc3\xa9","sequence":2}],"n":123456789012345678}'
    assert decode_json(body) == {
        "items": [{"id": "e1", "summary": "Caf\u00e9", "sequence": 2}],
        "n": 123456789012345678,
    }
