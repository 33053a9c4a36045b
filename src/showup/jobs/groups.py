"""Group commit for job outcomes: outcomes waiting together are written in one transaction.

The bots kind (``bots/dispatcher.py``) and the webhooks kind (``webhooks/delivery.py``)
both end a job by writing its outcome. Under a burst, on SQLite's single writer, a
transaction per outcome would queue them all; so each job queues its outcome and waits
its turn on a FIFO lock, and the first to get the turn writes every outcome queued by
then (grouped by lease owner, since each write fences on its owner's leases); the others
find theirs written. A lone outcome is written at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class GroupWriter(Generic[Item, Result]):
    """Writes items queued together in one call of :meth:`_write` per lease owner.

    Subclasses implement :meth:`_write` (one transaction for all ``items`` of one owner,
    a result per item, in order). Should a group's write fail (one bad row, say), its
    items are written one by one, so one bad row fails only its own job, as without
    grouping.
    """

    # What the waiting jobs are told when the job writing their group was cancelled.
    lost = "outcome not recorded"

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._queue: list[tuple[str, Item, asyncio.Future[Result]]] = []

    async def _write(self, owner: str, items: Sequence[Item]) -> list[Result]:
        raise NotImplementedError

    async def record(self, owner: str, item: Item, linger: float = 0.0) -> Result:
        """Queue ``item`` and return its result once written. With ``linger``, first wait
        up to that many seconds for another job's write to take it along, so that items
        finishing close together share a transaction even without a burst."""
        done: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._queue.append((owner, item, done))
        if linger > 0:
            await asyncio.wait([done], timeout=linger)
        async with self._lock:
            if not done.done():
                group, self._queue = self._queue, []
                try:
                    await self._write_group(group)
                finally:
                    for _, _, waiting in group:
                        if not waiting.done():  # the writing job was cancelled
                            waiting.set_exception(RuntimeError(self.lost))
        return done.result()

    async def _write_group(self, group: list[tuple[str, Item, asyncio.Future[Result]]]) -> None:
        by_owner: dict[str, list[tuple[Item, asyncio.Future[Result]]]] = {}
        for owner, item, done in group:
            by_owner.setdefault(owner, []).append((item, done))
        for owner, items in by_owner.items():
            try:
                results = await self._write(owner, [item for item, _ in items])
            except Exception as exc:
                if len(items) == 1:
                    items[0][1].set_exception(exc)
                    continue
                for item, done in items:
                    try:
                        [result] = await self._write(owner, [item])
                    except Exception as one:
                        done.set_exception(one)
                    else:
                        done.set_result(result)
                continue
            for (_, done), result in zip(items, results, strict=True):
                done.set_result(result)
