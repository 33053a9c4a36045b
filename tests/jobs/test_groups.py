"""GroupWriter: items queued together are written in one call per owner (jobs/groups.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from showup.jobs.groups import GroupWriter


class Doubler(GroupWriter[int, int]):
    def __init__(self, bad: int | None = None) -> None:
        super().__init__()
        self.calls: list[tuple[str, list[int]]] = []
        self.bad = bad

    async def _write(self, owner: str, items: Sequence[int]) -> list[int]:
        self.calls.append((owner, list(items)))
        if self.bad in items:
            raise ValueError(f"bad item {self.bad}")
        return [2 * i for i in items]


async def _queued(writer: Doubler, n: int) -> None:
    async with asyncio.timeout(5):
        while len(writer._queue) < n:  # noqa: ASYNC110 - no event to wait on
            await asyncio.sleep(0)


async def test_items_waiting_together_are_written_in_one_call_per_owner() -> None:
    writer = Doubler()
    async with writer._lock:  # a write under way: the items queue up
        jobs = asyncio.gather(writer.record("a", 1), writer.record("b", 2), writer.record("a", 3))
        await _queued(writer, 3)
    assert await jobs == [2, 4, 6]
    assert writer.calls == [("a", [1, 3]), ("b", [2])]


async def test_a_lone_item_is_written_at_once() -> None:
    writer = Doubler()
    assert await writer.record("a", 5) == 10
    assert writer.calls == [("a", [5])]


async def test_a_failed_group_is_written_one_by_one_and_fails_only_its_bad_item() -> None:
    writer = Doubler(bad=2)
    async with writer._lock:
        jobs = [asyncio.ensure_future(writer.record("a", i)) for i in (1, 2, 3)]
        await _queued(writer, 3)
    assert await jobs[0] == 2 and await jobs[2] == 6
    with pytest.raises(ValueError, match="bad item 2"):
        await jobs[1]
    assert writer.calls == [("a", [1, 2, 3]), ("a", [1]), ("a", [2]), ("a", [3])]


async def test_lingering_items_share_a_write() -> None:
    writer = Doubler()
    first = asyncio.ensure_future(writer.record("a", 1, linger=5))
    await _queued(writer, 1)
    # The second comes without lingering and takes the first along in its write.
    assert await writer.record("a", 2) == 4
    assert await first == 2
    assert writer.calls == [("a", [1, 2])]
