"""Calendars API: Recall V2 compatibility, auth, tenant scoping, validation, pagination."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from showup.db.models import Calendar

SECRET = "client-secret-value-1234567890"
REFRESH = "1//refresh-token-value-abcdefghijkl"


def body(**over: Any) -> dict[str, Any]:
    return {
        "platform": "google_calendar",
        "oauth_client_id": "client-1.apps.googleusercontent.com",
        "oauth_client_secret": SECRET,
        "oauth_refresh_token": REFRESH,
        "external_user_id": "user-1",
        **over,
    }


async def count_calendars(runtime: Any) -> int:
    async with runtime.sessions() as s:
        return int(await s.scalar(select(func.count()).select_from(Calendar)) or 0)


async def test_create_returns_recall_fields_and_no_secret(api: httpx.AsyncClient) -> None:
    r = await api.post("/api/v2/calendars/", json=body())
    assert r.status_code == 201, r.text
    data = r.json()
    for key in (
        "id",
        "platform",
        "platform_email",
        "status",
        "status_changes",
        "external_user_id",
        "created_at",
        "updated_at",
    ):
        assert key in data
    assert data["status"] == "connecting"
    assert data["platform_email"] is None
    assert data["external_user_id"] == "user-1"
    assert SECRET not in r.text and REFRESH not in r.text
    assert "oauth_client_secret" not in data and "oauth_refresh_token" not in data

    got = await api.get(f"/api/v2/calendars/{data['id']}/")
    assert got.status_code == 200
    assert SECRET not in got.text and REFRESH not in got.text


async def test_auth_is_required(api: httpx.AsyncClient) -> None:
    r = await api.get("/api/v2/calendars/", headers={"Authorization": ""})
    assert r.status_code == 401
    assert r.json()["code"] == "unauthenticated"
    r = await api.get("/api/v2/calendars/", headers={"Authorization": "Token sk_wrong"})
    assert r.status_code == 401
    assert r.json()["code"] == "invalid_api_key"
    r = await api.get(
        "/api/v2/calendars/",
        headers={"Authorization": api.headers["authorization"].replace("Token", "Bearer")},
    )
    assert r.status_code == 200


async def test_get_and_delete_with_json_content_type_and_no_body(api: httpx.AsyncClient) -> None:
    cid = (await api.post("/api/v2/calendars/", json=body())).json()["id"]
    r = await api.request(
        "GET", f"/api/v2/calendars/{cid}/", headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 200
    r = await api.request("DELETE", f"/api/v2/calendars/{cid}/")
    assert r.status_code == 204
    assert r.content == b""
    assert (await api.get(f"/api/v2/calendars/{cid}/")).status_code == 404


async def test_paths_without_trailing_slash_are_served_without_redirect(
    api: httpx.AsyncClient,
) -> None:
    r = await api.post("/api/v2/calendars", json=body())
    assert r.status_code == 201
    r = await api.get("/api/v2/calendars")
    assert r.status_code == 200 and len(r.json()["results"]) == 1


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"oauth_refresh_token": None}, "oauth_refresh_token"),
        ({"oauth_client_secret": ""}, "oauth_client_secret"),
        ({"platform": "yahoo"}, "platform"),
        ({"oauth_client_id": "x" * 600}, "oauth_client_id"),
        ({"webhook_url": "ftp://example.com/hook"}, "webhook_url"),
        ({"webhook_url": "http://10.0.0.5/hook"}, "webhook_url"),
    ],
)
async def test_bad_input_is_400_with_code_and_writes_nothing(
    api: httpx.AsyncClient, runtime: Any, over: dict[str, Any], field: str
) -> None:
    payload = body(**over)
    payload = {k: v for k, v in payload.items() if v is not None}
    r = await api.post("/api/v2/calendars/", json=payload)
    assert r.status_code == 400, r.text
    data = r.json()
    assert isinstance(data["code"], str) and data["detail"]
    assert any(e["field"] == field for e in data.get("errors", [])), data
    assert await count_calendars(runtime) == 0


async def test_malformed_json_is_400(api: httpx.AsyncClient, runtime: Any) -> None:
    r = await api.post("/api/v2/calendars/", content=b"{not json")
    assert r.status_code == 400
    assert r.json()["code"] == "invalid_request"
    r = await api.post("/api/v2/calendars/", content=b"[1,2]")
    assert r.status_code == 400
    assert await count_calendars(runtime) == 0


async def test_oversized_body_is_413(api: httpx.AsyncClient) -> None:
    r = await api.post("/api/v2/calendars/", content=b"{" + b" " * (2 * 1024 * 1024) + b"}")
    assert r.status_code == 413
    assert r.json()["code"] == "payload_too_large"


async def test_microsoft_tenant_defaults_to_common(api: httpx.AsyncClient) -> None:
    r = await api.post("/api/v2/calendars/", json=body(platform="microsoft_outlook"))
    assert r.status_code == 201, r.text
    assert r.json()["platform"] == "microsoft_outlook"
    assert r.json()["oauth_tenant_id"] == "common"
    r = await api.post(
        "/api/v2/calendars/",
        json=body(platform="microsoft_outlook", oauth_tenant_id="contoso.onmicrosoft.com"),
    )
    assert r.status_code == 201 and r.json()["oauth_tenant_id"] == "contoso.onmicrosoft.com"
    assert (await api.post("/api/v2/calendars/", json=body())).json()["oauth_tenant_id"] is None


@pytest.mark.parametrize("tenant_id", ["../evil", "a/b", "x?y=1", "-x", ""])
async def test_microsoft_tenant_must_be_a_path_segment(
    api: httpx.AsyncClient, tenant_id: str
) -> None:
    r = await api.post(
        "/api/v2/calendars/", json=body(platform="microsoft_outlook", oauth_tenant_id=tenant_id)
    )
    assert r.status_code == 400, r.text


async def test_other_tenants_calendar_is_404(api: httpx.AsyncClient, runtime: Any) -> None:
    from showup.tenants import create_tenant

    cid = (await api.post("/api/v2/calendars/", json=body())).json()["id"]
    async with runtime.sessions() as s:
        other = await create_tenant(s, runtime.clock, "Other")
        await s.commit()
    h = {"Authorization": f"Token {other.api_key}"}
    assert (await api.get(f"/api/v2/calendars/{cid}/", headers=h)).status_code == 404
    assert (await api.patch(f"/api/v2/calendars/{cid}/", json={}, headers=h)).status_code == 404
    assert (await api.delete(f"/api/v2/calendars/{cid}/", headers=h)).status_code == 404
    listed = await api.get("/api/v2/calendars/", headers=h)
    assert listed.json()["results"] == []
    assert (await api.get(f"/api/v2/calendars/{cid}/")).status_code == 200


async def test_list_filters_and_cursor_pagination(api: httpx.AsyncClient, clock: Any) -> None:
    from datetime import timedelta

    ids = []
    for i in range(5):
        clock.advance(timedelta(seconds=1))
        r = await api.post("/api/v2/calendars/", json=body(external_user_id=f"u{i % 2}"))
        ids.append(r.json()["id"])
    first = (await api.get("/api/v2/calendars/", params={"page_size": 2})).json()
    assert [c["id"] for c in first["results"]] == ids[:2]
    assert first["previous"] is None
    assert first["next"].startswith("http://showup.test/api/v2/calendars/?")
    second = (await api.get(first["next"])).json()
    assert [c["id"] for c in second["results"]] == ids[2:4]
    back = (await api.get(second["previous"])).json()
    assert [c["id"] for c in back["results"]] == ids[:2]
    third = (await api.get(second["next"])).json()
    assert [c["id"] for c in third["results"]] == ids[4:]
    assert third["next"] is None

    u0 = (await api.get("/api/v2/calendars/", params={"external_user_id": "u0"})).json()
    assert [c["id"] for c in u0["results"]] == [ids[0], ids[2], ids[4]]
    st = (await api.get("/api/v2/calendars/", params={"status": "connected"})).json()
    assert st["results"] == []
    bad = await api.get("/api/v2/calendars/", params={"status": "nope"})
    assert bad.status_code == 400
    cur = await api.get("/api/v2/calendars/", params={"cursor": "garbage!!"})
    assert cur.status_code == 400 and cur.json()["code"] == "invalid_cursor"


async def test_patch_rules(api: httpx.AsyncClient) -> None:
    cid = (await api.post("/api/v2/calendars/", json=body())).json()["id"]
    r = await api.patch(f"/api/v2/calendars/{cid}/", json={"platform": "microsoft_outlook"})
    assert r.status_code == 400 and r.json()["code"] == "platform_change_not_supported"
    r = await api.patch(
        f"/api/v2/calendars/{cid}/",
        json={"platform": "google_calendar", "webhook_url": "https://hooks.example.com/x"},
    )
    assert r.status_code == 200
    assert r.json()["webhook_url"] == "https://hooks.example.com/x"
    r = await api.patch(f"/api/v2/calendars/{cid}/", json={"webhook_url": "http://127.0.0.1/x"})
    assert r.status_code == 400
