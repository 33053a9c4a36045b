"""The push-latency benchmark's changes, and how webhooks are matched to them.

- :func:`plan` picks one calendar per change (a calendar changes at most once, so every
  webhook about it after the change is about that change) and a kind for each, in a
  shuffled, seeded order: ``move`` (a meeting with a bot starts 90 minutes later: expect
  ``bot.updated`` of its bot with the new ``join_at``), ``cancel`` (expect
  ``bot.cancelled`` of its bot), ``new`` (a new meeting with a link: nothing schedules a
  bot for it, so expect ``calendar.sync_events`` of its calendar, the webhook on which a
  tenant fetches new events).
- :func:`drive` makes them through the emulator's control API (``/_emulator/users/…``)
  at a fixed rate, never waiting for one to start the next. A change's time is the
  world's own ``updated`` stamp of the changed event (ms; the emulator runs on the real
  clock), bracketed by the driver's send and answer times.
- :func:`match` pairs the receiver's hits with the changes; :func:`stages` explains each
  matched latency with the timestamps the emulator's pump and the service recorded.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx

KINDS = ("move", "cancel", "new")
EXPECTED = {"move": "bot.updated", "cancel": "bot.cancelled", "new": "calendar.sync_events"}
MOVE_BY = timedelta(minutes=90)
LEAD = timedelta(minutes=2)  # the default bot_lead_time: join_at = start - LEAD


def _iso(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def plan(
    cal_map: Sequence[dict[str, Any]], n: int, mix: dict[str, int], seed: int
) -> list[dict[str, Any]]:
    rng = random.Random(f"push-latency:{seed}")
    cals = [c for c in cal_map if c["meetings"]]
    if n > len(cals):
        raise ValueError(f"{n} changes need as many calendars with meetings; have {len(cals)}")
    rng.shuffle(cals)
    total = sum(mix.values())
    kinds = [k for k in KINDS for _ in range(math.floor(n * mix.get(k, 0) / total))]
    kinds += [k for k in KINDS if mix.get(k)][: n - len(kinds)]  # rounding leftovers
    rng.shuffle(kinds)
    changes = []
    for i, (cal, kind) in enumerate(zip(cals, kinds, strict=False)):
        meeting = cal["meetings"][0]
        change: dict[str, Any] = {
            "i": i,
            "kind": kind,
            "expect": EXPECTED[kind],
            "calendar_id": cal["calendar_id"],
            "email": cal["email"],
            "platform": cal["platform"],
        }
        if kind == "new":
            start = _at(meeting["start"]) + timedelta(hours=5)
            change["key"] = cal["calendar_id"]
            change["body"] = {
                "summary": f"New meeting {i}",
                "start": {"dateTime": _iso(start)},
                "end": {"dateTime": _iso(start + timedelta(minutes=30))},
                "hangoutLink": f"https://meet.google.com/new-{i:04d}-bench",
            }
        else:
            change["key"] = meeting["bot_id"]
            change["platform_id"] = meeting["platform_id"]
            if kind == "move":
                start = _at(meeting["start"]) + MOVE_BY
                change["body"] = {
                    "start": _iso(start),
                    "end": _iso(start + timedelta(minutes=30)),
                }
                change["join_at"] = _iso(start - LEAD)
        changes.append(change)
    return changes


async def _send(client: httpx.AsyncClient, emu: str, change: dict[str, Any]) -> None:
    user = f"{emu}/_emulator/users/{quote(change['email'])}/events"
    if change["kind"] == "new":
        url, body = user, change["body"]
    else:
        event = f"{user}/{quote(change['platform_id'], safe='')}"
        url = f"{event}/move" if change["kind"] == "move" else f"{event}/cancel"
        body = change.get("body", {})
    change["sent"] = time.time()
    try:
        r = await client.post(url, json=body)
        change["answered"] = time.time()
        change["status"] = r.status_code
        if r.status_code == 200:
            change["world"] = _at(r.json()["updated"]).timestamp()
    except httpx.HTTPError as exc:
        change["answered"] = time.time()
        change["status"] = None
        change["error"] = type(exc).__name__
    # The change's time: the world's stamp (ms), never before our send (clock rounding).
    change["at"] = max(change.get("world", change["sent"]), change["sent"])


async def drive(emu: str, changes: list[dict[str, Any]], rate: float) -> float:
    """Make every change, ``rate`` per second; returns when all were answered."""
    loop = asyncio.get_running_loop()
    tasks = []
    async with httpx.AsyncClient(timeout=30.0, trust_env=False) as client:
        start = loop.time() + 0.2
        for i, change in enumerate(changes):
            delay = start + i / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(_send(client, emu, change)))
        await asyncio.gather(*tasks)
    return loop.time() - start


async def collect(
    receiver: str,
    changes: list[dict[str, Any]],
    miss_after: float,
    settle: float,
    hits: list[list[Any]],
) -> None:
    """Fetch the receiver's hits until every change has its webhook (then ``settle`` more
    seconds, for late duplicates) or ``miss_after`` seconds after the last change."""
    wanted = {(c["expect"], c["key"]) for c in changes}
    last = max(c["at"] for c in changes)
    seen: set[tuple[str, str]] = set()
    async with httpx.AsyncClient(timeout=30.0, trust_env=False) as client:
        while True:
            r = await client.get(f"{receiver}/control/results", params={"since": len(hits)})
            r.raise_for_status()
            hits.extend(r.json()["hits"])
            seen.update((h[0], h[1]) for h in hits)
            if wanted <= seen or time.time() > last + miss_after:
                break
            await asyncio.sleep(0.5)
        await asyncio.sleep(settle)
        r = await client.get(f"{receiver}/control/results", params={"since": len(hits)})
        r.raise_for_status()
        hits.extend(r.json()["hits"])


def match(
    changes: list[dict[str, Any]], hits: list[list[Any]], mark: float, miss_after: float
) -> dict[str, Any]:
    """Latency of each change's webhook; misses, duplicates and strays."""
    by_key: dict[tuple[str, str], list[list[Any]]] = {}
    for hit in hits:
        kind, key, _wid, at, _ok, _join = hit
        if at >= mark:
            by_key.setdefault((kind, key), []).append(hit)
    changed_bots = {c["key"] for c in changes if c["kind"] != "new"}
    changed_cals = {c["calendar_id"] for c in changes}
    counts: Counter[str] = Counter()
    for change in changes:
        if change.get("status") != 200:
            counts["change_failed"] += 1
            continue
        mine = [h for h in by_key.get((change["expect"], change["key"]), []) if h[3] >= mark]
        ids = Counter(h[2] for h in mine)
        change["webhooks"] = len(ids)
        change["redelivered"] = sum(n - 1 for n in ids.values())
        first = min(mine, key=lambda h: h[3]) if mine else None
        if first is None or first[3] - change["at"] > miss_after:
            counts["missed"] += 1
            continue
        change["received"] = first[3]
        change["message_id"] = first[2]
        change["latency"] = first[3] - change["at"]
        counts["matched"] += 1
        if first[3] < change["at"]:
            counts["before_change"] += 1
        if not first[4]:
            counts["bad_signature"] += 1
        if change["kind"] == "move" and first[5] != change["join_at"]:
            counts["wrong_join_at"] += 1
        if len(ids) > 1:
            counts["duplicates"] += 1
        if change["redelivered"]:
            counts["redelivered"] += 1
        if change["kind"] != "new":
            sync = by_key.get(("calendar.sync_events", change["calendar_id"]), [])
            if sync:
                change["sync_events_latency"] = min(h[3] for h in sync) - change["at"]
    strays = Counter(
        kind
        for (kind, key), found in by_key.items()
        if (kind.startswith("bot.") and key not in changed_bots)
        or (kind.startswith("calendar.") and key not in changed_cals)
        for _ in found
    )
    wrong_kind = sum(
        len(found)
        for (kind, key), found in by_key.items()
        if kind.startswith("bot.")
        and key in changed_bots
        and not any(c["key"] == key and c["expect"] == kind for c in changes)
    )
    return {"counts": dict(counts), "strays": dict(strays), "wrong_kind": wrong_kind}


def stages(
    changes: list[dict[str, Any]], service: dict[str, Any], emulator: dict[str, Any]
) -> None:
    """Add each matched change's stage timestamps (wall clock) from the service and the
    emulator records; nothing is added where a record is missing."""
    channel_cal: dict[str, str] = {}
    for cal_id, channel_id, resource_id, _status in service.get("channels", []):
        if cal_id:
            channel_cal[channel_id] = cal_id
            if resource_id:
                channel_cal[resource_id] = cal_id
    posts: dict[str, list[list[Any]]] = {}
    for sent, answered, status, _label, key in emulator.get("posts", []):
        for part in (key or "").split(","):
            if part in channel_cal and sent is not None:
                posts.setdefault(channel_cal[part], []).append([sent, answered, status])
    requests: dict[str, list[float]] = {}
    for cal_id, at, _requested in service.get("requests", []):
        requests.setdefault(cal_id, []).append(at)
    syncs: dict[str, list[list[Any]]] = {}
    for cal_id, start, end, *_rest in service.get("syncs", []):
        syncs.setdefault(cal_id, []).append([start, end])
    messages = {m[0]: m for m in service.get("messages", [])}

    def first_after(rows: list[Any], t: float, key: Any = lambda r: r) -> Any:
        later = [r for r in rows if key(r) >= t]
        return min(later, key=key) if later else None

    for c in changes:
        if "received" not in c:
            continue
        cal = c["calendar_id"]
        # Clocks agree across processes, but the world's stamp is ms-rounded: allow 2 ms.
        t = c["at"] - 0.002
        post = first_after(posts.get(cal, []), t, key=lambda r: r[0])
        if post is not None:
            c["ping_sent"], c["ping_answered"] = post[0], post[1]
        accepted = first_after(requests.get(cal, []), t)
        if accepted is not None:
            c["accepted"] = accepted
            sync = first_after(syncs.get(cal, []), accepted, key=lambda r: r[0])
            if sync is not None:
                c["sync_start"], c["sync_end"] = sync
        message = messages.get(c["message_id"])
        if message is not None:
            # [id, type, created, key, status, attempts, delivered at, first attempt at]
            c["outbox"], c["attempted"], c["attempts"] = message[2], message[7], message[5]


STAGES = (
    ("emulator pump: change to ping sent", "at", "ping_sent"),
    ("ping sent to accepted (HTTP + receiver up to request_sync)", "ping_sent", "accepted"),
    ("accepted to sync start (commit, wake, claim)", "accepted", "sync_start"),
    ("sync start to outbox row (token, fetch, plan)", "sync_start", "outbox"),
    ("outbox row to sync end (apply, reconcile, commit, finish)", "outbox", "sync_end"),
    ("sync end to delivery attempt (claim, load)", "sync_end", "attempted"),
    ("delivery attempt to received (sign, POST)", "attempted", "received"),
)
