"""Launching: exactly once, at the right minute, through faults, crashes and racing workers.

Runs on Google and Outlook calendars (the ``platform`` fixture, through ``bot_id``), on
SQLite and PostgreSQL. The tenant's receiver is scripted (500, 429 + Retry-After,
timeouts); the worker is drained after each clock move. Nothing sleeps.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from showup.bots import dispatch
from showup.bots.dispatch import claim_bots, dispatch_bot
from showup.jobs.worker import Worker
from showup.launchers.base import LaunchRequest
from showup.launchers.webhook import WebhookLauncher
from tests.bots.support import (
    TIMEOUT,
    Receiver,
    Reply,
    all_bots,
    at,
    connect,
    event_of,
    get_bot,
    meeting,
    schedule,
    verify,
)

ALICE = "alice@example.com"
JOIN = datetime(2026, 11, 2, 9, 58, tzinfo=UTC)  # 2 minutes before the 10:00 meeting


@pytest.fixture
async def bot_id(
    api: httpx.AsyncClient, world: Any, worker: Any, secret: str, platform: str
) -> str:
    world.add_user(ALICE, name="Alice")
    world.create_event(ALICE, meeting("Planning", "2026-11-02T10:00:00Z", "2026-11-02T11:00:00Z"))
    [cid] = await connect(api, world, ALICE, platform=platform)
    await worker.drain()
    ev = await event_of(api, cid, "Planning")
    r = await schedule(api, ev["id"], "planning", {"bot_name": "Scribe"})
    assert r.status_code == 200, r.text
    await worker.drain()  # bot.scheduled delivered
    return str(r.json()["bots"][0]["bot_id"])


def dispatches(receiver: Receiver) -> list[Any]:
    return receiver.of_type("bot.dispatch")


async def test_server_errors_retry_with_the_same_ids_until_launched(
    api: httpx.AsyncClient, worker: Any, clock: Any, receiver: Receiver, bot_id: str, secret: str
) -> None:
    receiver.answer(Reply(500), Reply(503))
    clock.set(JOIN)
    [first] = [o for o in await worker.drain() if getattr(o, "bot_id", None) == bot_id]
    assert first.result == "retry" and first.attempt == 1
    bot = await get_bot(api, bot_id)
    assert bot["status"] == "dispatching" and "HTTP 500" in bot["error"]
    assert JOIN < at(bot["next_attempt_at"]) <= JOIN + timedelta(seconds=5)

    clock.set(at(bot["next_attempt_at"]))
    await worker.drain()
    bot = await get_bot(api, bot_id)
    assert bot["status"] == "dispatching" and bot["attempts"] == 2
    clock.set(at(bot["next_attempt_at"]))
    await worker.drain()
    bot = await get_bot(api, bot_id)
    assert (bot["status"], bot["attempts"], bot["error"]) == ("dispatched", 3, None)

    sent = dispatches(receiver)
    assert len(sent) == 3
    assert {r.headers["webhook-id"] for r in sent} == {f"dispatch_{bot_id}"}
    assert {verify(secret, r)["data"]["idempotency_key"] for r in sent} == {bot_id}
    assert len({r.body for r in sent}) == 1  # the same message on every attempt


async def test_retry_after_is_honoured(
    api: httpx.AsyncClient, worker: Any, clock: Any, receiver: Receiver, bot_id: str
) -> None:
    receiver.answer(Reply(429, headers={"Retry-After": "40"}))
    clock.set(JOIN)
    await worker.drain()
    bot = await get_bot(api, bot_id)
    assert at(bot["next_attempt_at"]) == JOIN + timedelta(seconds=40)
    clock.set(JOIN + timedelta(seconds=39))
    await worker.drain()
    assert len(dispatches(receiver)) == 1
    clock.set(JOIN + timedelta(seconds=40))
    await worker.drain()
    assert (await get_bot(api, bot_id))["status"] == "dispatched"


async def test_timeouts_until_the_deadline_then_failed_and_announced(
    api: httpx.AsyncClient,
    worker: Any,
    clock: Any,
    receiver: Receiver,
    bot_id: str,
    secret: str,
) -> None:
    receiver.answer(*[TIMEOUT] * 50)
    clock.set(JOIN)
    deadline = JOIN + timedelta(minutes=5)
    for _ in range(50):
        await worker.drain()
        bot = await get_bot(api, bot_id)
        if bot["status"] != "dispatching":
            break
        assert at(bot["next_attempt_at"]) <= deadline
        clock.set(at(bot["next_attempt_at"]))
    assert (bot["status"], bot["status_reason"]) == ("failed", "deadline_passed")
    assert "timeout" in bot["error"]
    assert dispatches(receiver)[-1].at == deadline  # one last try exactly at the deadline
    assert bot["attempts"] == len(dispatches(receiver)) >= 4
    receiver.script.clear()
    await worker.drain()  # delivers bot.failed
    [failed] = receiver.of_type("bot.failed")
    data = verify(secret, failed)["data"]
    assert data["id"] == bot_id and data["status"] == "failed" and "timeout" in data["error"]


async def test_a_retry_due_in_the_last_second_is_made_the_try_at_the_deadline(
    api: httpx.AsyncClient,
    worker: Any,
    clock: Any,
    receiver: Receiver,
    bot_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The jitter puts the retry half a second before the deadline. No retry comes sooner
    # than a second after a try, so from there none would be left for the deadline: the
    # retry is the last try, at the deadline.
    deadline = JOIN + timedelta(minutes=5)
    monkeypatch.setattr(
        dispatch, "backoff", lambda attempt, **_: deadline - JOIN - timedelta(milliseconds=500)
    )
    receiver.answer(TIMEOUT, TIMEOUT)
    clock.set(JOIN)
    await worker.drain()
    bot = await get_bot(api, bot_id)
    assert (bot["status"], at(bot["next_attempt_at"])) == ("dispatching", deadline)
    clock.set(deadline)
    await worker.drain()
    bot = await get_bot(api, bot_id)
    assert (bot["status"], bot["status_reason"]) == ("failed", "deadline_passed")
    assert [r.at for r in dispatches(receiver)] == [JOIN, deadline]


async def test_a_refusal_fails_at_once(
    api: httpx.AsyncClient, worker: Any, clock: Any, receiver: Receiver, bot_id: str
) -> None:
    receiver.answer(Reply(422, body=b'{"error": "cannot join"}'))
    clock.set(JOIN)
    await worker.drain()
    bot = await get_bot(api, bot_id)
    assert (bot["status"], bot["status_reason"]) == ("failed", "rejected")
    assert "HTTP 422" in bot["error"]
    assert "bot.failed" in receiver.types()


async def test_late_start_within_the_deadline_launches(
    api: httpx.AsyncClient, worker: Any, clock: Any, receiver: Receiver, bot_id: str
) -> None:
    # The service was down over the join time; it comes back 3 minutes late.
    clock.set(JOIN + timedelta(minutes=3))
    await worker.drain()
    bot = await get_bot(api, bot_id)
    assert (bot["status"], bot["dispatched_at"]) == ("dispatched", "2026-11-02T10:01:00Z")
    assert len(dispatches(receiver)) == 1


async def test_late_start_after_the_deadline_fails_loudly(
    api: httpx.AsyncClient, worker: Any, clock: Any, receiver: Receiver, bot_id: str
) -> None:
    clock.set(JOIN + timedelta(minutes=6))
    await worker.drain()
    bot = await get_bot(api, bot_id)
    assert (bot["status"], bot["status_reason"]) == ("failed", "deadline_passed")
    assert bot["error"].startswith("missed")
    assert dispatches(receiver) == []  # never launched late past the deadline
    assert "bot.failed" in receiver.types()


async def test_worker_killed_after_claim_retries_with_the_same_key(
    api: httpx.AsyncClient, runtime: Any, worker: Any, clock: Any, receiver: Receiver, bot_id: str
) -> None:
    clock.set(JOIN)
    assert await claim_bots(runtime, "dead-worker", 10) == [bot_id]  # ... and it dies here
    await worker.drain()  # the lease is live: nobody else touches the bot
    assert dispatches(receiver) == []
    bot = await get_bot(api, bot_id)
    assert (bot["status"], bot["attempts"]) == ("dispatching", 1)

    clock.advance(runtime.settings.lease_duration + timedelta(seconds=1))
    await worker.drain()
    bot = await get_bot(api, bot_id)
    assert (bot["status"], bot["attempts"]) == ("dispatched", 2)
    [sent] = dispatches(receiver)
    assert sent.headers["webhook-id"] == f"dispatch_{bot_id}"
    assert sent.json["data"]["idempotency_key"] == bot_id


async def test_worker_killed_after_launch_resends_the_same_message(
    api: httpx.AsyncClient, runtime: Any, worker: Any, clock: Any, receiver: Receiver, bot_id: str
) -> None:
    """The launch reached the tenant but the worker died before recording it: the retry
    carries the same webhook-id and idempotency key, so the tenant starts one bot."""
    clock.set(JOIN)
    [claimed] = await claim_bots(runtime, "dead-worker", 10)
    [bot] = await all_bots(runtime)
    request = LaunchRequest(
        bot_id=bot.id,
        tenant_id=bot.tenant_id,
        deduplication_key=bot.deduplication_key,
        meeting_url=bot.meeting_url,
        meeting_platform=bot.meeting_platform,
        join_at=bot.join_at,
        deadline=bot.deadline,
        bot_config=bot.bot_config,
        events=(),
        attempt=1,
    )
    await WebhookLauncher(runtime).launch(request)  # reached the tenant; then the crash
    clock.advance(runtime.settings.lease_duration + timedelta(seconds=1))
    await worker.drain()
    first, second = dispatches(receiver)
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == f"dispatch_{claimed}"
    assert first.json["data"]["idempotency_key"] == second.json["data"]["idempotency_key"]
    assert (await get_bot(api, bot_id))["status"] == "dispatched"
    # The dead worker's late result is fenced off by the lease.
    outcome = await dispatch_bot(runtime, bot_id, "dead-worker")
    assert outcome.result == "skipped"


async def test_two_workers_racing_never_launch_a_bot_twice(
    api: httpx.AsyncClient,
    runtime: Any,
    world: Any,
    worker: Any,
    clock: Any,
    receiver: Receiver,
    secret: str,
    platform: str,
) -> None:
    world.add_user(ALICE, name="Alice")
    for i in range(8):
        world.create_event(
            ALICE, meeting(f"Call {i}", "2026-11-02T10:00:00Z", "2026-11-02T10:30:00Z")
        )
    [cid] = await connect(api, world, ALICE, platform=platform)
    await worker.drain()
    for i in range(8):
        ev = await event_of(api, cid, f"Call {i}")
        assert (await schedule(api, ev["id"], f"call-{i}")).status_code == 200
    await worker.drain()
    receiver.requests.clear()
    clock.set(JOIN)
    workers = [Worker(runtime, owner=f"w{i}") for i in range(4)]
    results = await asyncio.gather(*(w.drain() for w in workers))
    launched = [
        o.bot_id for batch in results for o in batch if getattr(o, "result", None) == "dispatched"
    ]
    assert len(launched) == len(set(launched)) == 8
    sent = dispatches(receiver)
    assert len(sent) == 8 and len({r.headers["webhook-id"] for r in sent}) == 8
    assert {b.status for b in await all_bots(runtime)} == {"dispatched"}
