"""The bots job kind's Dispatcher: claims prepare the launches, outcomes are written in groups.

Per bot the steps and the fencing are dispatch_bot's (``test_dispatch.py`` runs through
the Dispatcher too, via the worker); here, what the sharing changes: how many
transactions, the next due time from the claim, and the fallbacks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from showup.bots.dispatch import DispatchOutcome
from showup.bots.dispatcher import LOOKAHEAD, Dispatcher, _GroupRecorder, _Turns
from tests.bots.support import Receiver, all_bots, connect, event_of, meeting, schedule
from tests.support.helpers import counting_transactions, until

ALICE = "alice@example.com"
JOIN = datetime(2026, 11, 2, 9, 58, tzinfo=UTC)


@pytest.fixture
async def bot_ids(
    api: httpx.AsyncClient, world: Any, worker: Any, runtime: Any, secret: str
) -> list[str]:
    """Four bots joining at 09:58, one at 10:58."""
    world.add_user(ALICE, name="Alice")
    times = ["10:00"] * 4 + ["11:00"]
    for i, hhmm in enumerate(times):
        world.create_event(
            ALICE,
            meeting(
                f"Call {i}",
                f"2026-11-02T{hhmm}:00Z",
                f"2026-11-02T{hhmm[:2]}:30:00Z",
                link=f"https://meet.google.com/abc-defg-hi{chr(97 + i)}",
            ),
        )
    [cid] = await connect(api, world, ALICE)
    await worker.drain()
    for i in range(len(times)):
        ev = await event_of(api, cid, f"Call {i}")
        assert (await schedule(api, ev["id"], f"call-{i}")).status_code == 200
    await worker.drain()
    return [b.id for b in await all_bots(runtime)]


async def test_a_claimed_batch_launches_with_two_transactions(
    runtime: Any, clock: Any, receiver: Receiver, bot_ids: list[str]
) -> None:
    dispatcher = Dispatcher(runtime)
    clock.set(JOIN)
    receiver.requests.clear()
    with counting_transactions(runtime) as begun:
        ids, due = await dispatcher.claim_next(runtime, "w", 10)
        assert len(ids) == 4
        # Room to spare: the claim also tells when to claim next, from its transaction:
        # the next join time, less the look-ahead.
        assert due == JOIN + timedelta(hours=1) - LOOKAHEAD
        results = await asyncio.gather(*(dispatcher.run(runtime, i, "w") for i in ids))
    assert {r.result for r in results} == {"dispatched"}
    assert sorted(r.bot_id for r in results) == sorted(ids)
    # One for the claim (with what the launches need), one or more for the outcomes:
    # fewer than the per-bot path's three per bot.
    assert 2 <= len(begun) <= 1 + len(ids)
    sent = receiver.of_type("bot.dispatch")
    assert sorted(r.json["data"]["bot_id"] for r in sent) == sorted(ids)
    launched = {b.id: b for b in await all_bots(runtime) if b.id in ids}
    assert {b.status for b in launched.values()} == {"dispatched"}


async def test_run_forever_claims_a_little_ahead_and_launches_at_the_due_time(
    runtime: Any, clock: Any, receiver: Receiver, bot_ids: list[str]
) -> None:
    dispatcher = Dispatcher(runtime)
    clock.set(JOIN - LOOKAHEAD / 2)
    receiver.requests.clear()
    assert await dispatcher.claim(runtime, "w", 10) == []  # drain's claim: due now only
    ids, due = await dispatcher.claim_next(runtime, "w", 10)
    assert len(ids) == 4 and due == JOIN + timedelta(hours=1) - LOOKAHEAD
    assert {b.status for b in await all_bots(runtime) if b.id in ids} == {"dispatching"}
    assert receiver.of_type("bot.dispatch") == []  # claimed, prepared, not launched yet
    # Each job waits for the join time (the FakeClock's sleep moves it there), then launches.
    results = await asyncio.gather(*(dispatcher.run(runtime, i, "w") for i in ids))
    assert {r.result for r in results} == {"dispatched"}
    assert [r.at for r in receiver.of_type("bot.dispatch")] == [JOIN] * 4


async def test_a_full_claim_does_not_look_ahead(
    runtime: Any, clock: Any, bot_ids: list[str]
) -> None:
    clock.set(JOIN)
    ids, due = await Dispatcher(runtime).claim_next(runtime, "w", 4)
    assert len(ids) == 4 and due is None


async def test_a_launch_whose_deadline_passed_after_the_claim_is_decided_afresh(
    runtime: Any, clock: Any, receiver: Receiver, bot_ids: list[str]
) -> None:
    dispatcher = Dispatcher(runtime)
    clock.set(JOIN + timedelta(minutes=4, seconds=59))
    ids = await dispatcher.claim(runtime, "w", 1)
    clock.advance(timedelta(seconds=2))  # the deadline (join + 5 minutes) passed meanwhile
    [result] = [await dispatcher.run(runtime, i, "w") for i in ids]
    assert result.result == "failed" and "deadline" in (result.error or "")
    assert receiver.of_type("bot.dispatch") == []


async def test_a_bot_claimed_elsewhere_runs_the_per_bot_path(
    runtime: Any, clock: Any, bot_ids: list[str]
) -> None:
    from showup.bots.dispatch import claim_bots

    clock.set(JOIN)
    [first, *_] = await claim_bots(runtime, "w", 1)  # not through this dispatcher
    result = await Dispatcher(runtime).run(runtime, first, "w")
    assert result.result == "dispatched"


class _FailingGroups(_GroupRecorder):
    """Fails every write of more than one outcome, like a group with one bad row."""

    failed: list[int]

    async def _write(self, owner: str, attempts: Sequence[Any]) -> list[DispatchOutcome]:
        if len(attempts) > 1:
            self.failed.append(len(attempts))
            raise RuntimeError("group write failed")
        return await super()._write(owner, attempts)


async def test_outcomes_waiting_together_are_written_as_one_group(
    runtime: Any, clock: Any, bot_ids: list[str]
) -> None:
    dispatcher = Dispatcher(runtime)
    recorder = dispatcher._recorder
    clock.set(JOIN)
    ids = await dispatcher.claim(runtime, "w", 10)
    with counting_transactions(runtime) as begun:
        async with recorder._lock:  # a write under way: the four outcomes queue up
            jobs = asyncio.gather(*(dispatcher.run(runtime, i, "w") for i in ids))
            await until(lambda: len(recorder._queue) == 4)
        results = await jobs
    assert [r.result for r in results] == ["dispatched"] * 4
    assert len(begun) == 1  # one transaction for the four


async def test_a_failed_group_is_written_one_by_one(
    runtime: Any, clock: Any, bot_ids: list[str]
) -> None:
    dispatcher = Dispatcher(runtime)
    recorder = dispatcher._recorder = _FailingGroups(runtime, dispatcher._turns)
    recorder.failed = []
    clock.set(JOIN)
    ids = await dispatcher.claim(runtime, "w", 10)
    async with recorder._lock:
        jobs = asyncio.gather(*(dispatcher.run(runtime, i, "w") for i in ids))
        await until(lambda: len(recorder._queue) == 4)
    results = await jobs
    assert recorder.failed == [4]
    assert [r.result for r in results] == ["dispatched"] * 4
    assert {b.status for b in await all_bots(runtime) if b.id in ids} == {"dispatched"}


async def test_on_sqlite_a_waiting_claim_writes_before_waiting_groups() -> None:
    turns = _Turns(enabled=True)
    order: list[str] = []

    async def take(name: str, claim: bool) -> None:
        async with turns.turn(claim=claim):
            order.append(name)

    async with turns.turn(claim=False):  # a group write under way
        waiting = [
            asyncio.create_task(take("group", False)),
            asyncio.create_task(take("claim", True)),
        ]
        await asyncio.sleep(0)  # both are waiting now
    await asyncio.gather(*waiting)
    assert order == ["claim", "group"]
