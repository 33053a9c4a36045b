"""Dispatch-precision benchmark: thousands of bots due in one minute, launched on time?

``scripts/bench dispatch [--runs 3] [--bots 5000] [--spread 60] [--profile]``

Each run: a fresh receiver process (``bench.dispatch_receiver``: uvicorn on 127.0.0.1,
verifies every Standard Webhooks signature, records receive times) and a fresh measured
child (``bench.dispatch_run``: fresh SQLite database, bots scheduled through the bot
service, then the real worker with the real clock launching them through the webhook
launcher). Lateness = receive time at the receiver - the bot's join time. Each bot must
arrive exactly once: a bot received twice was launched twice, one never received was
missed. Runs repeat ``--runs`` times and medians are reported (machines are noisy).

Target (issue): p99 lateness ≤ 250 ms on SQLite, with no duplicate and no missed bot.
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

from bench.common import RESULTS, ROOT, child_env, machine, run_child, summary, write_json

TARGET_P99_MS = 250.0


def _log(msg: str) -> None:
    print(f"[dispatch] {msg}", file=sys.stderr, flush=True)


class Receiver:
    """The receiver child; a context manager that always stops it."""

    def __init__(self, workdir: Path, max_seconds: float) -> None:
        self.handshake = workdir / "receiver.json"
        self.handshake.unlink(missing_ok=True)
        self.args = [
            sys.executable,
            "-m",
            "bench.dispatch_receiver",
            f"--handshake={self.handshake}",
            f"--max-seconds={max_seconds}",
            f"--parent-pid={os.getpid()}",
        ]
        self.proc: subprocess.Popen[bytes] | None = None
        self.base_url = ""

    def __enter__(self) -> Receiver:
        self.proc = subprocess.Popen(self.args, cwd=ROOT, env=child_env())
        deadline = time.monotonic() + 60
        while not self.handshake.exists():
            if self.proc.poll() is not None:
                raise RuntimeError(f"receiver exited with {self.proc.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError("receiver did not come up within 60 s")
            time.sleep(0.1)
        self.base_url = json.loads(self.handshake.read_text())["base_url"]
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


def one_run(i: int, base: dict[str, Any], workdir: Path, child_timeout: float) -> dict[str, Any]:
    with Receiver(workdir, max_seconds=child_timeout + 60) as receiver:
        cfg = {**base, "receiver_url": receiver.base_url, "workdir": str(workdir)}
        if base.get("profile"):
            cfg["profile"] = str(RESULTS / f"dispatch-run{i}.prof")
        result = run_child("bench.dispatch_run", cfg, workdir, child_timeout)
    late = result["lateness_ms"] or {}
    _log(
        f"run {i}: lateness p50 {late.get('p50', float('nan')):.1f} ms, "
        f"p99 {late.get('p99', float('nan')):.1f} ms, max {late.get('max', float('nan')):.1f} ms; "
        f"received {result['received_bots']}/{result['bots']}, duplicates "
        f"{result['duplicates']}, missed {result['missed']}, statuses {result['statuses']}"
    )
    return {"run": i, **result}


def aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    def over(section: str, key: str) -> dict[str, float] | None:
        values = [r[section][key] for r in runs if r.get(section)]
        return summary(values) if values else None

    agg: dict[str, Any] = {
        "lateness_ms": {k: over("lateness_ms", k) for k in ("p50", "p90", "p99", "max")},
        "claim_lateness_ms": {k: over("claim_lateness_ms", k) for k in ("p50", "p99", "max")},
        "duplicates": sum(r["duplicates"] for r in runs),
        "missed": sum(r["missed"] for r in runs),
        "failed": sum(r["statuses"].get("failed", 0) for r in runs),
        "bad_signatures": sum(r["bad_signatures"] for r in runs),
        "retried": sum(n for r in runs for a, n in r["attempts"].items() if a != "1"),
        "worker_cpu_s": summary([r["worker_cpu_s"] for r in runs]),
        "loop_cpu_s": summary([r["loop_cpu_s"] for r in runs]),
        "receiver_cpu_s": summary([r["receiver_cpu_s"] or 0.0 for r in runs]),
        "transactions": summary([r["write_lock_waits"]["transactions"] for r in runs]),
        "lock_wait_s": summary([r["write_lock_waits"]["total_s"] for r in runs]),
        "loadavg": [
            min(r["loadavg_before"][0] for r in runs),
            max(r["loadavg_after"][0] for r in runs),
        ],
        "setup_s": summary([r["setup_s"] for r in runs]),
    }
    p99 = agg["lateness_ms"]["p99"]
    clean = agg["duplicates"] == agg["missed"] == agg["failed"] == agg["bad_signatures"] == 0
    agg["target_met"] = bool(p99 and p99["median"] <= TARGET_P99_MS and clean)
    return agg


def _ms(s: dict[str, float] | None) -> tuple[str, str]:
    if not s:
        return "-", "-"
    return f"{s['median']:.0f} ms", f"{s['min']:.0f} - {s['max']:.0f} ms"


def report(result: dict[str, Any]) -> str:
    """The markdown block printed at the end and pasted into BENCHMARKS.md."""
    p, m, agg = result["params"], result["machine"], result["summary"]
    late, claim = agg["lateness_ms"], agg["claim_lateness_ms"]
    lo, hi = agg["loadavg"]
    how = "on whole seconds" if p.get("whole_seconds") else "evenly spread"
    lines = [
        f"#### dispatch: {p['bots']:,} bots due within {p['spread_s']} s ({how}), "
        f"concurrency {result['runs'][0]['concurrency']}, {p['runs']} runs, {result['date']}",
        "",
        f"Command: `{result['command']}`  ",
        f"Machine: {m['cpus']} CPUs ({m['cpu_model']}), {m['ram_gib']} GiB RAM, {m['os']}, "
        f"Python {m['python']}, SQLite {m['sqlite']}, commit {m['git_commit']}"
        + (" (+ uncommitted src changes)" if m["git_dirty"] else "")
        + f"; 1-min load average {lo:.1f} to {hi:.1f} at the runs' starts and ends",
        "",
        "| measure | median of runs | min - max |",
        "|---|---|---|",
    ]
    for key in ("p50", "p90", "p99", "max"):
        med, span = _ms(late[key])
        label = f"lateness {key} (receive time - join time)"
        if key == "p99":
            label, med = f"**{label}**", f"**{med}**"
        lines.append(f"| {label} | {med} | {span} |")
    for key in ("p50", "p99"):
        med, span = _ms(claim[key])
        lines.append(f"| claim lateness {key} (claimed - join time) | {med} | {span} |")
    for key, label in (
        ("loop_cpu_s", "CPU, our event-loop thread, whole run"),
        ("worker_cpu_s", "CPU, our process, whole run"),
        ("receiver_cpu_s", "CPU, receiver process"),
        ("lock_wait_s", "begin to end of first statement (BEGIN IMMEDIATE), summed"),
    ):
        s = agg[key]
        lines.append(f"| {label} | {s['median']:.1f} s | {s['min']:.1f} - {s['max']:.1f} s |")
    t = agg["transactions"]
    lines += [
        f"| transactions | {t['median']:,.0f} | {t['min']:,.0f} - {t['max']:,.0f} |",
        "",
        f"Over all {p['runs']} runs x {p['bots']:,} bots: {agg['duplicates']} launched twice, "
        f"{agg['missed']} missed, {agg['failed']} failed, {agg['retried']} retried, "
        f"{agg['bad_signatures']} bad signatures.",
        "",
        f"Target: p99 lateness <= {TARGET_P99_MS:.0f} ms with none launched twice or missed: "
        f"{'met' if agg['target_met'] else 'NOT met'}.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="scripts/bench dispatch", description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--bots", type=int, default=5000)
    p.add_argument("--spread", type=int, default=60, help="join times spread over N seconds")
    p.add_argument(
        "--whole-seconds",
        action="store_true",
        help="join times on whole seconds (~bots/spread at each) rather than evenly spread",
    )
    p.add_argument("--lead-in", type=float, default=30.0, help="first join, seconds after setup")
    p.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help="bot_dispatch_concurrency for the runs (default: the setting's default, 16)",
    )
    p.add_argument("--timeout", type=float, default=300.0, help="seconds after the last join")
    p.add_argument("--profile", action="store_true", help="cProfile the worker of each run")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    if args.runs < 1 or args.bots < 1 or args.spread < 0:
        p.error("--runs and --bots must be positive, --spread not negative")

    base = {
        "bots": args.bots,
        "spread_s": args.spread,
        "whole_seconds": args.whole_seconds,
        "lead_in_s": args.lead_in,
        "concurrency": args.concurrency,
        "timeout_s": args.timeout,
        "profile": args.profile,
    }
    # Setup of 5,000 bots takes well under a minute; then lead-in, the spread, the tail.
    child_timeout = 900 + args.lead_in + args.spread + args.timeout
    runs = []
    RESULTS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="showup-bench-dispatch-") as tmp:
        for i in range(1, args.runs + 1):
            runs.append(one_run(i, base, Path(tmp), child_timeout))
    stamp = datetime.now(UTC)
    result = {
        "benchmark": "dispatch",
        "date": stamp.strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join(["scripts/bench dispatch", *(argv or sys.argv[1:])]),
        "params": {**base, "runs": args.runs},
        "machine": machine(),
        "runs": runs,
        "summary": aggregate(runs),
    }
    out = args.out or RESULTS / f"dispatch-{stamp:%Y%m%dT%H%M%SZ}.json"
    write_json(out, result)
    print(report(result))
    _log(f"results in {out}")
    return 0 if result["summary"]["target_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
