"""Push-latency benchmark: from a change in the provider to the tenant's webhook.

``scripts/bench push-latency [--runs 3] [--calendars 1000] [--changes 1000] [--rate 20]``

Each run starts fresh processes on 127.0.0.1 (2 cores: three busy ones at most):

- the emulator (``bench.push_emulator``): Google and Microsoft users with a couple of
  upcoming meetings each, on the real clock, delivering its push pings and Graph
  notifications as soon as they are queued (a pump beside the server);
- the tenant's webhook receiver (``bench.push_receiver``): records receive times;
- our service (``bench.push_service``): API and worker in one process, SQLite, every
  calendar connected with an open push channel and a bot per meeting, idle.

This process then makes ``--changes`` changes through the emulator's control API at
``--rate`` per second, one per calendar (``bench.push_driver``): moves (expect
``bot.updated``), cancellations (``bot.cancelled``) and new meetings (nothing schedules
their bots, so the measured webhook is ``calendar.sync_events``). Latency = the receive
time of the matching webhook - the world's time stamp of the change. A change without its
webhook within ``--miss-after`` seconds is missed; a second webhook (another message id)
for one change is a duplicate. Per-change stage timestamps (ping sent, accepted, sync
start/end, outbox row, delivery attempt) say where the time goes.

Target (issue #4): p99 ≤ 1 s on the reference machine (2 cores).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.common import RESULTS, ROOT, child_env, loadavg, machine, process_cpu_s, write_json
from bench.push_driver import KINDS, STAGES, collect, drive, match, plan, stages

TARGET_P99_S = 1.0
PLATFORM_NAMES = {
    "google_calendar": "Google calendars, all kinds",
    "microsoft_outlook": "Microsoft calendars, all kinds",
}


def _log(msg: str) -> None:
    print(f"[push-latency] {msg}", file=sys.stderr, flush=True)


class Child:
    """A child process that writes a JSON file when it is ready; always stopped on exit."""

    def __init__(self, name: str, args: list[str], ready: Path, timeout: float) -> None:
        self.name, self.args, self.ready, self.timeout = name, args, ready, timeout
        self.ready.unlink(missing_ok=True)
        self.proc: subprocess.Popen[bytes] | None = None
        self.info: dict[str, Any] = {}

    def __enter__(self) -> Child:
        self.proc = subprocess.Popen([sys.executable, "-m", *self.args], cwd=ROOT, env=child_env())
        return self

    def wait_ready(self) -> dict[str, Any]:
        assert self.proc is not None
        deadline = time.monotonic() + self.timeout
        while not self.ready.exists():
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} not ready within {self.timeout:.0f} s")
            time.sleep(0.1)
        self.info = json.loads(self.ready.read_text())
        return self.info

    def wait(self, timeout: float) -> int | None:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def __exit__(self, *exc: object) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        if self.wait(30) is None:
            self.proc.kill()
            self.proc.wait(timeout=15)


def microsoft_push_available() -> bool:
    """Microsoft push is in the service when its adapter can open subscriptions."""
    from showup.providers.base import PushProvider
    from showup.providers.microsoft import MicrosoftCalendarProvider

    methods = [m for m in PushProvider.__dict__ if not m.startswith("_") and m != "platform"]
    return all(callable(getattr(MicrosoftCalendarProvider, m, None)) for m in methods)


# ---- statistics ---------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (``p`` in 0-100) of a non-empty sequence."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]


def stats_ms(values: Sequence[float]) -> dict[str, float] | None:
    if not values:
        return None
    ms = [v * 1000 for v in values]
    return {
        "n": len(ms),
        "p50": percentile(ms, 50),
        "p90": percentile(ms, 90),
        "p99": percentile(ms, 99),
        "max": max(ms),
        "min": min(ms),
    }


def analyse(changes: list[dict[str, Any]]) -> dict[str, Any]:
    matched = [c for c in changes if "latency" in c]
    out: dict[str, Any] = {
        "overall": stats_ms([c["latency"] for c in matched]),
        "by_kind": {k: stats_ms([c["latency"] for c in matched if c["kind"] == k]) for k in KINDS},
        "by_platform": {
            p: stats_ms([c["latency"] for c in matched if c["platform"] == p])
            for p in sorted({c["platform"] for c in changes})
        },
        "sync_events_of_moves_and_cancels": stats_ms(
            [c["sync_events_latency"] for c in matched if "sync_events_latency" in c]
        ),
        "control_api_round_trip": stats_ms(
            [c["answered"] - c["sent"] for c in changes if "answered" in c]
        ),
        "stages": {},
    }
    for label, a, b in STAGES:
        out["stages"][label] = stats_ms([c[b] - c[a] for c in matched if a in c and b in c])
    out["attempts"] = dict(
        sorted(
            {
                str(n): sum(1 for c in matched if c.get("attempts") == n)
                for n in {c.get("attempts") for c in matched}
            }.items()
        )
    )
    return out


# ---- one run --------------------------------------------------------------------------


def _users(args: argparse.Namespace) -> tuple[int, int, str | None]:
    if args.microsoft is not None:
        return args.calendars - args.microsoft, args.microsoft, None
    if microsoft_push_available():
        half = args.calendars // 2
        return args.calendars - half, half, None
    note = (
        "Microsoft push (Graph subscriptions at /push/microsoft) is not in the service at "
        "this commit: every calendar is a Google calendar."
    )
    return args.calendars, 0, note


async def _mark(url: str, path: str) -> None:
    async with httpx.AsyncClient(timeout=30.0, trust_env=False) as client:
        r = await client.post(f"{url}/_bench/{path}")
        r.raise_for_status()


async def _measure(
    args: argparse.Namespace, emu: str, receiver: str, service: str, ready: dict[str, Any]
) -> tuple[list[dict[str, Any]], list[list[Any]], float, float]:
    changes = plan(ready["map"], args.changes, dict(zip(KINDS, args.mix, strict=True)), args.seed)
    await asyncio.sleep(args.idle)  # everything idle, channels open
    mark = time.time()
    await _mark(service, "mark")
    drive_s = await drive(emu, changes, args.rate)
    hits: list[list[Any]] = []
    await collect(receiver, changes, args.miss_after, args.settle, hits)
    await _mark(service, "stop")
    return changes, hits, mark, drive_s


def one_run(i: int, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    google, microsoft, note = _users(args)
    budget = args.setup_timeout + args.changes / args.rate + args.miss_after + 600
    run_dir = workdir / f"run{i}"
    run_dir.mkdir()
    parent = f"--parent-pid={os.getpid()}"
    emu_args = [
        "bench.push_emulator",
        f"--google={google}",
        f"--microsoft={microsoft}",
        f"--meetings={args.meetings}",
        f"--handshake={run_dir / 'emulator.json'}",
        f"--stats={run_dir / 'emulator-stats.json'}",
        f"--max-seconds={budget}",
        parent,
    ]
    rec_args = [
        "bench.push_receiver",
        f"--handshake={run_dir / 'receiver.json'}",
        f"--max-seconds={budget}",
        parent,
    ]
    with (
        Child("emulator", emu_args, run_dir / "emulator.json", 300) as emulator,
        Child("receiver", rec_args, run_dir / "receiver.json", 60) as receiver,
    ):
        emu = emulator.wait_ready()
        rec = receiver.wait_ready()
        cfg = {
            "emulator_url": emu["base_url"],
            "google_client": emu["google_client"],
            "microsoft_client": emu["microsoft_client"],
            "users": emu["users"],
            "receiver_url": rec["base_url"],
            "ready": str(run_dir / "service-ready.json"),
            "workdir": str(run_dir),
            "setup_timeout_s": args.setup_timeout,
            "max_seconds": budget,
            "profile": str(RESULTS / f"push-latency-run{i}.prof") if args.profile else None,
        }
        (run_dir / "service.json").write_text(json.dumps(cfg))
        out_path = run_dir / "service-out.json"
        svc_args = [
            "bench.push_service",
            f"--config={run_dir / 'service.json'}",
            f"--out={out_path}",
        ]
        with Child("service", svc_args, Path(cfg["ready"]), args.setup_timeout + 60) as svc:
            ready = svc.wait_ready()
            _log(
                f"run {i}: {ready['calendars']} calendars ({google} Google, {microsoft} "
                f"Microsoft), {ready['bots']} bots, push on {ready['push_platforms']}; "
                f"setup {ready['setup_s']:.0f} s"
            )
            cpu0 = {
                "emulator": process_cpu_s(emu["pid"]),
                "receiver": process_cpu_s(rec["pid"]),
            }
            load = loadavg()
            changes, hits, mark, drive_s = asyncio.run(
                _measure(args, emu["base_url"], rec["base_url"], ready["base_url"], ready)
            )
            cpu = {
                name: (after - before) if before is not None and after is not None else None
                for name, pid, before in (
                    ("emulator", emu["pid"], cpu0["emulator"]),
                    ("receiver", rec["pid"], cpu0["receiver"]),
                )
                for after in [process_cpu_s(pid)]
            }
            code = svc.wait(120)
            if code != 0 or not out_path.exists():
                raise RuntimeError(f"service exited with {code} and no result")
        service = json.loads(out_path.read_text())
        emulator.proc.terminate()  # type: ignore[union-attr]
        emulator.wait(30)
    stats_path = run_dir / "emulator-stats.json"
    emulator_stats = json.loads(stats_path.read_text()) if stats_path.exists() else {}
    matched = match(changes, hits, mark, args.miss_after)
    stages(changes, service, emulator_stats)
    result = {
        "run": i,
        "google": google,
        "microsoft": microsoft,
        "note": note,
        "push_platforms": ready["push_platforms"],
        "setup_s": ready["setup_s"],
        "drive_s": drive_s,
        "loadavg_1m_before": load,
        "cpu_s": {"service": service.get("cpu_s"), **cpu},
        "measured_s": service.get("measured_s"),
        "service_loop_lag_ms": service.get("loop_lag_ms"),
        "sqlite_lock_wait_ms": service.get("lock_wait_ms"),
        "sqlite_lock_hold_ms": service.get("lock_hold_ms"),
        "sql_statements": service.get("statements"),
        "sql_transactions": service.get("transactions"),
        "emulator_pump": {
            "rounds": emulator_stats.get("rounds"),
            "busy_s": emulator_stats.get("busy_s"),
            "given_up": emulator_stats.get("given_up"),
            "outbox": emulator_stats.get("outbox"),
        },
        "syncs_after_mark": sum(1 for s in service["syncs"] if s[1] >= mark),
        "push_requests_after_mark": sum(1 for r in service["requests"] if r[1] >= mark),
        "bot_statuses": service.get("bot_statuses"),
        **matched,
        **analyse(changes),
        "changes": changes,
    }
    overall = result["overall"] or {}
    _log(
        f"run {i}: p50 {overall.get('p50', float('nan')):.0f} ms, p99 "
        f"{overall.get('p99', float('nan')):.0f} ms, max {overall.get('max', float('nan')):.0f}"
        f" ms; {matched['counts']}, strays {matched['strays']}"
    )
    return result


# ---- aggregate and report ---------------------------------------------------------------


def _over(runs: list[dict[str, Any]], get: Any) -> dict[str, float] | None:
    values = [v for r in runs if (v := get(r)) is not None]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    def lat(section: Any, key: str) -> dict[str, float] | None:
        return _over(runs, lambda r: (section(r) or {}).get(key))

    agg: dict[str, Any] = {
        "overall": {k: lat(lambda r: r["overall"], k) for k in ("p50", "p90", "p99", "max")},
        "by_kind": {
            kind: {
                k: lat(lambda r, kind=kind: r["by_kind"][kind], k) for k in ("p50", "p99", "max")
            }
            for kind in KINDS
        },
        "by_platform": {
            platform: {
                k: lat(lambda r, platform=platform: r["by_platform"].get(platform), k)
                for k in ("p50", "p99", "max")
            }
            for platform in sorted({p for r in runs for p in r["by_platform"]})
        },
        "stages": {
            label: {k: lat(lambda r, label=label: r["stages"][label], k) for k in ("p50", "p99")}
            for label, _a, _b in STAGES
        },
        "changes": sum(len(r["changes"]) for r in runs),
    }
    for key in (
        "matched",
        "missed",
        "duplicates",
        "redelivered",
        "change_failed",
        "bad_signature",
        "wrong_join_at",
        "before_change",
    ):
        agg[key] = sum(r["counts"].get(key, 0) for r in runs)
    agg["strays"] = sum(sum(r["strays"].values()) for r in runs)
    agg["wrong_kind"] = sum(r["wrong_kind"] for r in runs)
    p99 = agg["overall"]["p99"]
    agg["target_met"] = bool(p99 and p99["median"] <= TARGET_P99_S * 1000 and not agg["missed"])
    return agg


def _ms(s: dict[str, float] | None, bold: bool = False) -> tuple[str, str]:
    if not s:
        return "-", "-"
    med = f"{s['median']:.0f} ms"
    return (f"**{med}**" if bold else med), f"{s['min']:.0f} - {s['max']:.0f} ms"


def report(result: dict[str, Any]) -> str:
    """The markdown block printed at the end and pasted into BENCHMARKS.md."""
    p, m, agg, runs = result["params"], result["machine"], result["summary"], result["runs"]
    first = runs[0]
    lines = [
        f"### push-latency: {p['calendars']:,} calendars ({first['google']} Google, "
        f"{first['microsoft']} Microsoft), {p['changes']:,} changes at {p['rate']:g}/s, "
        f"{p['runs']} runs, {result['date']}",
        "",
        f"Command: `{result['command']}`  ",
        f"Machine: {m['cpus']} CPUs ({m['cpu_model']}), {m['ram_gib']} GiB RAM, {m['os']}, "
        f"Python {m['python']}, SQLite {m['sqlite']}, commit {m['git_commit']}"
        + (" (+ uncommitted src changes)" if m["git_dirty"] else "")
        + "; 1-min load average before each run: "
        + ", ".join(f"{r['loadavg_1m_before']:.1f}" for r in runs if r["loadavg_1m_before"]),
    ]
    if first.get("note"):
        lines += ["", f"Note: {first['note']}"]
    lines += [
        "",
        "| change to webhook received | median of runs | min - max |",
        "|---|---|---|",
    ]
    for key in ("p50", "p90", "p99", "max"):
        med, span = _ms(agg["overall"][key], bold=key == "p99")
        lines.append(f"| all changes, {key} | {med} | {span} |")
    for kind in KINDS:
        label = {
            "move": "moves → bot.updated",
            "cancel": "cancellations → bot.cancelled",
            "new": "new meetings → calendar.sync_events",
        }[kind]
        for key in ("p50", "p99", "max"):
            med, span = _ms(agg["by_kind"][kind][key])
            lines.append(f"| {label}, {key} | {med} | {span} |")
    for platform, by in agg["by_platform"].items():
        for key in ("p50", "p99"):
            med, span = _ms(by[key])
            lines.append(f"| {PLATFORM_NAMES.get(platform, platform)}, {key} | {med} | {span} |")
    lines += [
        "",
        "Where the time goes (per change, medians of the runs' p50 / p99):",
        "",
        "| stage | p50 | p99 |",
        "|---|---|---|",
    ]
    for label, _a, _b in STAGES:
        s = agg["stages"][label]
        p50 = f"{s['p50']['median']:.1f} ms" if s["p50"] else "-"
        p99 = f"{s['p99']['median']:.1f} ms" if s["p99"] else "-"
        lines.append(f"| {label} | {p50} | {p99} |")
    lag = _over(runs, lambda r: (r["service_loop_lag_ms"] or {}).get("p99"))
    txns = _over(runs, lambda r: (r["sqlite_lock_wait_ms"] or {}).get("n"))
    wait = _over(runs, lambda r: (r["sqlite_lock_wait_ms"] or {}).get("p99"))
    hold = _over(runs, lambda r: (r["sqlite_lock_hold_ms"] or {}).get("p99"))
    cpu = _over(runs, lambda r: r["cpu_s"]["service"])
    lines += [
        "",
        f"Over all {p['runs']} runs x {p['changes']:,} changes: {agg['matched']} matched, "
        f"{agg['missed']} missed (no webhook within {p['miss_after_s']:g} s), "
        f"{agg['duplicates']} with a second webhook, {agg['redelivered']} redelivered, "
        f"{agg['strays']} webhooks about unchanged bots/calendars, {agg['wrong_join_at']} "
        f"wrong join times, {agg['change_failed']} failed changes."
        + (f" Service CPU over the measured phase: {cpu['median']:.1f} s (median);" if cpu else "")
        + (f" its event loop's lag p99 {lag['median']:.0f} ms." if lag else "")
        + (
            f" SQLite transactions in that phase: {txns['median']:,.0f}, their first "
            f"statement (with BEGIN IMMEDIATE, which waits for the write lock) p99 "
            f"{wait['median']:.1f} ms, holding the lock after it p99 {hold['median']:.1f} ms."
            if txns and wait and hold
            else ""
        )
        + (
            f" Per change: {txns['median'] / p['changes']:.2f} transactions"
            + (f", {1000 * cpu['median'] / p['changes']:.1f} ms of service CPU" if cpu else "")
            + "."
            if txns and p["changes"]
            else ""
        ),
        "",
        f"Target: p99 ≤ {TARGET_P99_S * 1000:.0f} ms with nothing missed — "
        f"{'met' if agg['target_met'] else 'NOT met'}.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="scripts/bench push-latency", description=__doc__.split("\n")[0]
    )
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--calendars", type=int, default=1000)
    p.add_argument(
        "--microsoft",
        type=int,
        default=None,
        help="how many of them are Microsoft (default: half, if Microsoft push exists)",
    )
    p.add_argument("--meetings", type=int, default=2, help="meetings with a bot per calendar")
    p.add_argument("--changes", type=int, default=1000, help="at most one per calendar")
    p.add_argument("--rate", type=float, default=20.0, help="changes per second")
    p.add_argument(
        "--mix",
        type=int,
        nargs=3,
        default=[1, 1, 1],
        metavar=("MOVE", "CANCEL", "NEW"),
        help="weights of moves, cancellations and new meetings (default 1 1 1)",
    )
    p.add_argument("--idle", type=float, default=3.0, help="seconds idle before the changes")
    p.add_argument("--miss-after", type=float, default=30.0)
    p.add_argument("--settle", type=float, default=3.0, help="seconds to wait for duplicates")
    p.add_argument("--setup-timeout", type=float, default=900.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--profile", action="store_true", help="cProfile the service's measured phase")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    if args.runs < 1 or args.calendars < 1 or args.changes < 1 or args.rate <= 0:
        p.error("--runs, --calendars, --changes and --rate must be positive")
    if args.changes > args.calendars:
        p.error("--changes: at most one change per calendar")

    started = datetime.now(UTC)
    RESULTS.mkdir(parents=True, exist_ok=True)
    runs = []
    with tempfile.TemporaryDirectory(prefix="showup-bench-push-") as tmp:
        for i in range(1, args.runs + 1):
            runs.append(one_run(i, args, Path(tmp)))
    result: dict[str, Any] = {
        "benchmark": "push-latency",
        "date": started.strftime("%Y-%m-%d"),
        "command": ("scripts/bench push-latency " + " ".join(argv or sys.argv[1:])).strip(),
        "params": {
            "runs": args.runs,
            "calendars": args.calendars,
            "meetings": args.meetings,
            "changes": args.changes,
            "rate": args.rate,
            "mix": dict(zip(KINDS, args.mix, strict=True)),
            "miss_after_s": args.miss_after,
            "seed": args.seed,
        },
        "machine": machine(),
        "runs": runs,
        "summary": aggregate(runs),
    }
    out = args.out or RESULTS / f"push-latency-{started:%Y%m%dT%H%M%SZ}.json"
    write_json(out, result)
    print(report(result))
    _log(f"results in {out}")
    return 0 if result["summary"]["target_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
