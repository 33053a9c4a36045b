"""One command for the benchmarks: ``scripts/bench [NAME [OPTIONS]]``.

Without a name every registered benchmark runs with its defaults; with a name, that one
runs with the given options (``scripts/bench ingest --help``). Results go to
``bench/results/`` (JSON, not committed) and the figures worth keeping to BENCHMARKS.md.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Benchmark:
    module: str  # has ``main(argv: list[str]) -> int``
    summary: str

    def main(self) -> Callable[[list[str]], int]:
        fn: Callable[[list[str]], int] = importlib.import_module(self.module).main
        return fn


BENCHMARKS: dict[str, Benchmark] = {
    "ingest": Benchmark(
        "bench.ingest",
        "1,000 calendars x 200 events from the emulator through the full sync into SQLite, "
        "against google-api-python-client merely paging the same data",
    ),
    "ingest-floor": Benchmark(
        "bench.ingest_floor",
        "CPU per event of what a full sync cannot skip (read the page, encode, rows, SQLite "
        "insert and commit), each step alone on the ingest benchmark's events",
    ),
    "dispatch": Benchmark(
        "bench.dispatch",
        "5,000 bots due within one minute launched through the webhook launcher to a local "
        "receiver, real clock: lateness p50/p99/max, none launched twice or missed",
    ),
    "push-latency": Benchmark(
        "bench.push_latency",
        "1,000 calendars with push channels and bots: change in the emulator to the "
        "tenant's bot.updated / bot.cancelled / calendar.sync_events webhook, p50/p99/max",
    ),
}


def usage() -> str:
    lines = ["usage: scripts/bench [NAME [OPTIONS]]   (no NAME: run all)", "", "benchmarks:"]
    lines += [f"  {name:<10} {b.summary}" for name, b in BENCHMARKS.items()]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if argv and argv[0] in ("-h", "--help", "--list"):
        print(usage())
        return 0
    if not argv:
        status = 0
        for name, bench in BENCHMARKS.items():
            print(f"== {name}", flush=True)
            status = max(status, bench.main()([]))
        return status
    name, rest = argv[0], argv[1:]
    bench = BENCHMARKS.get(name)
    if bench is None:
        print(f"unknown benchmark {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    return bench.main()(rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
