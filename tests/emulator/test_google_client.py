"""The official google-api-python-client against the emulator over real loopback HTTP:
refresh through /token, page with list_next, then an unchanged incremental sync."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httplib2  # type: ignore[import-untyped]
import pytest
import uvicorn
from google.oauth2.credentials import Credentials
from google_auth_httplib2 import AuthorizedHttp  # type: ignore[import-untyped]
from googleapiclient.discovery import build

from showup.clock import FakeClock
from showup.emulator import World, create_app
from tests.emulator.conftest import ALICE, timed


@pytest.fixture
def base_url(world: World) -> Iterator[str]:
    """Serve the app on 127.0.0.1:<ephemeral> in a thread. The socket is bound and
    listening before the thread starts, so no readiness polling is needed.

    ``IPPROTO_TCP`` matters: asyncio sets TCP_NODELAY on accepted connections only when the
    listening socket says it is TCP; without it each keep-alive response (headers and body
    written separately) waits ~40 ms for the client's delayed ACK."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(world), log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def test_google_api_python_client_pages_and_syncs(
    world: World, clock: FakeClock, base_url: str
) -> None:
    for day in range(12):
        world.create_event(
            ALICE,
            timed(
                f"2026-11-{3 + day:02d}T10:00:00",
                f"2026-11-{3 + day:02d}T11:00:00",
                summary=f"e{day}",
            ),
        )
    world.create_event(
        ALICE,
        timed(
            "2026-11-03T09:00:00",
            "2026-11-03T09:15:00",
            summary="standup",
            recurrence=["RRULE:FREQ=DAILY;COUNT=5"],
        ),
    )
    client_id, secret = world.add_oauth_client()
    creds = Credentials(  # type: ignore[no-untyped-call]
        token=None,
        refresh_token=world.grant(client_id, ALICE),
        token_uri=f"{base_url}/token",
        client_id=client_id,
        client_secret=secret,
    )
    service = build(
        "calendar",
        "v3",
        http=AuthorizedHttp(creds, http=httplib2.Http(timeout=10)),
        client_options={"api_endpoint": f"{base_url}/calendar/v3/"},
        static_discovery=True,
    )
    events = service.events()

    request: Any = events.list(calendarId="primary", singleEvents=True, maxResults=4)
    items: list[dict[str, Any]] = []
    sizes: list[int] = []
    sync_token = None
    while request is not None:
        page = request.execute()
        items.extend(page["items"])
        sizes.append(len(page["items"]))
        sync_token = page.get("nextSyncToken", sync_token)
        request = events.list_next(request, page)

    assert creds.token is not None and creds.token.startswith("ya29.")  # refreshed via /token
    assert len(items) == 17 and len({i["id"] for i in items}) == 17
    assert 0 in sizes  # an empty page that still carried nextPageToken
    assert sync_token is not None

    unchanged = events.list(calendarId="primary", singleEvents=True, syncToken=sync_token).execute()
    assert unchanged["items"] == []
    assert unchanged["nextSyncToken"] == sync_token

    calendars = service.calendarList().list().execute()
    assert [c["id"] for c in calendars["items"]] == [ALICE]

    # The access token expires by the FakeClock; google-auth refreshes on the 401.
    first_token = creds.token
    clock.advance(timedelta(hours=2))
    again = events.list(calendarId="primary", singleEvents=True, syncToken=sync_token).execute()
    assert again["items"] == [] and creds.token != first_token
