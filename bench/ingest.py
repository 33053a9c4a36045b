"""Ingest benchmark: calendars x events from the Google emulator through the whole sync
into SQLite, side by side with google-api-python-client merely paging the same data.

One emulator process (its own GIL, real HTTP on 127.0.0.1) serves every measurement of a
run. Each measurement is a fresh child process, so its peak memory is its own and no run
inherits another's heap: per round, our full sync (``bench.ingest_sync``) and then bare
paging with N threads and sequentially (``bench.ingest_bare``). Rounds repeat ``--runs``
times; medians are reported, and the ratio full sync / bare paging is taken within each
round (side by side) against the faster bare mode, then its median across rounds.

``--processes N`` runs the full sync's drain in N worker processes against the same
database (as ``showup worker --processes N``, which splits the per-provider concurrency
among them); CPU is then summed over them and peak memory given per process (the
largest) and summed. Default 1.

Targets (issue): ≥ 5,000 events/s end to end on SQLite, and full sync ≤ 1.5 x bare paging.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import (
    RESULTS,
    ROOT,
    child_env,
    loadavg,
    machine,
    process_cpu_s,
    run_child,
    summary,
    write_json,
)
from showup.config import Settings

TARGET_EVENTS_PER_S = 5000.0
TARGET_RATIO = 1.5


def _log(msg: str) -> None:
    print(f"[ingest] {msg}", file=sys.stderr, flush=True)


class Emulator:
    """The seeded emulator child; a context manager that always stops it."""

    def __init__(self, users: int, events: int, seed: int, workdir: Path, timeout: float) -> None:
        self.handshake_path = workdir / "emulator.json"
        self.args = [
            sys.executable,
            "-m",
            "bench.emulator_proc",
            f"--users={users}",
            f"--events={events}",
            f"--seed={seed}",
            f"--handshake={self.handshake_path}",
            f"--max-seconds={timeout}",
            f"--parent-pid={os.getpid()}",
        ]
        self.proc: subprocess.Popen[bytes] | None = None
        self.info: dict[str, Any] = {}

    def __enter__(self) -> Emulator:
        self.proc = subprocess.Popen(self.args, cwd=ROOT, env=child_env())
        # Seeding 1,000 x 200 takes well under a minute on the reference machine.
        deadline = time.monotonic() + 600
        while not self.handshake_path.exists():
            if self.proc.poll() is not None:
                raise RuntimeError(f"emulator exited with {self.proc.returncode} while seeding")
            if time.monotonic() > deadline:
                raise RuntimeError("emulator did not come up within 600 s")
            time.sleep(0.2)
        self.info = json.loads(self.handshake_path.read_text())
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=15)


def _measure(
    module: str, config: dict[str, Any], workdir: Path, timeout: float, emulator_pid: int
) -> dict[str, Any]:
    """One child measurement, with the emulator's CPU and the machine's load around it.

    The emulator is idle while the child starts and sets up, so its CPU time over the
    whole child is what serving the measured part cost it.
    """
    load = loadavg()
    before = process_cpu_s(emulator_pid)
    result = run_child(module, config, workdir, timeout)
    after = process_cpu_s(emulator_pid)
    result["emulator_cpu_s"] = after - before if before is not None and after is not None else None
    result["loadavg_1m_before"] = load
    return result


def _round(
    i: int,
    base: dict[str, Any],
    modes: list[int],
    workdir: Path,
    timeout: float,
    emulator_pid: int,
) -> dict[str, Any]:
    out: dict[str, Any] = {"run": i}
    sync = _measure(
        "bench.ingest_sync", {**base, "workdir": str(workdir)}, workdir, timeout, emulator_pid
    )
    procs = sync.get("processes", 1)
    _log(
        f"run {i}: full sync {sync['elapsed_s']:.2f} s = {sync['events_per_s']:,.0f} events/s, "
        f"CPU {sync['cpu_s']:.1f} s, peak {sync['rss_peak_mib']:.0f} MiB"
        + (f" (largest of {procs} processes)" if procs > 1 else "")
        + (f"  PROBLEMS: {sync['problems']}" if sync["problems"] else "")
    )
    out["sync"] = sync
    for threads in modes:
        bare = _measure(
            "bench.ingest_bare", {**base, "threads": threads}, workdir, timeout, emulator_pid
        )
        _log(
            f"run {i}: bare paging ({threads} thread{'s' if threads > 1 else ''}) "
            f"{bare['elapsed_s']:.2f} s"
            + (f"  PROBLEMS: {bare['problems']}" if bare["problems"] else "")
        )
        out[f"bare_{threads}"] = bare
    return out


def _row(label: str, s: dict[str, float] | None, fmt: str, unit: str = "") -> str:
    if s is None:
        return f"| {label} | - | - |"
    med, lo, hi = (format(s[k], fmt) for k in ("median", "min", "max"))
    return f"| {label} | {med}{unit} | {lo} - {hi}{unit} |"


def _load(result: dict[str, Any]) -> str:
    """The 1-minute load averages seen before each measurement and at the end."""
    seen = [
        m["loadavg_1m_before"]
        for r in result["rounds"]
        for m in r.values()
        if isinstance(m, dict) and m.get("loadavg_1m_before") is not None
    ]
    end = (result.get("loadavg_1m") or {}).get("end")
    seen += [end] if end is not None else []
    if not seen:
        return "unknown"
    return f"{min(seen):.1f} to {max(seen):.1f} during the run"


def report(result: dict[str, Any]) -> str:
    """The markdown table printed at the end and pasted into BENCHMARKS.md."""
    p, m, agg = result["params"], result["machine"], result["summary"]
    sync = agg["sync"]
    procs = p.get("processes", 1)
    each = f", per process (largest of {procs})" if procs > 1 else ""
    ours = f"our {procs} processes (summed)" if procs > 1 else "our process"
    loops = "our event-loop threads (summed)" if procs > 1 else "our event-loop thread"
    lines = [
        f"### ingest: {p['calendars']:,} calendars x {p['events']} events, "
        f"{procs} worker process{'es' if procs > 1 else ''}, "
        f"{p['runs']} runs, {result['date']}",
        "",
        f"Command: `{result['command']}`  ",
        f"Machine: {m['cpus']} CPUs ({m['cpu_model']}), {m['ram_gib']} GiB RAM, {m['os']}, "
        f"Python {m['python']}, SQLite {m['sqlite']}, commit {m['git_commit']}"
        + (" (+ uncommitted src changes)" if m["git_dirty"] else "")
        + f"; 1-min load average {_load(result)} (2 = both CPUs busy)",
        "",
        "| measure | median | min - max |",
        "|---|---|---|",
        _row(
            f"full sync, {p['concurrency']} concurrent"
            f"{f' (split among {procs} processes)' if procs > 1 else ''}, "
            "SQLite WAL",
            sync["elapsed_s"],
            ".2f",
            " s",
        ),
        _row("**full sync throughput (events/s)**", sync["events_per_s"], ",.0f"),
        _row(
            f"full sync peak RSS (VmHWM during the drain){each}",
            sync["rss_peak_mib"],
            ".0f",
            " MiB",
        ),
        _row(
            f"full sync peak RSS over its baseline{each}",
            sync.get("rss_increase_mib"),
            ".0f",
            " MiB",
        ),
        _row(
            f"full sync ru_maxrss (whole child process){each}",
            sync["ru_maxrss_mib"],
            ".0f",
            " MiB",
        ),
    ]
    if procs > 1:
        lines += [
            _row(
                f"full sync peak RSS, {procs} processes summed",
                sync.get("rss_peak_sum_mib"),
                ".0f",
                " MiB",
            ),
            _row(
                f"full sync ru_maxrss, {procs} processes summed",
                sync.get("ru_maxrss_sum_mib"),
                ".0f",
                " MiB",
            ),
        ]
    lines += [
        _row(f"full sync CPU, {ours}", sync["cpu_s"], ".1f", " s"),
        _row(f"full sync CPU, {loops}", sync.get("main_thread_cpu_s"), ".1f", " s"),
        _row("full sync CPU, emulator process", sync.get("emulator_cpu_s"), ".1f", " s"),
    ]
    for threads in p["bare_modes"]:
        b = agg[f"bare_{threads}"]
        label = "sequential" if threads == 1 else f"{threads} threads"
        lines += [
            _row(f"bare paging, google-api-python-client, {label}", b["elapsed_s"], ".2f", " s"),
            _row(f"bare paging ({label}) peak RSS", b["rss_peak_mib"], ".0f", " MiB"),
            _row(f"bare paging ({label}) CPU, client process", b["cpu_s"], ".1f", " s"),
            _row(f"bare paging ({label}) CPU, emulator process", b["emulator_cpu_s"], ".1f", " s"),
        ]
    for threads in p["bare_modes"]:
        label = "sequential" if threads == 1 else f"{threads} threads"
        star = ", headline" if threads == agg["headline_bare"] else ""
        lines.append(
            _row(
                f"**ratio full sync / bare paging ({label}{star})**",
                agg[f"ratio_{threads}"],
                ".2f",
                "x",
            )
        )
    t = agg["targets"]
    lines += [
        "",
        f"Targets: >= {TARGET_EVENTS_PER_S:,.0f} events/s: "
        f"{'met' if t['events_per_s_met'] else 'NOT met'} ({t['events_per_s']:,.0f}); "
        f"full sync <= {TARGET_RATIO}x the faster bare paging: "
        f"{'met' if t['ratio_met'] else 'NOT met'} ({t['ratio']:.2f}x).",
    ]
    return "\n".join(lines)


def _summary_or_none(values: list[float | None]) -> dict[str, float] | None:
    present = [v for v in values if v is not None]
    return summary(present) if len(present) == len(values) else None


def aggregate(rounds: list[dict[str, Any]], modes: list[int]) -> dict[str, Any]:
    sync_keys = ("elapsed_s", "events_per_s", "cpu_s", "rss_peak_mib", "ru_maxrss_mib", "setup_s")
    optional = (
        "rss_increase_mib",
        "main_thread_cpu_s",
        "emulator_cpu_s",
        "rss_peak_sum_mib",
        "ru_maxrss_sum_mib",
    )
    agg: dict[str, Any] = {
        "sync": {k: summary([r["sync"][k] for r in rounds]) for k in sync_keys}
        | {k: _summary_or_none([r["sync"].get(k) for r in rounds]) for k in optional},
    }
    for threads in modes:
        key = f"bare_{threads}"
        agg[key] = {
            k: summary([r[key][k] for r in rounds])
            for k in ("elapsed_s", "cpu_s", "rss_peak_mib", "ru_maxrss_mib")
        } | {"emulator_cpu_s": _summary_or_none([r[key].get("emulator_cpu_s") for r in rounds])}
        # Side by side: each round's full sync against the same round's bare paging.
        agg[f"ratio_{threads}"] = summary(
            [r["sync"]["elapsed_s"] / r[key]["elapsed_s"] for r in rounds]
        )
    headline = min(modes, key=lambda t: agg[f"bare_{t}"]["elapsed_s"]["median"])
    agg["headline_bare"] = headline
    ratio = agg[f"ratio_{headline}"]["median"]
    agg["targets"] = {
        "events_per_s": agg["sync"]["events_per_s"]["median"],
        "events_per_s_met": agg["sync"]["events_per_s"]["median"] >= TARGET_EVENTS_PER_S,
        "ratio": ratio,
        "ratio_met": ratio <= TARGET_RATIO,
    }
    return agg


def main(argv: list[str] | None = None) -> int:
    # The service's defaults, not the environment's: the benchmark measures the defaults.
    concurrency = Settings.model_fields["sync_concurrency_per_provider"].default
    page_size = Settings.model_fields["sync_page_size"].default
    p = argparse.ArgumentParser(
        prog="scripts/bench ingest",
        description="Calendars x events from the emulator through the whole sync into SQLite, "
        "against google-api-python-client merely paging the same data.",
    )
    p.add_argument("--runs", type=int, default=3, help="rounds (sync + bare paging); default 3")
    p.add_argument("--calendars", type=int, default=1000, help="default 1000")
    p.add_argument("--events", type=int, default=200, help="occurrences per calendar; 200")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--concurrency",
        type=int,
        default=concurrency,
        help="per-provider sync concurrency (split among --processes, as `showup worker "
        "--processes N` splits it), and the thread count of threaded bare paging "
        f"(default: the service default, {concurrency})",
    )
    p.add_argument(
        "--bare",
        choices=("both", "threads", "sequential"),
        default="both",
        help="which bare paging modes to measure (default both)",
    )
    p.add_argument(
        "--processes",
        type=int,
        default=1,
        help="worker processes the full sync drains in, on one database (default 1)",
    )
    p.add_argument("--timeout", type=float, default=1800, help="per measurement, seconds")
    p.add_argument("--out", type=Path, help="result JSON (default bench/results/ingest-….json)")
    args = p.parse_args(argv)
    if min(args.runs, args.calendars, args.events, args.concurrency, args.processes) < 1:
        p.error("--runs, --calendars, --events, --concurrency and --processes must be positive")
    modes = {"both": [args.concurrency, 1], "threads": [args.concurrency], "sequential": [1]}[
        args.bare
    ]
    modes = list(dict.fromkeys(modes))  # --concurrency 1: one mode
    started = datetime.now(UTC)
    load_start = loadavg()
    command = "scripts/bench ingest " + " ".join(argv if argv is not None else sys.argv[1:])

    with tempfile.TemporaryDirectory(prefix="showup-bench-") as tmp:
        workdir = Path(tmp)
        _log(f"seeding the emulator: {args.calendars} calendars x {args.events} events …")
        budget = args.runs * (1 + len(modes)) * args.timeout + 900
        with Emulator(args.calendars, args.events, args.seed, workdir, budget) as emu:
            info = emu.info
            _log(
                f"emulator at {info['base_url']} (seeded in {info['seed_seconds']} s, "
                f"warmed in {info['warm_seconds']} s)"
            )
            base = {
                "base_url": info["base_url"],
                "client_id": info["client_id"],
                "client_secret": info["client_secret"],
                "users": info["users"],
                "events_per_user": args.events,
                "page_size": page_size,
                "concurrency": args.concurrency,
                "processes": args.processes,
                "timeout": args.timeout,
            }
            rounds = [
                _round(i, base, modes, workdir, args.timeout, int(info["pid"]))
                for i in range(1, args.runs + 1)
            ]

    problems = [
        f"run {r['run']} {k}: {msg}"
        for r in rounds
        for k, v in r.items()
        if isinstance(v, dict)
        for msg in v.get("problems", [])
    ]
    result = {
        "benchmark": "ingest",
        "date": started.strftime("%Y-%m-%d %H:%M UTC"),
        "command": command.strip(),
        "machine": machine(),
        "params": {
            "runs": args.runs,
            "calendars": args.calendars,
            "events": args.events,
            "seed": args.seed,
            "concurrency": args.concurrency,
            "processes": args.processes,
            "page_size": page_size,
            "bare_modes": modes,
            "emulator_seed_s": info["seed_seconds"],
        },
        # Other work on the machine makes every figure noisier: keep it next to them.
        "loadavg_1m": {"start": load_start, "end": loadavg()},
        "rounds": rounds,
        "summary": aggregate(rounds, modes),
        "problems": problems,
    }
    out = args.out or RESULTS / f"ingest-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    write_json(out, result)
    print(report(result))
    print(f"\nresult JSON: {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    if problems:
        print("\nVERIFICATION FAILED:\n  " + "\n  ".join(problems))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
