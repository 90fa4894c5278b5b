"""The command line: `python -m bench <scenario> [options]` or `python bench/run.py ...`.

Each scenario sets up a throwaway database, starts the imboy server and the
baseline relay itself, drives them with the load generator, writes
`bench/results/<scenario>-<time>.json` (+ `.png`) and prints a summary.
Every process it started is ended before it returns, even on Ctrl-C.
"""
from __future__ import annotations

if __name__ == "__main__":  # `python bench/run.py`: same as `python -m bench`
    import os
    import sys

    from gevent import monkey

    monkey.patch_all()
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse  # noqa: E402
import json  # noqa: E402
import signal  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402

SCENARIOS = ("connections", "c2c", "c2g", "reconnect", "offline")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description="imboy benchmarks (see bench/README.md)")
    sub = p.add_subparsers(dest="scenario", required=True)

    def common(s: argparse.ArgumentParser, db: str = "mysql") -> None:
        s.add_argument("--db", choices=("mysql", "sqlite"), default=db,
                       help="throwaway MariaDB database at 127.0.0.1:3306 (root) or a SQLite file")
        s.add_argument("--mysql-socket", default=None,
                       help="reach MariaDB through this unix socket instead of TCP 127.0.0.1:3306")
        s.add_argument("--loadgen-procs", type=int, default=None, help="load generator processes (default: auto)")
        s.add_argument("--no-baseline", action="store_true", help="skip the baseline relay")
        s.add_argument("--out", default=None, help="results folder (default bench/results)")
        s.add_argument("--quiet", action="store_true")

    s = sub.add_parser("connections", help="N idle authenticated connections held T seconds")
    common(s)
    s.add_argument("--n", type=int, default=1000)
    s.add_argument("--hold", type=float, default=60.0, help="seconds to hold (the target: 600)")
    s.add_argument("--baseline-hold", type=float, default=None, help="default: min(hold, 60)")
    s.add_argument("--workers", type=int, default=None,
                   help="server processes (gunicorn + a private Redis when > 1; default: auto)")
    s.add_argument("--concurrency", type=int, default=200, help="handshakes in flight per load process")
    s.add_argument("--profile", action="store_true", help="py-spy a server process for 20 s of the ramp")

    s = sub.add_parser("c2c", help="friend pairs: saturation throughput, latency at a fixed rate")
    common(s)
    s.add_argument("--pairs", type=int, default=100)
    s.add_argument("--workers", type=int, default=1, help="server processes (more than 1: gunicorn + Redis)")
    s.add_argument("--window", default="1,4",
                   help="undelivered messages per sender at saturation; a list runs one phase each and keeps "
                        "the best (default 1,4)")
    s.add_argument("--duration", type=float, default=15.0, help="seconds per phase")
    s.add_argument("--warmup", type=float, default=3.0, help="seconds not counted at the start of a phase")
    s.add_argument("--rate", type=float, default=None, help="fixed offered rate (default: half of saturation)")
    s.add_argument("--size", type=int, default=64, help="payload padding bytes")
    s.add_argument("--profile", action="store_true", help="py-spy the server during the saturation phase")

    s = sub.add_parser("c2g", help="one group of M online members")
    common(s)
    s.add_argument("--members", type=int, default=1000)
    s.add_argument("--workers", type=int, default=1, help="server processes (more than 1: gunicorn + Redis)")
    s.add_argument("--messages", type=int, default=20, help="messages sent back to back (throughput)")
    s.add_argument("--window", type=int, default=1,
                   help="burst messages the sender has out without their server ack (default 1: each "
                        "waits for the previous one's ack)")
    s.add_argument("--paced", type=int, default=10, help="messages sent every --interval s (latency)")
    s.add_argument("--interval", type=float, default=1.0)
    s.add_argument("--no-ack", action="store_true", help="members do not send C2G_CLIENT_ACK")
    s.add_argument("--profile", action="store_true", help="py-spy the server for 15 s of the burst")
    s.add_argument("--timeout", type=float, default=120.0)

    s = sub.add_parser("reconnect", help="N clients drop at once and reconnect at once")
    common(s)
    s.add_argument("--n", type=int, default=1000)
    s.add_argument("--pending", type=int, default=1, help="messages waiting for each client")
    s.add_argument("--workers", type=int, default=None)
    s.add_argument("--concurrency", type=int, default=200, help="handshakes in flight for the first connect")
    s.add_argument("--deadline", type=float, default=120.0)

    s = sub.add_parser("offline", help="a user with many pending messages connects")
    common(s)
    s.add_argument("--pending", type=int, default=5000)
    s.add_argument("--size", type=int, default=64)
    s.add_argument("--timeout", type=float, default=120.0)
    return p


def summary(result: dict[str, Any]) -> dict[str, Any]:
    """The result without bulky arrays, for the terminal."""
    def strip(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: strip(x) for k, x in v.items() if k not in ("panels", "samples", "curve", "reconnect_curve",
                                                                   "got_curve", "machine")}
        return v
    return strip(result)


def main(argv: list[str] | None = None) -> str:
    args = parser().parse_args(argv)
    from . import report
    from .common import Context
    from .scenario_connections import run_connections, run_reconnect
    from .scenario_messages import run_c2c, run_c2g, run_offline

    runner = {"connections": run_connections, "c2c": run_c2c, "c2g": run_c2g, "reconnect": run_reconnect,
              "offline": run_offline}[args.scenario]
    ctx = Context(quiet=args.quiet)
    ctx.mysql_socket = args.mysql_socket
    started = time.time()
    load_before = os.getloadavg()
    loop_ms = report.python_loop_ms()

    def run() -> dict[str, Any]:
        try:
            return runner(ctx, args)
        finally:
            ctx.close()

    # SIGTERM (or Ctrl-C) ends the scenario through its clean-up: no server is left behind.
    job = gevent.spawn(run)
    for sig in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(sig, lambda: job.kill(KeyboardInterrupt, block=False))
    result = job.get()
    result["command"] = report.command() if argv is None else "python -m bench " + " ".join(argv)
    result["options"] = {k: v for k, v in vars(args).items() if k != "scenario"}
    result["wall_s"] = round(time.time() - started, 1)
    result["db_commit_ms"] = ctx.commit_probe
    result["machine"] = report.machine()
    # Other work on the machine skews timings: keep the load average beside them.
    result["machine"]["loadavg_before"] = [round(x, 2) for x in load_before]
    result["machine"]["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    result["machine"]["python_loop_ms"] = loop_ms
    path = report.write(args.scenario, result, args.out)
    if not args.quiet:
        print(json.dumps(summary(result), indent=1, default=str))
    print(path)
    return path


if __name__ == "__main__":
    from bench.run import main as _main  # the package's module, so relative imports work

    _main()
    sys.exit(0)
