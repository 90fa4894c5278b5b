"""Scenarios `c2c` (friend pairs), `c2g` (one big group) and `offline` (a full pending store).

Latency is send → the receiver has the frame, measured with CLOCK_MONOTONIC,
which every process of the machine shares.  Throughput is deliveries per
second in the steady part of a phase (after `warmup`), summed from the
load workers' half-second histograms.
"""
from __future__ import annotations

import os
import time
from typing import Any

import gevent

from imboy import ids

from . import profiling, report
from .common import Context, Sampler, now, wait_until
from .dataset import mint_tokens
from .loadgen_messages import BIN
from .profiling import Profile
from .report import percentiles, ratio
from .workers import IMBOY_HEADERS, baseline_specs, imboy_specs


def _connect_all(gen, specs, headers, ctx: Context, label: str, ack: bool = True) -> int:
    results = gen.each(lambda w, sp: w.call("connect", conns=sp, headers=headers, concurrency=100, ack=ack),
                       specs)
    n = sum(r["connected"] for r in results)
    ctx.log(f"{label}: {n} connected")
    return n


def _steady(results: list[dict[str, Any]], t0: float, start: float, warmup: float, duration: float) -> float:
    bins: dict[int, int] = {}
    for r in results:
        for k, v in r["bins"].items():
            bins[int(k)] = bins.get(int(k), 0) + v
    lo = int((start + warmup - t0) / BIN) + 1
    hi = int((start + duration - t0) / BIN)
    if hi <= lo:
        lo, hi = 0, max(bins or [0]) + 1
    return sum(bins.get(i, 0) for i in range(lo, hi)) / ((hi - lo) * BIN)


def _profile(server, args: Any, name: str) -> Profile | None:
    """py-spy on the server's (first) process for the steady part of a phase."""
    if not getattr(args, "profile", False) or not profiling.available():
        return None
    folder = args.out or report.RESULTS
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{name}-{time.strftime('%Y%m%dT%H%M%S')}.pyspy.txt")
    return Profile(server.pids[0], max(1.0, args.duration - 1), path)


def _c2c_phase(gen, pairs, server, mode: str, args: Any, rate: float, tag: str,
               profile_name: str | None = None) -> dict[str, Any]:
    t0 = now() + 0.5
    prof = _profile(server, args, profile_name) if profile_name else None
    cpu0, lcpu0, tcpu0 = server.cpu(), gen.cpu(), now()
    n = len(gen.workers)
    results = gen.each(lambda w, p: w.call("c2c", pairs=p, mode=mode, window=args.window, rate=rate / n,
                                           duration=args.duration, warmup=args.warmup, size=args.size,
                                           t0=t0, tag=tag), pairs)
    start = max(r["start"] for r in results)
    lat = [x for r in results for x in r["latencies_ms"]]
    wall = now() - tcpu0  # the whole phase, drain included, as the CPU figures are
    out = {"mode": mode, "offered_rate": round(rate, 1) if mode == "rate" else None,
           "sent": sum(r["sent"] for r in results), "delivered": sum(r["delivered"] for r in results),
           "undelivered": sum(r["undelivered"] for r in results),
           "server_acks": sum(r["server_acks"] for r in results),
           "skipped": sum(r["skipped"] for r in results),
           "msgs_per_s": round(_steady(results, t0, start, args.warmup, args.duration), 1),
           "latency_ms": percentiles(lat),
           "server_cpu_share": round((server.cpu() - cpu0) / max(wall, 1e-6), 3),
           "loadgen_cpu_share": round((gen.cpu() - lcpu0) / max(wall, 1e-6), 3)}
    out["_latencies"] = lat
    if prof is not None:
        out["profile"] = prof.finish()
    return out


def _cool_down(db, seconds: float = 3.0) -> None:
    """Between phases: every ack of the last phase stored, retry timers gone."""
    if db is not None:
        wait_until(lambda: db.pending_count() == 0, 60, 0.25)
    gevent.sleep(seconds)


def _c2c_run(ctx: Context, server, gen, specs, headers, pairs, args: Any, label: str,
             rate: float | None, db=None) -> dict[str, Any]:
    _connect_all(gen, specs, headers, ctx, label)
    gevent.sleep(0.5)
    windows = []
    for i, window in enumerate(args.windows):
        args.window = window
        sat = _c2c_phase(gen, pairs, server, "window", args, 0.0, f"s{i}-",
                         f"c2c-{args.db}-{label}-w{window}" if label == "imboy" else None)
        sat["window"] = window
        windows.append(sat)
        ctx.log(f"{label}: window {window}: {sat['msgs_per_s']} msgs/s (server CPU {sat['server_cpu_share']:.0%}, "
                f"p99 {sat['latency_ms']['p99']} ms)")
        _cool_down(db)
    sat = max(windows, key=lambda r: r["msgs_per_s"])
    for other in windows:
        if other is not sat:
            other.pop("_latencies", None)
    rate = rate or args.rate or max(1.0, sat["msgs_per_s"] / 2)
    fixed = _c2c_phase(gen, pairs, server, "rate", args, rate, "r")
    ctx.log(f"{label}: at {rate:.0f} msgs/s offered: {fixed['msgs_per_s']} msgs/s, latency p50 "
            f"{fixed['latency_ms']['p50']} p99 {fixed['latency_ms']['p99']} max {fixed['latency_ms']['max']} ms")
    st = gen.status()
    return {"saturation": sat, "saturation_by_window": [{k: v for k, v in w.items() if k != "_latencies"}
                                                        for w in windows],
            "fixed_rate": fixed, "errors": st.get("errors", {}),
            "error_samples": st.get("error_samples", []), "dropped": st.get("dropped", 0),
            "untracked_deliveries": st.get("c2c_untracked", 0)}


def run_c2c(ctx: Context, args: Any) -> dict[str, Any]:
    p = args.pairs
    db = ctx.database(args.db)
    uids = db.add_users(2 * p)
    db.befriend([(uids[2 * i], uids[2 * i + 1]) for i in range(p)])
    users = mint_tokens(ctx.secret, uids)
    args.windows = [int(x) for x in str(args.window).split(",") if x.strip()]
    result: dict[str, Any] = {"pairs": p, "db": args.db, "windows": args.windows, "duration_s": args.duration,
                              "warmup_s": args.warmup, "payload_pad_bytes": args.size,
                              "server_workers": args.workers}
    server = ctx.imboy(db, args.workers)
    result["server_command"] = " ".join(server.command)
    gen = ctx.loadgen(2 * p, args.loadgen_procs or 2)
    w = len(gen.workers)
    worker_of = lambda key: (key // 2) % w  # noqa: E731  both ends of a pair in one process
    pairs = [[] for _ in range(w)]
    for i in range(p):
        pairs[i % w].append([2 * i, 2 * i + 1, users[2 * i + 1].hashid])
    specs = imboy_specs(users, server.port, worker_of, gen.workers)
    result["imboy"] = imb = _c2c_run(ctx, server, gen, specs, IMBOY_HEADERS, pairs, args, "imboy", None, db)
    sent = sum(w["sent"] for w in imb["saturation_by_window"]) + imb["fixed_rate"]["sent"]
    wait_until(lambda: db.pending_count() == 0, 15, 0.2)
    result["stored"] = {"sent": sent, "rows": db.count("msg_c2c"), "still_pending": db.pending_count()}
    ctx.release(gen)
    ctx.release(server)

    if not args.no_baseline:
        base = ctx.baseline(1)
        gen = ctx.loadgen(2 * p, args.loadgen_procs or 2)
        bpairs = [[[a, b, str(b)] for a, b, _ in ps] for ps in pairs]
        specs = baseline_specs(2 * p, base.ports, worker_of, gen.workers)
        result["baseline"] = bl = _c2c_run(ctx, base, gen, specs, [], bpairs, args, "baseline",
                                           imb["fixed_rate"]["offered_rate"])
        ctx.release(gen)
        ctx.release(base)
        result["ratio"] = {"saturation_msgs_per_s": ratio(imb["saturation"]["msgs_per_s"],
                                                          bl["saturation"]["msgs_per_s"]),
                           "fixed_rate_p99": ratio(imb["fixed_rate"]["latency_ms"]["p99"],
                                                   bl["fixed_rate"]["latency_ms"]["p99"])}
    result["panels"] = [
        {"title": f"latency at a fixed offered rate ({imb['fixed_rate']['offered_rate']} msgs/s), CDF",
         "xlabel": "ms (log)", "ylabel": "fraction", "kind": "cdf", "logx": True,
         "series": {k: result[k]["fixed_rate"].pop("_latencies") for k in ("imboy", "baseline") if k in result}},
        {"title": "latency at saturation, CDF", "xlabel": "ms (log)", "ylabel": "fraction", "kind": "cdf",
         "logx": True,
         "series": {k: result[k]["saturation"].pop("_latencies") for k in ("imboy", "baseline") if k in result}},
    ]
    return result


# groups -------------------------------------------------------------------------------
def _c2g_phase(gen, to: str, ack_to: str, members: int, count: int, interval: float,
               timeout: float, tag: str, window: int = 1, db=None) -> dict[str, Any]:
    """Send `count` group messages; with `db` (the server's, members acking), also wait
    until every member's ack is stored: the pending group store is empty again."""
    gen.all("c2g_reset", ack_to=ack_to)
    before = gen.status()
    base_in = before.get("c2g_in", 0) - before.get("c2g_dupes", 0)
    t0 = now()
    sent = gen.workers[0].call("c2g_send", sender=0, to=to, messages=count, interval=interval, tag=tag, t0=t0,
                               window=window)
    expected = count * (members - 1)

    def unique_in() -> int:
        st = gen.status()
        return st.get("c2g_in", 0) - st.get("c2g_dupes", 0) - base_in

    complete = wait_until(lambda: unique_in() >= expected, timeout, 0.1)
    t_acked = None
    if db is not None and wait_until(lambda: not db.group_pending(), timeout, 0.05):
        t_acked = now()
    parts = gen.all("c2g_collect")
    merged: dict[str, list] = {}
    for part in parts:
        for mid, (n, worst, best, last) in part["messages"].items():
            m = merged.setdefault(mid, [0, 0.0, float("inf"), 0.0])
            m[0] += n
            m[1] = max(m[1], worst)
            m[2] = min(m[2], best)
            m[3] = max(m[3], last)
    sends = {mid: t for mid, t in sent["sent"]}
    delivered = sum(m[0] for m in merged.values())
    first = min(sends.values()) if sends else t0
    last = max((m[3] for m in merged.values()), default=first)
    st = gen.status()
    acked = {}
    if db is not None:
        # Deliveries per second counted until the last ack was stored, not received.
        acked = {"all_acked": t_acked is not None,
                 "all_acked_s": round(t_acked - first, 3) if t_acked is not None else None,
                 "acked_deliveries_per_s": (round(delivered / max(t_acked - first, 1e-6), 1)
                                            if t_acked is not None else None)}
    return {"messages": len(sends), "members": members, "expected_deliveries": expected,
            "deliveries": delivered, "complete": complete,
            "deliveries_per_s": round(delivered / max(last - first, 1e-6), 1),
            "seconds": round(last - first, 3), **acked,
            "last_member_latency_ms": percentiles([m[1] for m in merged.values()]),
            "first_member_latency_ms": percentiles([m[2] for m in merged.values()]),
            "duplicates": st.get("c2g_dupes", 0) - before.get("c2g_dupes", 0),
            "_per_message": [[round(sends.get(mid, first) - first, 3), round(m[1], 2)]
                             for mid, m in sorted(merged.items(), key=lambda kv: sends.get(kv[0], 0))]}


def _c2g_run(ctx: Context, gen, specs, headers, to: str, ack_to: str, args: Any, label: str,
             server=None, db=None) -> dict[str, Any]:
    _connect_all(gen, specs, headers, ctx, label, ack=not args.no_ack)
    gevent.sleep(0.5)
    prof = None
    if server is not None and args.profile and profiling.available():
        folder = args.out or report.RESULTS
        os.makedirs(folder, exist_ok=True)
        prof = Profile(server.pids[0], 15, os.path.join(folder, f"c2g-{args.db}-{time.strftime('%Y%m%dT%H%M%S')}"
                                                        ".pyspy.txt"))
    burst = _c2g_phase(gen, to, ack_to, args.members, args.messages, 0.0, args.timeout, "b", args.window, db)
    if prof is not None:
        burst["profile"] = prof.finish()
    acked = f"; all acks stored {burst['all_acked_s']} s after the first send" if db is not None else ""
    ctx.log(f"{label}: burst {burst['deliveries']}/{burst['expected_deliveries']} deliveries, "
            f"{burst['deliveries_per_s']}/s, last member p50 {burst['last_member_latency_ms']['p50']} ms{acked}")
    paced = _c2g_phase(gen, to, ack_to, args.members, args.paced, args.interval, args.timeout, "p", 1, db)
    ctx.log(f"{label}: paced last-member latency p50 {paced['last_member_latency_ms']['p50']} "
            f"max {paced['last_member_latency_ms']['max']} ms")
    st = gen.status()
    return {"burst": burst, "paced": paced, "errors": st.get("errors", {}),
            "error_samples": st.get("error_samples", []), "dropped": st.get("dropped", 0)}


def run_c2g(ctx: Context, args: Any) -> dict[str, Any]:
    m = args.members
    db = ctx.database(args.db)
    uids = db.add_users(m)
    gid = db.add_group(uids[0], uids)
    users = mint_tokens(ctx.secret, uids)
    result: dict[str, Any] = {"members": m, "db": args.db, "acks": not args.no_ack,
                              "burst_messages": args.messages, "burst_window": args.window,
                              "paced_messages": args.paced,
                              "paced_interval_s": args.interval, "server_workers": args.workers}
    env = {"IMBOY_ACK_RETRY_SCHEDULE": "600"} if args.no_ack else None
    server = ctx.imboy(db, args.workers, env)
    result["server_command"] = " ".join(server.command)
    gen = ctx.loadgen(m, args.loadgen_procs or 2)
    w = len(gen.workers)
    specs = imboy_specs(users, server.port, lambda k: k % w, gen.workers)
    sampler = Sampler(server, None, 0.5).start()
    result["imboy"] = _c2g_run(ctx, gen, specs, IMBOY_HEADERS, ids.encode(gid), "", args, "imboy", server,
                               None if args.no_ack else db)
    result["imboy"]["server_rss_max"] = max((s["rss"] for s in sampler.stop()), default=0)
    ctx.release(gen)
    ctx.release(server)
    if not args.no_baseline:
        base = ctx.baseline(1)
        gen = ctx.loadgen(m, args.loadgen_procs or 2)
        specs = baseline_specs(m, base.ports, lambda k: k % w, gen.workers, group="g")
        result["baseline"] = _c2g_run(ctx, gen, specs, [], "#g", "-", args, "baseline")
        ctx.release(gen)
        ctx.release(base)
        result["ratio"] = {"deliveries_per_s": ratio(result["imboy"]["burst"]["deliveries_per_s"],
                                                     result["baseline"]["burst"]["deliveries_per_s"])}
    result["panels"] = [
        {"title": "burst: latency of the last member per message (x: send time)", "xlabel": "s",
         "ylabel": "ms", "series": {k: result[k]["burst"].pop("_per_message") for k in ("imboy", "baseline")
                                    if k in result}},
        {"title": "paced: latency of the last member per message", "xlabel": "s", "ylabel": "ms",
         "series": {k: result[k]["paced"].pop("_per_message") for k in ("imboy", "baseline") if k in result}},
    ]
    return result


# a full pending store -----------------------------------------------------------------------
def run_offline(ctx: Context, args: Any) -> dict[str, Any]:
    n = args.pending
    db = ctx.database(args.db)
    receiver, sender = db.add_users(2)
    db.befriend([(receiver, sender)])
    payload = '{"text":"%s"}' % ("x" * args.size)
    db.add_pending([(sender, receiver, f"o{i}", payload) for i in range(n)])
    user = mint_tokens(ctx.secret, [receiver])[0]
    server = ctx.imboy(db, 1)
    gen = ctx.loadgen(1, 1)
    curve: list[list[float]] = []
    t0 = now()
    stop = [False]

    def watch() -> None:
        while not stop[0]:
            curve.append([round(now() - t0, 3), gen.status().get("got_total", 0)])
            gevent.sleep(0.1)

    watcher = gevent.spawn(watch)
    spec = [[0, f"/ws?cos=web&authorization={user.token}", server.port, gen.workers[0].source(0)]]
    conn = gen.workers[0].call("connect", conns=spec, headers=IMBOY_HEADERS, expect=n)
    delivered = wait_until(lambda: gen.status().get("expect_waiting", 1) == 0, args.timeout, 0.05)
    st = gen.status()
    t_all = max(st.get("all_got_at_list") or [now()])
    acked = wait_until(lambda: db.pending_count(receiver) == 0, args.timeout, 0.1)
    t_acked = now()
    stop[0] = True
    watcher.kill()
    st = gen.status()
    result = {
        "pending": n, "db": args.db, "payload_bytes": len(payload), "server_command": " ".join(server.command),
        "handshake_ms": conn["handshake_ms"][0] if conn["handshake_ms"] else None,
        "received": st.get("got_total", 0), "frames_in": st.get("c2c_in", 0),
        "all_delivered": delivered, "all_delivered_s": round(t_all - t0, 3) if delivered else None,
        "all_acked": acked, "all_acked_s": round(t_acked - t0, 3) if acked else None,
        "messages_per_s": round(n / max(t_all - t0, 1e-6), 1) if delivered else None,
        "errors": st.get("errors", {}), "dropped": st.get("dropped", 0),
    }
    ctx.log(f"offline: {n} pending delivered in {result['all_delivered_s']} s, acked in {result['all_acked_s']} s")
    result["panels"] = [{"title": f"offline user connects with {n} pending messages", "xlabel": "s",
                         "ylabel": "messages received", "series": {"imboy": curve}}]
    return result
