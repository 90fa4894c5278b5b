"""The message commands of a load-generator process: `c2c` and `c2g_*`.

A mixin of `bench.loadgen.Worker` (which owns the connections, counters and
the reader that records deliveries); kept apart so each file stays short.
"""
from __future__ import annotations

import collections
import random
import time

import gevent
import ujson
from gevent.lock import Semaphore

now = time.monotonic
BIN = 0.5  # seconds per bin of the delivery histogram


class MessageCommands:
    """Senders and result collection; deliveries are counted by `Worker._on_text`."""

    # one-to-one ----------------------------------------------------------------------------
    def cmd_c2c(self, pairs: list, mode: str = "window", window: int = 4, rate: float = 100.0,
                duration: float = 10.0, warmup: float = 2.0, drain: float = 10.0, size: int = 64,
                t0: float | None = None, tag: str = "m") -> dict:
        """Pairs [sender key, receiver key, receiver address] send for `duration` s.

        window: each sender keeps `window` messages undelivered at most (saturation);
        rate: this worker offers `rate` messages/s in all, spread over its pairs.
        """
        self.t0 = t0 if t0 is not None else now()
        start = max(now(), self.t0)
        self.inflight.clear()
        self.latencies = []
        self.bins = collections.Counter()
        self.lat_from, self.lat_to = start + warmup, start + duration
        self.windows = [Semaphore(window) for _ in pairs] if mode == "window" else []
        before = dict(self.c)
        pad = "x" * size
        stop = start + duration
        sent = [0]

        def send(i: int, seq: int) -> bool:
            skey, _, to = pairs[i]
            mid = f"{tag}{skey}-{seq}"
            t = now()
            self.inflight[mid] = (t, i)
            body = ujson.dumps({"id": mid, "type": "C2C", "to": to, "created_at": int(time.time() * 1000),
                                "payload": {"t": t, "x": pad}})
            conn = self.conns[skey]
            if not conn.open or not self._send(conn, body):
                self.inflight.pop(mid, None)
                self.error("send", "connection closed")
                return False
            sent[0] += 1
            return True

        def window_sender(i: int) -> None:
            sem = self.windows[i]
            seq = 0
            while now() < stop:
                if not sem.acquire(timeout=max(0.0, stop - now())):
                    break
                if now() >= stop:
                    break
                seq += 1
                if not send(i, seq):
                    break

        def rate_sender(i: int, per_pair: float) -> None:
            interval = 1.0 / per_pair
            due = start + random.uniform(0, interval)
            seq = 0
            while due < stop:
                gevent.sleep(max(0.0, due - now()))
                seq += 1
                if len(self.inflight) > 20000:
                    self.c["skipped"] += 1
                elif not send(i, seq):
                    break
                due += interval

        gevent.sleep(max(0.0, start - now()))
        if mode == "window":
            gl = [gevent.spawn(window_sender, i) for i in range(len(pairs))]
        else:
            per_pair = max(rate / max(1, len(pairs)), 1e-3)
            gl = [gevent.spawn(rate_sender, i, per_pair) for i in range(len(pairs))]
        gevent.joinall(gl)
        end_send = now()
        deadline = end_send + drain
        acks0 = before.get("server_acks", 0)
        while (self.inflight or self.c["server_acks"] - acks0 < sent[0]) and now() < deadline:
            gevent.sleep(0.05)
        result = {"sent": sent[0], "undelivered": len(self.inflight), "start": start, "end_send": end_send,
                  "latencies_ms": [round(x, 3) for x in self.latencies],
                  "bins": {str(k): v for k, v in sorted(self.bins.items())}}
        for key in ("delivered", "server_acks", "c2c_in", "skipped"):
            result[key] = self.c[key] - before.get(key, 0)
        self.windows = []
        self.inflight.clear()
        return result

    # groups -----------------------------------------------------------------------------------
    def cmd_c2g_reset(self, ack_to: str = "") -> dict:
        self.group = {}
        self.group_seen = set()
        self.bins = collections.Counter()
        self.group_ack_to = ack_to
        return {}

    def cmd_c2g_send(self, sender: int, to: str, messages: int, interval: float = 0.0,
                     wait_ack: bool = True, size: int = 64, tag: str = "g", t0: float | None = None,
                     window: int = 1) -> dict:
        """Send `messages` group messages from one connection; back to back or every `interval` s.

        With `wait_ack`, at most `window` messages are sent and not yet acked by
        the server: 1 waits for each one's ack before the next."""
        self.t0 = t0 if t0 is not None else now()
        conn = self.conns[sender]
        pad = "x" * size
        times = []
        start = now()
        acks0 = self.c["server_acks"]
        for seq in range(messages):
            if interval:
                gevent.sleep(max(0.0, start + seq * interval - now()))
            if wait_ack:
                self._wait_server_acks(acks0 + seq + 1 - window)
            t = now()
            mid = f"{tag}{sender}-{seq}"
            if not self._send(conn, ujson.dumps({"id": mid, "type": "C2G", "to": to,
                                                 "created_at": int(time.time() * 1000),
                                                 "payload": {"t": t, "x": pad}})):
                self.error("send", "group sender closed")
                break
            times.append([mid, t])
        if wait_ack:
            self._wait_server_acks(acks0 + len(times))
        return {"sent": times, "end": now()}

    def _wait_server_acks(self, total: int, timeout: float = 30.0) -> None:
        """Until this process has had `total` server acks (woken by each one, not polling)."""
        limit = now() + timeout
        acked = self.server_acked
        while True:
            acked.clear()
            if self.c["server_acks"] >= total or now() >= limit:
                return
            acked.wait(limit - now())

    def cmd_c2g_collect(self) -> dict:
        return {"messages": self.group, "bins": {str(k): v for k, v in sorted(self.bins.items())}}
