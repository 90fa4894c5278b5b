"""What every scenario shares: a run context that cleans up after itself, a sampler.

`Context` owns everything a run starts (databases, servers, load workers,
a temporary folder) and ends all of it, by pid, in `close()`, whatever
happened.  `Sampler` records server memory, open connections and kernel
socket memory once per interval for the plots.
"""
from __future__ import annotations

import math
import secrets
import shutil
import tempfile
import time
from typing import Any, Callable

import gevent

from . import procs
from .dataset import BenchDB
from .servers import BaselineServer, ImboyServer, Managed, RedisServer
from .workers import LoadGen

now = time.monotonic


class Context:
    def __init__(self, quiet: bool = False) -> None:
        self.workdir = tempfile.mkdtemp(prefix="imboy-bench-")
        self.secret = "bench-" + secrets.token_urlsafe(24)
        self.quiet = quiet
        self._cleanup: list[Callable[[], None]] = []
        self.commit_probe: dict[str, float] | None = None
        self.mysql_socket: str | None = None  # the server reaches MariaDB through it when set

    def log(self, text: str) -> None:
        if not self.quiet:
            print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)

    def database(self, kind: str) -> BenchDB:
        mysql = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": "",
                 "unix_socket": self.mysql_socket}
        db = BenchDB(kind, self.workdir, mysql)
        self._cleanup.append(db.drop)
        self.commit_probe = db.commit_probe()
        self.log(f"{kind}: one-row commit p50 {self.commit_probe['p50']} ms, p90 {self.commit_probe['p90']} ms")
        return db

    def imboy(self, db: BenchDB, workers: int = 1, env: dict[str, str] | None = None) -> ImboyServer:
        redis_url = None
        if workers > 1:
            redis = RedisServer()
            redis.start(self.workdir)
            self._cleanup.append(redis.stop)
            self.redis = redis
            redis_url = redis.url
        server = ImboyServer(db.url, self.secret, self.workdir, workers, redis_url, env)
        self._cleanup.append(server.stop)
        server.start()
        return server

    def baseline(self, processes: int = 1) -> BaselineServer:
        server = BaselineServer(self.workdir, processes)
        self._cleanup.append(server.stop)
        server.start()
        return server

    def loadgen(self, connections: int, processes: int | None = None) -> LoadGen:
        gen = LoadGen(connections, processes)
        self._cleanup.append(gen.stop)
        return gen

    def release(self, thing: Any) -> None:
        """Stop one server or load generator now (the run goes on)."""
        thing.stop()

    def close(self) -> None:
        while self._cleanup:
            fn = self._cleanup.pop()
            try:
                fn()
            except Exception as exc:  # cleaning up must go on
                self.log(f"cleanup: {type(exc).__name__}: {exc}")
        shutil.rmtree(self.workdir, ignore_errors=True)


def auto_workers(n: int, per_worker: int = 10000) -> int:
    """Server processes for n connections: one up to 12,000, else room for an uneven spread."""
    return 1 if n <= 12000 else math.ceil(n / per_worker) + 1


class Sampler:
    """Samples once per `interval` s until stopped: server memory, connections, TCP memory."""

    def __init__(self, server: Managed, gen: LoadGen | None, interval: float = 1.0) -> None:
        self.server = server
        self.gen = gen
        self.interval = interval
        self.samples: list[dict[str, Any]] = []
        self.t0 = now()
        self._g: gevent.Greenlet | None = None

    def start(self) -> "Sampler":
        self._g = gevent.spawn(self._loop)
        return self

    def sample(self) -> dict[str, Any]:
        mem = self.server.memory()
        s: dict[str, Any] = {"t": round(now() - self.t0, 2), "rss": mem["rss"], "pss": mem["pss"],
                             "tcp_mem": procs.sockstat().get("mem_bytes", 0),
                             "server_cpu": round(self.server.cpu(), 2)}
        if self.gen is not None:
            st = self.gen.status()
            s.update(open=st.get("open", 0), dropped=st.get("dropped", 0), got=st.get("got_total", 0),
                     loadgen_cpu=round(self.gen.cpu(), 2))
        return s

    def _loop(self) -> None:
        while True:
            try:
                self.samples.append(self.sample())
            except Exception:
                pass
            gevent.sleep(self.interval)

    def stop(self) -> list[dict[str, Any]]:
        if self._g is not None:
            self._g.kill()
        return self.samples


def series(samples: list[dict[str, Any]], key: str, scale: float = 1.0) -> list[list[float]]:
    return [[s["t"], s[key] * scale] for s in samples if key in s]


def wait_until(predicate: Callable[[], bool], timeout: float, step: float = 0.1) -> bool:
    deadline = now() + timeout
    while now() < deadline:
        if predicate():
            return True
        gevent.sleep(step)
    return predicate()
