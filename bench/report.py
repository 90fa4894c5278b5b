"""Results: the machine, percentiles, one JSON file and one PNG per run.

A run writes `bench/results/<scenario>-<UTC time>.json` (git-ignored) with
the machine, the exact command and every figure, and a PNG beside it when
matplotlib is installed (`pip install -r bench/requirements.txt`).
"""
from __future__ import annotations

import datetime
import importlib.metadata
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from typing import Any, Sequence

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
PACKAGES = ("gevent", "greenlet", "gevent-websocket", "Flask", "PyMySQL", "ujson", "gunicorn", "redis",
            "matplotlib")


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    info: dict[str, Any] = {
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "packages": {},
    }
    try:
        with open("/proc/meminfo") as fh:
            info["memory_bytes"] = int(fh.readline().split()[1]) * 1024
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    for name in PACKAGES:
        try:
            info["packages"][name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            info["packages"][name] = None
    try:
        out = subprocess.run(["mysql", "-h127.0.0.1", "-uroot", "-N", "-e",
                              "SELECT @@version, @@innodb_flush_log_at_trx_commit, @@innodb_buffer_pool_size"],
                             capture_output=True, text=True, timeout=5).stdout.split()
        if len(out) == 3:
            info["mariadb"] = {"version": out[0], "innodb_flush_log_at_trx_commit": int(out[1]),
                               "innodb_buffer_pool_size": int(out[2])}
    except (OSError, subprocess.SubprocessError, ValueError):
        pass
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=os.path.dirname(RESULTS)).stdout.strip()
        info["git_head"] = rev or None
    except (OSError, subprocess.SubprocessError):
        pass
    return info


def python_loop_ms() -> float:
    """Milliseconds this machine takes for a fixed pure-Python loop (best of three).

    Machines of one kind differ from day to day (one ran the same loop four
    times slower than another): compare figures of different runs only with
    this beside them, and ratios to the baseline of the same run always.
    """
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        total = 0
        for i in range(1_000_000):
            total += i
        best = min(best, time.perf_counter() - started)
    return round(best * 1000, 1)


def percentiles(values: Sequence[float]) -> dict[str, float | int | None]:
    """count, p50/p90/p99/p999, max, mean (same unit as the values)."""
    if not values:
        return {"count": 0, "p50": None, "p90": None, "p99": None, "p999": None, "max": None, "mean": None}
    s = sorted(values)
    n = len(s)

    def at(q: float) -> float:
        return round(s[min(n - 1, int(q * n))], 3)

    return {"count": n, "p50": at(0.50), "p90": at(0.90), "p99": at(0.99), "p999": at(0.999),
            "max": round(s[-1], 3), "mean": round(sum(s) / n, 3)}


def ratio(ours: float | None, baseline: float | None) -> float | None:
    if not ours or not baseline:
        return None
    return round(ours / baseline, 3)


def command() -> str:
    return "python -m bench " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def write(scenario: str, result: dict[str, Any], out_dir: str | None = None) -> str:
    """Write the JSON (and the PNG, when possible); returns the JSON path."""
    out_dir = out_dir or RESULTS
    os.makedirs(out_dir, exist_ok=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    base = os.path.join(out_dir, f"{scenario}-{stamp}")
    result = dict(result, scenario=scenario, finished_at=stamp)
    plot_path = base + ".png"
    try:
        from . import plots
        if plots.plot(scenario, result, plot_path):
            result["plot"] = os.path.basename(plot_path)
    except ImportError:
        result["plot"] = None
    with open(base + ".json", "w") as fh:
        json.dump(result, fh, indent=1, default=str)
    return base + ".json"
