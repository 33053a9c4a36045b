"""Shared benchmark helpers: process memory, child processes, machine description, stats."""

from __future__ import annotations

import json
import os
import platform
import resource
import sqlite3
import statistics
import subprocess
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


# ---- memory (Linux /proc; falls back to getrusage elsewhere) ------------------------------


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def rss_kib() -> int:
    """Resident set size now."""
    return _status_kib("VmRSS") or maxrss_kib()


def peak_kib() -> int:
    """Peak resident set size since start or since the last :func:`reset_peak`."""
    return _status_kib("VmHWM") or maxrss_kib()


def maxrss_kib() -> int:
    """``getrusage(RUSAGE_SELF).ru_maxrss``: the whole process' peak (KiB on Linux)."""
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux ≥ 4.0: ``echo 5 > /proc/self/clear_refs``)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return False
    return True


def process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of another process so far (Linux /proc), or None."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def loadavg() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


# ---- child processes ----------------------------------------------------------------------


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    # Benchmarks must not inherit a developer's SHOWUP_* configuration.
    for key in [k for k in env if k.startswith("SHOWUP_")]:
        del env[key]
    return env


def run_child(module: str, config: dict[str, Any], workdir: Path, timeout: float) -> dict[str, Any]:
    """Run ``python -m module --config C --out O`` and return the JSON it wrote to O."""
    name = module.rsplit(".", 1)[-1]
    cfg = workdir / f"{name}.config.json"
    out = workdir / f"{name}.out.json"
    out.unlink(missing_ok=True)
    cfg.write_text(json.dumps(config))
    proc = subprocess.run(
        [sys.executable, "-m", module, "--config", str(cfg), "--out", str(out)],
        cwd=ROOT,
        env=child_env(),
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0 or not out.exists():
        raise RuntimeError(f"{module} failed (exit {proc.returncode})")
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


# ---- machine ------------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total_gib() -> float | None:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        return None
    return None


def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=False
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "-"


def machine() -> dict[str, Any]:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 0
    return {
        "cpus": cpus,
        "cpu_model": _cpu_model(),
        "ram_gib": _mem_total_gib(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "git_commit": _git("rev-parse", "--short", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no", "src")),
        "packages": {
            d: _version(d)
            for d in (
                "SQLAlchemy",
                "aiosqlite",
                "httpx",
                "uvicorn",
                "starlette",
                "google-api-python-client",
                "httplib2",
            )
        },
    }


# ---- statistics ---------------------------------------------------------------------------


def summary(values: Sequence[float]) -> dict[str, float]:
    """Median, min and max of several runs (medians, because machines are noisy)."""
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
    }
