"""Scenarios `connections` (N idle connections held) and `reconnect` (all drop, all return).

Both run against imboy first and then, with the same load generator code and
the same N, against the baseline relay, and report each figure as a ratio.
"""
from __future__ import annotations

import math
import os
import time
from typing import Any

import gevent

from . import procs, profiling, report
from .common import Context, Sampler, auto_workers, now, series, wait_until
from .dataset import mint_tokens
from .report import percentiles, ratio
from .workers import IMBOY_HEADERS, PER_PROCESS, baseline_specs, imboy_specs


def _connect(gen, specs, headers, **kw) -> dict[str, Any]:
    results = gen.each(lambda w, sp: w.call("connect", conns=sp, headers=headers, **kw), specs)
    times = [x for r in results for x in r["handshake_ms"]]
    done = [x for r in results for x in r["done_at"]]
    t_start = min(r["t_start"] for r in results)
    t_end = max(done) if done else max(r["t_end"] for r in results)
    connected = sum(r["connected"] for r in results)
    span = max(t_end - t_start, 1e-6)
    return {"attempted": sum(r["attempted"] for r in results), "connected": connected,
            "seconds": round(span, 3), "handshakes_per_s": round(connected / span, 1),
            "handshake_ms": percentiles(times), "t_start": t_start,
            "curve": _curve(done, t_start)}


def _curve(done: list[float], t0: float, points: int = 200) -> list[list[float]]:
    """Connections completed over time, at most `points` points."""
    done = sorted(done)
    if not done:
        return []
    step = max(1, len(done) // points)
    out = [[round(done[i] - t0, 3), i + 1] for i in range(0, len(done), step)]
    out.append([round(done[-1] - t0, 3), len(done)])
    return out


def _worker_spread(server) -> list[int]:
    """Open file descriptors per server process (≈ its connections)."""
    return [procs.open_fds(pid) for pid in server.pids]


def _hold(ctx: Context, server, gen, specs, headers, n: int, hold: float, concurrency: int,
          label: str, profile: str | None = None) -> dict[str, Any]:
    """Connect n clients, hold them `hold` s, measure memory; then drop them."""
    prof = None
    if profile and profiling.available():
        pids = server.pids
        # gunicorn: the master does not serve; sample one worker
        prof = profiling.Profile(pids[1] if len(pids) > 1 else pids[0], 20, profile)
    empty = server.memory()
    sock0, slab0 = procs.sockstat(), procs.slabs()
    sampler = Sampler(server, gen).start()
    overflows0 = procs.listen_overflows()
    ctx.log(f"{label}: connecting {n} clients")
    conn = _connect(gen, specs, headers, concurrency=concurrency, ping=50.0)
    ctx.log(f"{label}: {conn['connected']}/{n} connected in {conn['seconds']} s "
            f"({conn['handshakes_per_s']}/s); holding {hold:.0f} s")
    gevent.sleep(hold)
    st = gen.status()
    full = server.memory()
    sock1, slab1 = procs.sockstat(), procs.slabs()
    samples = sampler.stop()
    held = st.get("open", 0)
    per_conn = lambda a, b: round((a - b) / held) if held else None  # noqa: E731
    out = {
        "connect": conn, "held_open": held,
        "listen_queue_overflows": {k: v - overflows0.get(k, 0) for k, v in procs.listen_overflows().items()}, "failed": st.get("failed", 0), "dropped": st.get("dropped", 0),
        "retries": st.get("retries", 0), "errors": st.get("errors", {}), "error_samples": st.get("error_samples", []),
        "close_codes": st.get("close_codes", {}), "pings": st.get("pings", 0), "pongs": st.get("pongs", 0),
        "server_processes": full["processes"], "empty_rss": empty["rss"], "full_rss": full["rss"],
        "empty_pss": empty["pss"], "full_pss": full["pss"],
        "rss_per_connection": per_conn(full["rss"], empty["rss"]),
        "pss_per_connection": per_conn(full["pss"], empty["pss"]),
        "tcp_mem_bytes": sock1.get("mem_bytes", 0) - sock0.get("mem_bytes", 0),
        "sockstat_before": sock0, "sockstat_after": sock1,
        "kernel_slab_per_connection_both_ends": {k: per_conn(slab1.get(k, 0), slab0.get(k, 0)) for k in slab1},
        "fds_per_server_process": _worker_spread(server),
        "loadgen_rss_per_connection": per_conn(gen.memory()["rss"], 0),
        "samples": samples,
    }
    if prof is not None:
        out["profile_during_handshakes"] = prof.finish()
    return out


def run_connections(ctx: Context, args: Any) -> dict[str, Any]:
    n = args.n
    db = ctx.database(args.db)
    uids = db.add_users(n)
    users = mint_tokens(ctx.secret, uids)
    workers = args.workers or auto_workers(n)
    result: dict[str, Any] = {"n": n, "hold_s": args.hold, "db": args.db, "server_workers": workers}

    ctx.log(f"imboy: {workers} worker(s) on {args.db}")
    server = ctx.imboy(db, workers)
    result["server_command"] = " ".join(server.command)
    gen = ctx.loadgen(n, args.loadgen_procs)
    specs = imboy_specs(users, server.port, lambda k: k % len(gen.workers), gen.workers)
    profile = None
    if args.profile:
        folder = args.out or report.RESULTS
        os.makedirs(folder, exist_ok=True)
        profile = os.path.join(folder, f"connections-{n}-{time.strftime('%Y%m%dT%H%M%S')}.pyspy.txt")
    result["imboy"] = _hold(ctx, server, gen, specs, IMBOY_HEADERS, n, args.hold, args.concurrency, "imboy",
                            profile)
    gen.all("drop", timeout=120)
    ctx.release(gen)
    ctx.release(server)

    if not args.no_baseline:
        k = max(1, math.ceil(n / PER_PROCESS))
        base = ctx.baseline(k)
        result["baseline_processes"] = k
        gen = ctx.loadgen(n, args.loadgen_procs)
        specs = baseline_specs(n, base.ports, lambda key: key % len(gen.workers), gen.workers)
        hold = args.baseline_hold if args.baseline_hold is not None else min(args.hold, 60)
        result["baseline"] = _hold(ctx, base, gen, specs, [], n, hold, args.concurrency, "baseline")
        gen.all("drop", timeout=120)
        ctx.release(gen)
        ctx.release(base)
        b, i = result["baseline"], result["imboy"]
        result["ratio"] = {"rss_per_connection": ratio(i["rss_per_connection"], b["rss_per_connection"]),
                           "pss_per_connection": ratio(i["pss_per_connection"], b["pss_per_connection"]),
                           "handshakes_per_s": ratio(i["connect"]["handshakes_per_s"],
                                                     b["connect"]["handshakes_per_s"])}
    panels = [
        {"title": "open connections", "xlabel": "s", "ylabel": "connections",
         "series": {k: series(result[k]["samples"], "open") for k in ("imboy", "baseline") if k in result}},
        {"title": "server memory (summed RSS of all its processes)", "xlabel": "s", "ylabel": "MiB",
         "series": {k: series(result[k]["samples"], "rss", 1 / 2**20) for k in ("imboy", "baseline")
                    if k in result}},
        {"title": "kernel TCP buffer memory (/proc/net/sockstat)", "xlabel": "s", "ylabel": "MiB",
         "series": {k: series(result[k]["samples"], "tcp_mem", 1 / 2**20) for k in ("imboy", "baseline")
                    if k in result}},
    ]
    result["panels"] = panels
    return result


def run_reconnect(ctx: Context, args: Any) -> dict[str, Any]:
    n, k = args.n, args.pending
    db = ctx.database(args.db)
    uids = db.add_users(n)
    users = mint_tokens(ctx.secret, uids)
    workers = args.workers or auto_workers(n)
    result: dict[str, Any] = {"n": n, "pending_per_user": k, "db": args.db, "server_workers": workers}
    server = ctx.imboy(db, workers)
    result["server_command"] = " ".join(server.command)
    gen = ctx.loadgen(n, args.loadgen_procs)
    specs = imboy_specs(users, server.port, lambda key: key % len(gen.workers), gen.workers)
    result["imboy"] = _reconnect(ctx, server, gen, specs, IMBOY_HEADERS, n, k, args, db, uids)
    gen.all("drop", timeout=120)
    ctx.release(gen)
    ctx.release(server)

    if not args.no_baseline:
        procs_n = max(1, math.ceil(n / PER_PROCESS))
        base = ctx.baseline(procs_n)
        gen = ctx.loadgen(n, args.loadgen_procs)
        specs = baseline_specs(n, base.ports, lambda key: key % len(gen.workers), gen.workers)
        result["baseline"] = _reconnect(ctx, base, gen, specs, [], n, 0, args, None, None)
        gen.all("drop", timeout=120)
        ctx.release(gen)
        ctx.release(base)
        result["ratio"] = {"all_back_s": ratio(result["imboy"]["all_back_s"], result["baseline"]["all_back_s"])}
    result["panels"] = [
        {"title": "clients back after everyone dropped at t=0", "xlabel": "s", "ylabel": "connections",
         "series": {key: result[key]["reconnect_curve"] for key in ("imboy", "baseline") if key in result}},
        {"title": "imboy: pending messages received", "xlabel": "s", "ylabel": "messages",
         "series": {"imboy": result["imboy"]["got_curve"]}},
    ]
    return result


def _reconnect(ctx: Context, server, gen, specs, headers, n: int, k: int, args: Any, db, uids) -> dict[str, Any]:
    label = "imboy" if db is not None else "baseline"
    ctx.log(f"{label}: connecting {n} clients")
    first = _connect(gen, specs, headers, concurrency=args.concurrency)
    # Let the server finish the (empty) pending flush of every first connect,
    # so the messages below wait for the reconnect.
    gevent.sleep(3.0)
    if db is not None and k:
        rows = [(uids[(i + 1) % n], uids[i], f"p{i}-{j}", '{"text":"while you were away"}')
                for i in range(n) for j in range(k)]
        db.add_pending(rows)
    gevent.sleep(1.0)
    ctx.log(f"{label}: {first['connected']} connected; all drop now and reconnect at once")
    early = gen.status().get("c2c_in", 0)
    overflows0 = procs.listen_overflows()
    gen.all("drop", timeout=60)
    t_drop = now()
    got_curve: list[list[float]] = []
    sampler_stop = [False]

    def watch() -> None:
        while not sampler_stop[0]:
            st = gen.status()
            got_curve.append([round(now() - t_drop, 2), st.get("got_total", 0)])
            gevent.sleep(0.25)

    watcher = gevent.spawn(watch)
    again = _connect(gen, [[] for _ in gen.workers], headers, concurrency=0, reuse=True, expect=k,
                     deadline=args.deadline, retries=1000, backoff=1.0)
    all_back = again["connected"] == n
    delivered = True
    if k:
        delivered = wait_until(lambda: gen.status().get("expect_waiting", 1) == 0,
                               max(1.0, args.deadline - (now() - t_drop)), 0.2)
    st = gen.status()
    t_delivered = max(st.get("all_got_at_list") or [now()])
    acked_s = None
    if db is not None and k:
        if wait_until(lambda: db.pending_count() == 0, 60, 0.25):
            acked_s = round(now() - t_drop, 3)
    sampler_stop[0] = True
    watcher.kill()
    overflows1 = procs.listen_overflows()
    out = {
        "listen_queue_overflows": {k: v - overflows0.get(k, 0) for k, v in overflows1.items()},
        "first_connect": {key: first[key] for key in ("connected", "seconds", "handshakes_per_s", "handshake_ms")},
        "reconnected": again["connected"], "all_back": all_back,
        "all_back_s": round(again["t_start"] - t_drop + again["seconds"], 3) if all_back else None,
        "handshake_ms": again["handshake_ms"],
        "pending_expected": n * k, "pending_received": st.get("got_total", 0),
        "delivered_before_the_drop": early,
        "all_pending_delivered_s": round(t_delivered - t_drop, 3) if k and delivered else None,
        "all_pending_acked_s": acked_s,
        "failed": st.get("failed", 0), "retries": st.get("retries", 0), "errors": st.get("errors", {}),
        "error_samples": st.get("error_samples", []), "dropped_unexpectedly": st.get("dropped", 0),
        "error_frames": st.get("errors", {}).get("error frame", 0),
        "reconnect_curve": [[round(t + again["t_start"] - t_drop, 3), c] for t, c in again["curve"]],
        "got_curve": got_curve,
    }
    ctx.log(f"{label}: back {out['reconnected']}/{n} in {out['all_back_s']} s; "
            f"pending delivered in {out['all_pending_delivered_s']} s, acked in {acked_s} s")
    return out
