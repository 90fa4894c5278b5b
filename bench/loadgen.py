"""One load-generator process: thousands of connections on gevent.

Started by the harness as `python -m bench.loadgen`; it reads one JSON
command per line on stdin and answers each with one JSON line on stdout,
tagged with the command's `rid` (commands run concurrently, so `status` can be
asked while `connect` is still working).  See `bench/workers.py` for the
controller's side.

Every connection has one reader greenlet; it answers what a client must
(server pings, `C2C`/`C2G` acks) and counts what the scenario measures.
The payload of a benchmark message carries its send time (CLOCK_MONOTONIC,
the same in every process of the machine), so any process that receives it
can compute its latency.
"""
from gevent import monkey

monkey.patch_all()

import collections  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402
import gevent.event  # noqa: E402
import gevent.pool  # noqa: E402
import ujson  # noqa: E402
from gevent.fileobject import FileObjectPosix  # noqa: E402
from gevent.lock import Semaphore  # noqa: E402

from bench.loadgen_messages import BIN, MessageCommands  # noqa: E402
from bench.wsclient import OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, Closed, HandshakeError, WsConn, client_frame  # noqa: E402

now = time.monotonic


class Conn:
    __slots__ = ("key", "path", "port", "src", "ws", "open", "expect_close", "got", "expect",
                 "close_code", "reader")

    def __init__(self, key: int, path: str, port: int, src: str) -> None:
        self.key, self.path, self.port, self.src = key, path, port, src
        self.ws: WsConn | None = None
        self.open = False
        self.expect_close = False
        self.got = 0          # C2C frames received (live, retried or from the pending store)
        self.expect = 0       # how many this connection waits for (reconnect, offline)
        self.close_code: int | None = None
        self.reader: gevent.Greenlet | None = None


class Worker(MessageCommands):
    def __init__(self) -> None:
        self.conns: dict[int, Conn] = {}
        self.host = "127.0.0.1"
        self.headers: tuple[tuple[str, str], ...] = ()
        self.ack = True
        self.ping_interval = 50.0
        self.heartbeat: collections.deque = collections.deque()
        self.hb_greenlet: gevent.Greenlet | None = None
        self.c = collections.Counter()
        self.errors: collections.Counter = collections.Counter()
        self.error_samples: list[str] = []
        self.drops: list[tuple[float, int | None]] = []
        self.expect_waiting = 0
        self.all_got_at: float | None = None
        self.last_got_at: float | None = None
        # the message run in progress
        self.inflight: dict[str, tuple[float, int]] = {}
        self.windows: list[Semaphore] = []
        # Set at each server ack: a group sender waiting for one wakes at once.
        self.server_acked = gevent.event.Event()
        self.latencies: list[float] = []
        self.lat_from = 0.0
        self.lat_to = float("inf")
        self.bins: collections.Counter = collections.Counter()
        self.t0 = now()
        self.group: dict[str, list] = {}
        self.group_seen: set[tuple[int, str]] = set()
        self.group_ack_to = ""

    # replies -------------------------------------------------------------------------
    def error(self, kind: str, detail: str = "") -> None:
        self.errors[kind] += 1
        if detail and len(self.error_samples) < 20:
            self.error_samples.append(f"{kind}: {detail}"[:300])

    # connecting --------------------------------------------------------------------------
    def _open(self, conn: Conn, timeout: float) -> float:
        t = now()
        conn.ws = WsConn.connect(self.host, conn.port, conn.path, conn.src, self.headers, timeout)
        conn.open = True
        conn.expect_close = False
        conn.close_code = None
        self.c["connected"] += 1
        conn.reader = gevent.spawn(self._read, conn)
        self.heartbeat.append((now() + self.ping_interval * random.uniform(0.9, 1.0), conn))
        return now() - t

    def _connect_one(self, conn: Conn, timeout: float, deadline: float, retries: int,
                     backoff: float, times: list[float], done: list[float]) -> None:
        attempt = 0
        while True:
            try:
                times.append(self._open(conn, timeout) * 1000)
                done.append(now())
                return
            except HandshakeError as exc:
                reason = exc.reason + (" " + exc.body[:80].decode("utf-8", "replace") if exc.body else "")
            except (OSError, gevent.Timeout) as exc:
                reason = type(exc).__name__ + " " + str(exc)[:80]
            attempt += 1
            if attempt > retries or now() + backoff > deadline:
                self.c["failed"] += 1
                self.error("connect", reason)
                return
            self.c["retries"] += 1
            self.errors["retry: " + " ".join(reason.split(" ")[:2])] += 1
            gevent.sleep(backoff * attempt * random.uniform(0.5, 1.5))

    def cmd_connect(self, conns: list, host: str = "127.0.0.1", headers: list = (), concurrency: int = 200,
                    timeout: float = 10.0, deadline: float = 600.0, retries: int = 5, backoff: float = 1.0,
                    ping: float = 50.0, ack: bool = True, expect: int = 0, reuse: bool = False) -> dict:
        """Open connections (all at once when concurrency is 0); returns when each is open or failed."""
        self.host, self.headers, self.ack, self.ping_interval = host, tuple(map(tuple, headers)), ack, ping
        todo = []
        if reuse:
            todo = [c for c in self.conns.values() if not c.open]
        for key, path, port, src in conns:
            conn = self.conns[key] = Conn(key, path, port, src)
            todo.append(conn)
        for conn in todo:
            conn.got, conn.expect = 0, expect
        self.expect_waiting = len(todo) if expect else 0
        self.all_got_at = None
        if self.hb_greenlet is None:
            self.hb_greenlet = gevent.spawn(self._heartbeat)
        times: list[float] = []
        done: list[float] = []
        t_start = now()
        end = t_start + deadline
        pool = gevent.pool.Pool(concurrency or len(todo) or 1)
        for conn in todo:
            pool.spawn(self._connect_one, conn, timeout, end, retries, backoff, times, done)
        pool.join()
        return {"attempted": len(todo), "connected": len(times), "t_start": t_start, "t_end": now(),
                "handshake_ms": [round(x, 2) for x in times], "done_at": [round(x, 3) for x in done]}

    def _heartbeat(self) -> None:
        """Text `ping` per connection every `ping_interval` s, like the Flutter client."""
        hb = self.heartbeat
        while True:
            gevent.sleep(1.0)
            t = now()
            while hb and hb[0][0] <= t:
                _, conn = hb.popleft()
                if not conn.open:
                    continue
                try:
                    conn.ws.send_text("ping")
                    self.c["pings"] += 1
                except OSError:
                    pass
                hb.append((t + self.ping_interval, conn))

    # reading ---------------------------------------------------------------------------------
    def _read(self, conn: Conn) -> None:
        ws = conn.ws
        try:
            while True:
                op, data = ws.recv_frame()
                if op == OP_TEXT:
                    self.c["frames_in"] += 1
                    if data == b"pong2":
                        self.c["pongs"] += 1
                    else:
                        self._on_text(conn, data)
                elif op == OP_PING:
                    ws.send_raw(client_frame(OP_PONG, data))
                elif op == OP_CLOSE:
                    conn.close_code = int.from_bytes(data[:2], "big") if len(data) >= 2 else 1005
                    break
        except Closed:
            pass
        except Exception:
            self.error("reader", traceback.format_exc(limit=2))
        if conn.open and conn.ws is ws:  # not a newer connection of the same client
            conn.open = False
            self.c["closed"] += 1
            if not conn.expect_close:
                self.c["dropped"] += 1
                if len(self.drops) < 1000:
                    self.drops.append((now(), conn.close_code))
            try:
                ws.sock.close()
            except OSError:
                pass

    def _on_text(self, conn: Conn, data: bytes) -> None:
        t = now()
        try:
            frame = ujson.loads(data)
            kind = frame.get("type")
        except (ValueError, AttributeError):
            self.error("bad frame", data[:80].decode("utf-8", "replace"))
            return
        if kind == "C2C":
            self.c["c2c_in"] += 1
            mid = frame.get("id")
            if self.ack:
                self._send(conn, ujson.dumps({"id": mid, "type": "C2C_CLIENT_ACK", "to": "-"}))
            conn.got += 1
            self.last_got_at = t
            if conn.expect and conn.got == conn.expect:
                self.expect_waiting -= 1
                if self.expect_waiting == 0:
                    self.all_got_at = t
            entry = self.inflight.pop(mid, None)
            if entry is None:
                self.c["c2c_untracked"] += 1
                return
            sent, pair = entry
            self.c["delivered"] += 1
            self.bins[int((t - self.t0) / BIN)] += 1
            if self.lat_from <= sent <= self.lat_to:
                self.latencies.append((t - sent) * 1000)
            if self.windows:
                self.windows[pair].release()
        elif kind in ("C2C_SERVER_ACK", "C2G_SERVER_ACK", "ack"):
            self.c["server_acks"] += 1
            self.server_acked.set()
        elif kind == "C2G":
            self.c["c2g_in"] += 1
            mid = frame.get("id")
            if self.ack:
                self._send(conn, ujson.dumps({"id": mid, "type": "C2G_CLIENT_ACK",
                                              "to": self.group_ack_to or frame.get("to")}))
            if (conn.key, mid) in self.group_seen:
                self.c["c2g_dupes"] += 1
                return
            self.group_seen.add((conn.key, mid))
            payload = frame.get("payload")
            sent = payload.get("t") if isinstance(payload, dict) else None
            entry = self.group.get(mid)
            if entry is None:
                entry = self.group[mid] = [0, 0.0, float("inf"), 0.0]
            entry[0] += 1
            if sent is not None:
                lat = (t - sent) * 1000
                entry[1] = max(entry[1], lat)
                entry[2] = min(entry[2], lat)
            entry[3] = max(entry[3], t)
            self.bins[int((t - self.t0) / BIN)] += 1
        elif kind == "S2C":
            self.c["s2c_in"] += 1
        elif kind == "error":
            self.error("error frame", str(frame.get("msg")))
        else:
            self.c["other_in"] += 1

    def _send(self, conn: Conn, text: str) -> bool:
        try:
            conn.ws.send_text(text)
            return True
        except OSError:
            return False

    # dropping and status ----------------------------------------------------------------------------
    def cmd_drop(self, clean: bool = False) -> dict:
        """Every connection goes at once: RST (a lost network) or a clean close."""
        n = 0
        for conn in self.conns.values():
            if conn.open:
                conn.expect_close = True
                conn.open = False
                n += 1
                try:
                    conn.ws.close() if clean else conn.ws.abort()
                except OSError:
                    pass
        return {"dropped": n}

    def cmd_status(self) -> dict:
        out: dict[str, Any] = dict(self.c)
        out["open"] = sum(1 for c in self.conns.values() if c.open)
        out["errors"] = dict(self.errors)
        out["error_samples"] = self.error_samples[:10]
        out["got_total"] = sum(c.got for c in self.conns.values())
        out["expect_waiting"] = self.expect_waiting
        out["all_got_at"] = self.all_got_at
        out["last_got_at"] = self.last_got_at
        out["drops"] = self.drops[:100]
        out["close_codes"] = dict(collections.Counter(str(c.close_code) for c in self.conns.values()
                                                      if c.close_code is not None))
        out["now"] = now()
        return out


def main() -> None:
    worker = Worker()
    stdin = FileObjectPosix(sys.stdin.fileno(), "rb")
    out_lock = Semaphore()

    def reply(rid: int, result: Any = None, error: str | None = None) -> None:
        line = ujson.dumps({"rid": rid, "result": result, "error": error}) + "\n"
        with out_lock:
            sys.stdout.write(line)
            sys.stdout.flush()

    def run(msg: dict) -> None:
        rid = msg.pop("rid")
        name = msg.pop("cmd")
        try:
            reply(rid, getattr(worker, "cmd_" + name)(**msg))
        except Exception:
            reply(rid, error=traceback.format_exc())

    while True:
        line = stdin.readline()
        if not line:
            break
        msg = ujson.loads(line)
        if msg.get("cmd") == "quit":
            worker.cmd_drop(clean=False)
            reply(msg["rid"], {})
            break
        gevent.spawn(run, msg)


if __name__ == "__main__":
    main()
