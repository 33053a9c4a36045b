"""``POST /push/google``: what is accepted, refused and ignored (PROTOCOLS §1.5,
DESIGN invariant 8). Notifications are sent by hand here, with the headers Google sends."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from showup.jobs.worker import Worker
from showup.push.secrets import channel_token, new_channel_id
from tests.push.support import (
    ALICE,
    Pings,
    calendar,
    channels,
    connect,
    counting_sql,
    live_channels,
    ping_headers,
)

URL = "http://showup.test/push/google"


async def _open(
    api: httpx.AsyncClient, world: Any, worker: Worker, clock: Any, pings: Pings
) -> tuple[str, str, str]:
    """A connected calendar on the 24 h schedule; (calendar id, channel id, token)."""
    world.add_user(ALICE, name="Alice")
    cid = await connect(api, world)
    await worker.drain()
    await pings.deliver()
    clock.advance(timedelta(minutes=5))
    await worker.drain()
    [remote] = live_channels(world)
    assert remote.token is not None
    return cid, remote.id, remote.token


async def test_wrong_or_missing_token_is_refused_and_logged_without_secrets(
    api: httpx.AsyncClient,
    world: Any,
    worker: Worker,
    clock: Any,
    runtime: Any,
    pings: Pings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    cid, channel_id, token = await _open(api, world, worker, clock, pings)
    before = (await calendar(runtime, cid)).next_sync_at
    caplog.set_level(logging.INFO, logger="showup.push")
    for wrong in ("not-the-token", token[:-1], None):
        r = await pings.client.post(URL, headers=ping_headers(channel_id, wrong, number=99))
        assert r.status_code == 401 and r.json()["code"] == "invalid_channel_token"
    assert (await calendar(runtime, cid)).next_sync_at == before
    assert "wrong channel token" in caplog.text
    assert token not in caplog.text and "not-the-token" not in caplog.text


async def test_sync_state_is_acknowledged_and_ignored(
    api: httpx.AsyncClient, world: Any, worker: Worker, clock: Any, runtime: Any, pings: Pings
) -> None:
    cid, channel_id, token = await _open(api, world, worker, clock, pings)
    before = await calendar(runtime, cid)
    headers = ping_headers(channel_id, token, state="sync", number=5000)
    assert (await pings.client.post(URL, headers=headers)).status_code == 200
    after = await calendar(runtime, cid)
    assert (after.next_sync_at, after.sync_requested_at) == (before.next_sync_at, None)
    assert await worker.drain() == []


async def test_not_exists_requests_a_sync_like_exists(
    api: httpx.AsyncClient, world: Any, worker: Worker, clock: Any, runtime: Any, pings: Pings
) -> None:
    cid, channel_id, token = await _open(api, world, worker, clock, pings)
    headers = ping_headers(channel_id, token, state="not_exists", number=5000)
    assert (await pings.client.post(URL, headers=headers)).status_code == 200
    assert (await calendar(runtime, cid)).next_sync_at == clock.now()


async def test_unknown_channels_get_200_and_are_ignored(
    api: httpx.AsyncClient,
    world: Any,
    worker: Worker,
    clock: Any,
    runtime: Any,
    pings: Pings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    cid, _, _ = await _open(api, world, worker, clock, pings)
    caplog.set_level(logging.INFO, logger="showup.push")
    forged_ours = new_channel_id(cid)  # looks like ours, but the token does not prove it
    for channel_id, token in (("someone-elses", "tok"), (forged_ours, "tok"), (forged_ours, None)):
        r = await pings.client.post(URL, headers=ping_headers(channel_id, token))
        assert r.status_code == 200  # so that Google stops retrying
    assert len(await channels(runtime)) == 1
    assert (await calendar(runtime, cid)).sync_requested_at is None
    assert "unknown channel 'someone-elses' ignored" in caplog.text


async def test_a_stray_channel_of_ours_is_stopped(
    api: httpx.AsyncClient, world: Any, worker: Worker, clock: Any, runtime: Any, pings: Pings
) -> None:
    """A channel Google opened but we never recorded (a crash before our commit)."""
    cid, _, _ = await _open(api, world, worker, clock, pings)
    cal = await calendar(runtime, cid)
    stray_id = new_channel_id(cid)
    provider = runtime.provider("google_calendar")
    creds_token = await _access_token(runtime, cal)
    await provider.watch(
        creds_token,
        "primary",
        stray_id,
        "http://showup.test/push/google",
        channel_token(runtime.settings.master_key_bytes(), stray_id),
        timedelta(days=7),
    )
    assert len(live_channels(world)) == 2
    assert [s for s, _ in await pings.deliver()] == ["sync"]  # the stray's first message
    rows = await channels(runtime, cid)
    [stray] = [r for r in rows if r.channel_id == stray_id]
    assert (stray.status, stray.resource_id is not None) == ("stopping", True)
    await worker.drain()
    assert [c.id for c in live_channels(world)] == [r.channel_id for r in rows if r is not stray]
    assert [r.status for r in await channels(runtime, cid) if r.channel_id == stray_id] == [
        "stopped"
    ]


async def _access_token(runtime: Any, cal: Any) -> Any:
    from showup.calendars.service import credentials

    creds = credentials(cal, runtime.vault)
    grant = await runtime.provider("google_calendar").refresh_access_token(creds)

    async def token(force: bool = False) -> str:
        return str(grant.token)

    return token


async def test_bodies_and_malformed_headers_are_refused(
    api: httpx.AsyncClient,
    world: Any,
    worker: Worker,
    clock: Any,
    runtime: Any,
    pings: Pings,
) -> None:
    cid, channel_id, token = await _open(api, world, worker, clock, pings)
    raw = pings.client
    good = ping_headers(channel_id, token, number=5000)
    assert (await raw.post(URL, headers=good, content=b"{}")).status_code == 413
    assert (await raw.post(URL, headers=good, content=b"x" * 2_000_000)).status_code == 413

    async def chunks() -> AsyncIterator[bytes]:
        yield b"hidden"

    assert (await raw.post(URL, headers=good, content=chunks())).status_code == 413
    bad_length = {**good, "Content-Length": "zero"}
    assert (await raw.post(URL, headers=bad_length)).status_code == 400
    for name, value in (
        ("X-Goog-Channel-ID", None),
        ("X-Goog-Channel-ID", "x" * 65),
        ("X-Goog-Resource-State", "add"),
        ("X-Goog-Resource-State", None),
        ("X-Goog-Message-Number", "seven"),
        ("X-Goog-Resource-ID", None),
        ("X-Goog-Channel-Token", "t" * 257),
    ):
        headers = {k: v for k, v in good.items() if k != name}
        if value is not None:
            headers[name] = value
        r = await raw.post(URL, headers=headers)
        assert r.status_code == 400, (name, value, r.text)
        assert r.json()["code"] == "invalid_notification"
    assert (await calendar(runtime, cid)).sync_requested_at is None
    # Not under the API: no key needed, but other methods are not served.
    assert (await raw.get(URL)).status_code == 405
    assert (await raw.post(URL, headers=good)).status_code == 200


async def test_an_accepted_change_takes_one_transaction_of_two_statements(
    api: httpx.AsyncClient, world: Any, worker: Worker, clock: Any, runtime: Any, pings: Pings
) -> None:
    """The channel takes the message number and hands back its token in one statement;
    the sync request is the other."""
    cid, channel_id, token = await _open(api, world, worker, clock, pings)
    with counting_sql(runtime) as seen:
        r = await pings.client.post(URL, headers=ping_headers(channel_id, token, number=5000))
    assert r.status_code == 200
    assert seen == {"transactions": 1, "statements": 2}
    assert (await calendar(runtime, cid)).sync_requested_at == clock.now()
    [row] = await channels(runtime, cid)
    assert (row.last_message_number, row.last_notification_at) == (5000, clock.now())


async def test_a_refused_notification_changes_nothing_on_the_channel(
    api: httpx.AsyncClient, world: Any, worker: Worker, clock: Any, runtime: Any, pings: Pings
) -> None:
    """A wrong token with a newer message number is refused and rolled back: the number it
    carried does not make the channel's next real message look stale."""
    cid, channel_id, token = await _open(api, world, worker, clock, pings)
    [before] = await channels(runtime, cid)
    clock.advance(timedelta(seconds=1))
    r = await pings.client.post(URL, headers=ping_headers(channel_id, "wrong", number=9000))
    assert r.status_code == 401
    [after] = await channels(runtime, cid)
    assert (after.last_message_number, after.last_notification_at) == (
        before.last_message_number,
        before.last_notification_at,
    )
    assert (await calendar(runtime, cid)).sync_requested_at is None
    r = await pings.client.post(URL, headers=ping_headers(channel_id, token, number=8000))
    assert r.status_code == 200
    assert (await calendar(runtime, cid)).sync_requested_at == clock.now()
    # And the old number again is stale: acknowledged, nothing requested or moved.
    await worker.drain()
    r = await pings.client.post(URL, headers=ping_headers(channel_id, token, number=8000))
    assert r.status_code == 200
    assert (await calendar(runtime, cid)).sync_requested_at is None
    [row] = await channels(runtime, cid)
    assert row.last_message_number == 8000
