"""The application's own middleware: NUL refused everywhere, bodies bounded when streamed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
from sqlalchemy import func, select

from showup.db.models import Calendar


def _create(**overrides: Any) -> dict[str, Any]:
    body = {
        "platform": "google_calendar",
        "oauth_client_id": "client",
        "oauth_client_secret": "secret",
        "oauth_refresh_token": "refresh",
        "external_user_id": "user-1",
    }
    return body | overrides


async def _calendars(runtime: Any) -> int:
    async with runtime.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(Calendar)) or 0)


def _refused(r: httpx.Response) -> bool:
    return r.status_code == 400 and r.json()["code"] == "invalid_request"


async def test_nul_in_a_query_or_path_is_400(api: httpx.AsyncClient) -> None:
    for path, name in (
        ("/api/v2/calendar-events/", "ical_uid"),
        ("/api/v2/calendar-events/", "calendar_id"),
        ("/api/v2/calendars/", "external_user_id"),
    ):
        assert _refused(await api.get(path, params={name: "a\x00b"})), (path, name)
    assert _refused(await api.get("/api/v2/calendars/a%00b/"))
    assert _refused(await api.delete("/api/v2/calendar-events/a%00b/"))


async def test_nul_in_a_json_body_is_400_and_writes_nothing(
    api: httpx.AsyncClient, runtime: Any
) -> None:
    for field in ("external_user_id", "oauth_client_id", "oauth_refresh_token"):
        r = await api.post("/api/v2/calendars/", json=_create(**{field: "u\x00v"}))
        assert _refused(r), field
    nested = {"extra": {"deep": ["x", "y\x00"]}}  # ignored fields are checked too
    assert _refused(await api.post("/api/v2/calendars/", json=_create(**nested)))
    assert await _calendars(runtime) == 0
    # The six characters \u0000 as text (an escaped backslash) are no NUL.
    r = await api.post("/api/v2/calendars/", json=_create(external_user_id="a\\u0000b"))
    assert r.status_code == 201, r.text
    assert r.json()["external_user_id"] == "a\\u0000b"
    got = await api.get(f"/api/v2/calendars/{r.json()['id']}/")
    assert got.json()["external_user_id"] == "a\\u0000b"


async def test_a_streamed_body_over_the_limit_is_413(api: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it comes
        yield b"{"
        for _ in range(20):
            yield b" " * 100_000
        yield b"}"

    r = await api.post("/api/v2/calendars/", content=chunks())
    assert r.status_code == 413
    assert r.json()["code"] == "payload_too_large"
