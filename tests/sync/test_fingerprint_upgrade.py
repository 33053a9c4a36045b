"""The first sync after an upgrade from version 1, 2 or 3 fingerprints (earlier releases)
moves ``updated_at`` only for what really changed, on both providers and both databases.

The database is turned into one an earlier release wrote: after a sync, every row gets the
version 1 (2, 3) fingerprint of its event, as that release computed and stored it. Version 3
is still current for Microsoft's events (decoded payloads); Google's are now version 4 (the
provider's own text), so for them version 3 is an upgrade too.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from showup.db.models import Event
from showup.providers import google_normalize, microsoft_normalize
from showup.providers.base import RemoteEvent
from showup.sync.plan import (
    FINGERPRINT_VERSION,
    FINGERPRINT_VERSION_TEXT,
    fingerprint_v1,
    fingerprint_v2,
    fingerprint_v3,
)
from tests.sync.helpers import all_events
from tests.sync.test_sync_e2e import ALICE, connect_alice, seed


def _remote(raw: dict[str, Any], platform: str) -> RemoteEvent:
    if platform == "microsoft_outlook":
        ev = microsoft_normalize.normalize_item(raw, ALICE)
    else:
        ev = google_normalize.normalize_item(raw, "Europe/Berlin")  # Alice's calendar zone
    assert isinstance(ev, RemoteEvent)
    return ev


OldFingerprint = Callable[[RemoteEvent], str]

# Each earlier version's fingerprint function, and its fingerprints' prefix.
OLD_VERSIONS = pytest.mark.parametrize(
    ("old", "prefix"),
    [(fingerprint_v1, ""), (fingerprint_v2, "2:"), (fingerprint_v3, "3:")],
    ids=["v1", "v2", "v3"],
)
# The version each platform's events are fingerprinted with now.
CURRENT = {"google_calendar": FINGERPRINT_VERSION_TEXT, "microsoft_outlook": FINGERPRINT_VERSION}


async def _downgrade_fingerprints(
    runtime: Any, platform: str, old: OldFingerprint, prefix: str
) -> int:
    async with runtime.sessions() as session:
        rows = (await session.scalars(select(Event).where(Event.is_deleted.is_(False)))).all()
        for row in rows:
            row.fingerprint = old(_remote(row.raw, platform))
            assert row.fingerprint.startswith(prefix) and ":" not in row.fingerprint[len(prefix) :]
        await session.commit()
    return len(rows)


async def _fingerprints(runtime: Any) -> list[str]:
    async with runtime.sessions() as session:
        return list((await session.scalars(select(Event.fingerprint))).all())


@OLD_VERSIONS
async def test_full_sync_after_upgrade_refreshes_fingerprints_without_moving_updated_at(
    api: httpx.AsyncClient,
    world: Any,
    worker: Any,
    clock: Any,
    runtime: Any,
    platform: str,
    old: OldFingerprint,
    prefix: str,
) -> None:
    ids = seed(world)
    conn, cid = await connect_alice(api, world, platform)
    await worker.drain()
    assert await _downgrade_fingerprints(runtime, platform, old, prefix) == 13
    before = {e["platform_id"]: e for e in await all_events(api, calendar_id=cid)}

    clock.advance(timedelta(minutes=5))
    zoom = conn.pid(ALICE, ids["zoom"])
    world.update_event(ALICE, ids["zoom"], {"summary": "Zoom call (renamed)"})
    world.expire_sync_tokens()  # a full sync: every stored event meets its remote copy
    clock.advance(timedelta(minutes=5))
    [outcome] = await worker.drain()
    assert outcome.result == "synced" and outcome.full
    assert (outcome.inserted, outcome.updated, outcome.deleted) == (0, 1, 0)
    assert outcome.changed_event_ids == [before[zoom]["id"]]

    after = {e["platform_id"]: e for e in await all_events(api, calendar_id=cid)}
    assert set(after) == set(before)
    for pid, ev in before.items():
        if pid == zoom:
            assert after[pid]["updated_at"] > ev["updated_at"]
            assert after[pid]["title"] == "Zoom call (renamed)"
        else:
            assert after[pid] == ev  # not rewritten: same updated_at, same everything
    assert all(fp.startswith(CURRENT[platform] + ":") for fp in await _fingerprints(runtime))

    # And from then on a full sync of unchanged events changes nothing.
    world.expire_sync_tokens()
    clock.advance(timedelta(minutes=5))
    [outcome] = await worker.drain()
    assert outcome.full and (outcome.inserted, outcome.updated, outcome.deleted) == (0, 0, 0)
    assert {e["platform_id"]: e for e in await all_events(api, calendar_id=cid)} == after


@OLD_VERSIONS
async def test_incremental_sync_after_upgrade_updates_what_changed(
    api: httpx.AsyncClient,
    world: Any,
    worker: Any,
    clock: Any,
    runtime: Any,
    platform: str,
    old: OldFingerprint,
    prefix: str,
) -> None:
    ids = seed(world)
    conn, cid = await connect_alice(api, world, platform)
    await worker.drain()
    await _downgrade_fingerprints(runtime, platform, old, prefix)
    before = {e["platform_id"]: e for e in await all_events(api, calendar_id=cid)}

    clock.advance(timedelta(minutes=5))
    world.update_event(ALICE, ids["nolink"], {"description": "now with an agenda"})
    clock.advance(timedelta(minutes=5))
    [outcome] = await worker.drain()
    assert not outcome.full and outcome.updated == 1
    nolink = conn.pid(ALICE, ids["nolink"])
    after = {e["platform_id"]: e for e in await all_events(api, calendar_id=cid)}
    assert after[nolink]["updated_at"] > before[nolink]["updated_at"]
    assert {pid: e for pid, e in after.items() if pid != nolink} == {
        pid: e for pid, e in before.items() if pid != nolink
    }
