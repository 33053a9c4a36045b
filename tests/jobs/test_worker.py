"""Two workers over one database never sync the same calendar at once (leases)."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import replace
from typing import Any

import httpx

from showup.jobs.kinds import default_kinds
from showup.jobs.worker import Worker
from showup.sync.runner import SyncOutcome
from tests.sync.helpers import Connector


async def test_two_workers_split_the_work_without_overlap(
    api: httpx.AsyncClient, world: Any, runtime: Any
) -> None:
    conn = Connector(api, world)
    ids = []
    for i in range(12):
        email = f"user{i}@example.com"
        world.add_user(email, time_zone="UTC")
        world.create_event(
            email,
            {
                "summary": f"Meeting {i}",
                "start": {"dateTime": "2026-11-03T10:00:00Z"},
                "end": {"dateTime": "2026-11-03T11:00:00Z"},
                "hangoutLink": "https://meet.google.com/abc-defg-hij",
            },
        )
        ids.append(await conn.connect(email))
    # Small concurrency so both workers must come back for more.
    kinds = [replace(k, concurrency=2) for k in default_kinds(runtime)]
    a = Worker(runtime, owner="worker-a", kinds=kinds)
    b = Worker(runtime, owner="worker-b", kinds=kinds)
    got_a, got_b = await asyncio.gather(a.drain(), b.drain())
    synced = [
        o.calendar_id
        for o in [*got_a, *got_b]
        if isinstance(o, SyncOutcome) and o.result == "synced"
    ]
    assert Counter(synced) == Counter(ids)  # every calendar exactly once
    listed = (await api.get("/api/v2/calendar-events/", params={"page_size": 100})).json()
    assert len(listed["results"]) == 12
