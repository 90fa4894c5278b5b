"""The benchmark harness keeps working: every scenario at a tiny size.

Each scenario runs as a user runs it (`python -m bench <scenario> ...`, a
separate process that starts its own imboy server, baseline relay and load
generator) and the JSON it writes is checked for facts that do not depend
on speed: every message delivered, every client back, the machine recorded.
No timing is asserted.  The runs start together (module fixture) so the
whole file takes about as long as the slowest one.
"""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pymysql
import pytest

from .conftest import IN_CI, MYSQL

REPO = Path(__file__).resolve().parent.parent
TIMEOUT = 240

RUNS = {
    "connections": ["connections", "--n", "30", "--hold", "1", "--db", "sqlite"],
    "c2c_sqlite": ["c2c", "--pairs", "8", "--window", "1,2", "--duration", "2", "--warmup", "0.5", "--db", "sqlite"],
    "c2c_mysql": ["c2c", "--pairs", "8", "--window", "2", "--duration", "2", "--warmup", "0.5", "--db", "mysql"],
    "c2g": ["c2g", "--members", "30", "--messages", "8", "--window", "3", "--paced", "3", "--interval", "0.1",
            "--timeout", "30", "--db", "sqlite"],
    "reconnect": ["reconnect", "--n", "30", "--pending", "2", "--db", "sqlite"],
    "offline": ["offline", "--pending", "300", "--db", "sqlite"],
}


def _mysql_reachable() -> str | None:
    try:
        pymysql.connect(connect_timeout=3, **MYSQL).close()
        return None
    except pymysql.err.MySQLError as exc:
        return str(exc)


@pytest.fixture(scope="module")
def bench_runs(tmp_path_factory):
    """Start every run at once; tests wait for their own."""
    out = tmp_path_factory.mktemp("bench")
    mysql_error = _mysql_reachable()
    procs = {}
    for name, argv in RUNS.items():
        if "mysql" in argv and mysql_error:
            procs[name] = mysql_error
            continue
        folder = out / name
        folder.mkdir()
        procs[name] = (subprocess.Popen([sys.executable, "-m", "bench", *argv, "--quiet", "--out", str(folder)],
                                        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT),
                       folder)
    yield procs
    for entry in procs.values():
        if isinstance(entry, tuple) and entry[0].poll() is None:
            entry[0].terminate()  # the harness stops what it started, then exits
            try:
                entry[0].wait(30)
            except subprocess.TimeoutExpired:
                entry[0].kill()
                entry[0].wait()


def result(bench_runs, name: str) -> dict:
    entry = bench_runs[name]
    if isinstance(entry, str):
        if IN_CI:
            pytest.fail(f"MariaDB is required under CI=true: {entry}")
        pytest.skip(f"MariaDB not reachable: {entry}")
    proc, folder = entry
    try:
        output, _ = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.terminate()
        output, _ = proc.communicate()
        pytest.fail(f"bench {name} did not finish:\n{output.decode(errors='replace')[-3000:]}")
    text = output.decode(errors="replace")
    assert proc.returncode == 0, text[-3000:]
    files = sorted(folder.glob("*.json"))
    assert len(files) == 1, text[-3000:]
    data = json.loads(files[0].read_text())
    assert data["command"].startswith("python -m bench " + RUNS[name][0])
    assert data["machine"]["cores"] >= 1 and data["machine"]["python"]
    assert data["machine"]["packages"]["gevent"]
    assert data["machine"]["python_loop_ms"] > 0
    if importlib.util.find_spec("matplotlib") is not None:  # plots are optional
        assert (folder / data["plot"]).exists()
    return data


def test_connections(bench_runs):
    data = result(bench_runs, "connections")
    for side in ("imboy", "baseline"):
        run = data[side]
        assert run["connect"]["connected"] == 30 and run["held_open"] == 30
        assert run["failed"] == 0 and run["dropped"] == 0, run["error_samples"]
        assert run["server_processes"] >= 1 and run["full_rss"] > 0
        assert isinstance(run["rss_per_connection"], int)
    assert set(data["ratio"]) == {"rss_per_connection", "pss_per_connection", "handshakes_per_s"}


def _check_c2c(data: dict) -> None:
    for side in ("imboy", "baseline"):
        for phase in ("saturation", "fixed_rate"):
            run = data[side][phase]
            assert run["sent"] > 0
            assert run["delivered"] == run["sent"] and run["undelivered"] == 0, (side, phase, run)
            assert run["server_acks"] >= run["sent"]
            assert run["latency_ms"]["count"] > 0
        assert data[side]["errors"] == {}, data[side]["error_samples"]
    sent = sum(w["sent"] for w in data["imboy"]["saturation_by_window"]) + data["imboy"]["fixed_rate"]["sent"]
    assert data["stored"] == {"sent": sent, "rows": sent, "still_pending": 0}


def test_c2c_sqlite(bench_runs):
    _check_c2c(result(bench_runs, "c2c_sqlite"))


def test_c2c_mysql(bench_runs):
    _check_c2c(result(bench_runs, "c2c_mysql"))


def test_c2g(bench_runs):
    data = result(bench_runs, "c2g")
    for side in ("imboy", "baseline"):
        burst, paced = data[side]["burst"], data[side]["paced"]
        assert burst["complete"] and burst["deliveries"] == burst["expected_deliveries"] == 8 * 29
        assert paced["complete"] and paced["deliveries"] == 3 * 29
        assert burst["last_member_latency_ms"]["count"] == 8 and data["burst_window"] == 3
        assert data[side]["errors"] == {}, data[side]["error_samples"]
    # Every member's ack is stored: the pending group store is empty after each phase.
    for phase in ("burst", "paced"):
        stats = data["imboy"][phase]
        assert stats["all_acked"] and stats["all_acked_s"] >= stats["seconds"]
        assert 0 < stats["acked_deliveries_per_s"] <= stats["deliveries_per_s"] * 1.01


def test_reconnect(bench_runs):
    data = result(bench_runs, "reconnect")
    imboy = data["imboy"]
    assert imboy["delivered_before_the_drop"] == 0
    assert imboy["reconnected"] == 30 and imboy["all_back"]
    assert imboy["pending_expected"] == 60 and imboy["pending_received"] >= 60
    assert imboy["all_pending_delivered_s"] is not None and imboy["all_pending_acked_s"] is not None
    assert imboy["failed"] == 0
    assert data["baseline"]["reconnected"] == 30 and data["baseline"]["all_back"]


def test_offline(bench_runs):
    data = result(bench_runs, "offline")
    assert data["all_delivered"] and data["all_acked"]
    assert data["received"] >= 300 and data["errors"] == {}
