"""The official google-api-python-client merely paging the benchmark calendars (a child of
``bench.ingest``): the floor a full sync is compared against.

Per calendar: google-auth refreshes the access token through the emulator's ``/token`` (as
our sync does), then ``events.list`` with our full sync's parameters (``singleEvents=true``,
``timeMin``/``timeMax`` = 1 day back to 28 days ahead, ``maxResults`` = our page size) and
``list_next`` until a page carries ``nextSyncToken``. Items are parsed (the client does
that) and counted, nothing else. ``threads=1`` pages sequentially, as the sync library is
meant to be used; ``threads=N`` spreads calendars over N threads, each with its own
discovery client and httplib2 connection (neither is thread-safe).

The discovery clients are built before the clock starts: building one per calendar would
charge the client ~3 ms of discovery parsing per calendar that is not paging.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httplib2  # type: ignore[import-untyped]
from google.oauth2.credentials import Credentials
from google_auth_httplib2 import AuthorizedHttp  # type: ignore[import-untyped]
from googleapiclient.discovery import build

from bench.common import maxrss_kib, peak_kib, reset_peak, rss_kib, write_json

# Far more pages than any benchmark calendar has: a server that never ends paging must not
# keep the benchmark running.
_MAX_PAGES = 10_000


def _rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class _Pager:
    def __init__(self, cfg: dict[str, Any], threads: int) -> None:
        self.cfg = cfg
        base = cfg["base_url"]
        self.token_uri = f"{base}/token"
        self.clients = [self._client(base) for _ in range(threads)]
        self._free = list(self.clients)
        self._lock = threading.Lock()
        self._local = threading.local()
        now = datetime.now(UTC)
        self.params = {
            "calendarId": "primary",
            "singleEvents": True,
            "timeMin": _rfc3339(now - timedelta(days=1)),
            "timeMax": _rfc3339(now + timedelta(days=28)),
            "maxResults": cfg["page_size"],
        }

    @staticmethod
    def _client(base: str) -> tuple[Any, httplib2.Http]:
        service = build(
            "calendar",
            "v3",
            http=httplib2.Http(timeout=60),
            client_options={"api_endpoint": f"{base}/calendar/v3/"},
            static_discovery=True,
            cache_discovery=False,
        )
        return service, httplib2.Http(timeout=60)

    def _mine(self) -> tuple[Any, httplib2.Http]:
        mine: tuple[Any, httplib2.Http] | None = getattr(self._local, "client", None)
        if mine is None:
            with self._lock:
                mine = self._free.pop()
            self._local.client = mine
        return mine

    def page(self, user: tuple[str, str]) -> tuple[int, int, int]:
        """Page one calendar; return (items, distinct ids, pages)."""
        service, http = self._mine()
        creds = Credentials(  # type: ignore[no-untyped-call]
            token=None,
            refresh_token=user[1],
            token_uri=self.token_uri,
            client_id=self.cfg["client_id"],
            client_secret=self.cfg["client_secret"],
        )
        authed = AuthorizedHttp(creds, http=http)
        events = service.events()
        request = events.list(**self.params)
        items = 0
        ids: set[str] = set()
        pages = 0
        sync_token = None
        while request is not None and pages < _MAX_PAGES:
            response = request.execute(http=authed)
            pages += 1
            page = response.get("items", [])
            items += len(page)
            ids.update(item["id"] for item in page)
            sync_token = response.get("nextSyncToken", sync_token)
            request = events.list_next(request, response)
        if sync_token is None:
            raise RuntimeError(f"{user[0]}: paging ended without nextSyncToken")
        return items, len(ids), pages


def measure(cfg: dict[str, Any]) -> dict[str, Any]:
    threads = cfg["threads"]
    users: list[tuple[str, str]] = [(u[0], u[1]) for u in cfg["users"]]
    pager = _Pager(cfg, threads)
    baseline = rss_kib()
    peak_reset = reset_peak()
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    if threads == 1:
        counts = [pager.page(u) for u in users]
    else:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            counts = list(pool.map(pager.page, users))
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    peak = peak_kib()
    items = sum(c[0] for c in counts)
    expected = len(users) * cfg["events_per_user"]
    problems = []
    if items != expected:
        problems.append(f"{items} items paged, expected {expected}")
    if any(c[1] != c[0] for c in counts):
        problems.append("duplicate ids within a calendar")
    return {
        "threads": threads,
        "elapsed_s": elapsed,
        "cpu_s": cpu,
        "items": items,
        "items_per_s": items / elapsed,
        "pages": sum(c[2] for c in counts),
        "rss_baseline_mib": baseline / 1024,
        "rss_peak_mib": peak / 1024,
        "rss_increase_mib": (peak - baseline) / 1024 if peak_reset else None,
        "ru_maxrss_mib": maxrss_kib() / 1024,
        "problems": problems,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.ingest_bare")
    p.add_argument("--config", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    result = measure(json.loads(args.config.read_text()))
    result["pid"] = os.getpid()
    write_json(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
