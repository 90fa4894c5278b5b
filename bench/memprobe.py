"""Where an idle connection's bytes go: tracemalloc and object counts in a live server.

    python bench/memprobe.py --n 2000 [--db sqlite|mysql] [--frames 8]

Builds the app the way wsgi.py does (`create_app()` on a throwaway
database), serves it in this process with tracemalloc on, connects `n`
authenticated idle clients from a separate load-generator process, and
compares two snapshots (before and after): the top allocation sites per
connection, the Python objects that appeared per connection, and RSS.
The result goes to bench/results/memprobe-<time>.json and is printed.
"""
from __future__ import annotations

if __name__ == "__main__":
    import os
    import sys

    from gevent import monkey

    monkey.patch_all()
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse  # noqa: E402
import collections  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import tracemalloc  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402


def _types() -> collections.Counter:
    gc.collect()
    return collections.Counter(type(o).__qualname__ for o in gc.get_objects())


def _greenlets_and_methods(before: set[int]) -> tuple[dict[str, Any], collections.Counter]:
    """For objects that appeared since `before` (ids): the greenlets' saved C
    stacks, and the bound methods by owner (each costs 64 bytes for as long
    as it is held, typically on a waiting stack)."""
    import greenlet

    stacks: list[int] = []
    methods: collections.Counter = collections.Counter()
    for o in gc.get_objects():
        if id(o) in before:
            continue
        if isinstance(o, greenlet.greenlet):
            stacks.append(getattr(o, "_stack_saved", 0))
        elif type(o).__name__ == "method":
            methods[f"{type(o.__self__).__qualname__}.{o.__func__.__name__}"] += 1
    saved = {"greenlets": len(stacks), "mean_c_stack_saved": round(sum(stacks) / max(len(stacks), 1))}
    return saved, methods


def _small_rfile(size: int) -> None:
    """Experiment (this process only): the handshake reader gets a `size`-byte buffer, not 8 KiB."""
    from imboy.ws.handler import ImboyWebSocketHandler

    original = ImboyWebSocketHandler.__init__

    def init(self: Any, sock: Any, address: Any, server: Any, rfile: Any = None) -> None:
        original(self, sock, address, server, rfile if rfile is not None else sock.makefile("rb", size))

    ImboyWebSocketHandler.__init__ = init


def probe(n: int, db_kind: str, frames: int, rfile_buffer: int | None = None) -> dict[str, Any]:
    from bench import procs, report
    from bench.common import Context
    from bench.dataset import mint_tokens
    from bench.servers import rsa_key_path
    from bench.workers import IMBOY_HEADERS, imboy_specs
    from imboy import create_app
    from imboy.server import make_server

    if rfile_buffer:
        _small_rfile(rfile_buffer)
    ctx = Context()
    try:
        db = ctx.database(db_kind)
        users = mint_tokens(ctx.secret, db.add_users(n))
        app = create_app({"DATABASE_URL": db.url, "SECRET_KEY": ctx.secret, "LOG_LEVEL": "WARNING",
                          "INSTANCE_PATH": os.path.join(ctx.workdir, "instance"),
                          "RSA_PRIVATE_KEY": rsa_key_path()})
        server = make_server(app, "127.0.0.1", 0)
        server.start()
        gen = ctx.loadgen(n)
        specs = imboy_specs(users, server.server_port, lambda k: k % len(gen.workers), gen.workers)
        gevent.sleep(1)
        tracemalloc.start(frames)
        types0 = _types()
        ids0 = {id(o) for o in gc.get_objects()}
        rss0 = procs.rss(os.getpid())
        snap0 = tracemalloc.take_snapshot()
        gen.each(lambda w, sp: w.call("connect", conns=sp, headers=IMBOY_HEADERS, concurrency=100), specs)
        gevent.sleep(3)
        held = gen.status().get("open", 0)
        types1 = _types()
        stacks, methods = _greenlets_and_methods(ids0)
        del ids0
        snap1 = tracemalloc.take_snapshot()
        rss1 = procs.rss(os.getpid())
        traced = tracemalloc.get_traced_memory()[0]
        filters = [tracemalloc.Filter(False, tracemalloc.__file__)]
        diff = snap1.filter_traces(filters).compare_to(snap0.filter_traces(filters), "traceback")
        sites = []
        for stat in diff[:25]:
            sites.append({"bytes_per_connection": round(stat.size_diff / max(held, 1), 1),
                          "blocks_per_connection": round(stat.count_diff / max(held, 1), 2),
                          "where": [f"{os.path.relpath(f.filename)}:{f.lineno}" for f in stat.traceback][:frames]})
        by_line = snap1.filter_traces(filters).compare_to(snap0.filter_traces(filters), "lineno")
        total = sum(s.size_diff for s in by_line)
        objects = {t: round((types1[t] - types0.get(t, 0)) / max(held, 1), 2)
                   for t in types1 if types1[t] - types0.get(t, 0) >= held * 0.5}
        gen.all("drop")
        server.stop(timeout=2)
        app.extensions["imboy"].close()
        return {"n": n, "held": held, "db": db_kind, "traceback_frames": frames,
                "experiment_rfile_buffer": rfile_buffer,
                "python_heap_per_connection": round(total / max(held, 1)),
                "rss_per_connection_with_tracemalloc": round((rss1 - rss0) / max(held, 1)),
                "note": "RSS here includes tracemalloc's own bookkeeping; the heap figure does not",
                "traced_bytes": traced, "top_sites": sites,
                "objects_per_connection": dict(sorted(objects.items(), key=lambda kv: -kv[1])),
                "new_greenlets": stacks,
                "bound_methods_per_connection": {k: round(v / max(held, 1), 2) for k, v in methods.most_common(10)},
                "machine": report.machine()}
    finally:
        tracemalloc.stop()
        ctx.close()


def main() -> None:
    p = argparse.ArgumentParser(description="per-connection memory of an idle imboy connection")
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--db", choices=("sqlite", "mysql"), default="sqlite")
    p.add_argument("--frames", type=int, default=6, help="traceback depth of each allocation site")
    p.add_argument("--rfile-buffer", type=int, default=None,
                   help="experiment: give the handler's reader this buffer size instead of 8 KiB")
    args = p.parse_args()
    result = probe(args.n, args.db, args.frames, args.rfile_buffer)
    from bench import report
    result["command"] = ("python bench/memprobe.py " + f"--n {args.n} --db {args.db} --frames {args.frames}"
                         + (f" --rfile-buffer {args.rfile_buffer}" if args.rfile_buffer else ""))
    path = report.write("memprobe", result)
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=1))
    print(path)


if __name__ == "__main__":
    main()
