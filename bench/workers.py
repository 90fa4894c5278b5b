"""The controller's side of the load generator: several `bench.loadgen` processes.

One process holds at most `PER_PROCESS` connections (the open-file limit is
20,000 per process here), and each uses its own loopback source addresses
(127.0.<worker+1>.<2..>, at most `PER_ADDRESS` connections each) so
ephemeral ports never run out, even when every client reconnects at once.
"""
from __future__ import annotations

import itertools
import math
import os
import subprocess
import sys
from typing import Any, Callable, Sequence

import gevent
import ujson
from gevent.event import AsyncResult
from gevent.lock import Semaphore

from . import procs
from .servers import REPO, _raise_nofile

PER_PROCESS = 15000
PER_ADDRESS = 4000


class LoadWorker:
    """One `python -m bench.loadgen` process and its command channel."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.loadgen"], cwd=REPO,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     preexec_fn=_raise_nofile)
        self._rids = itertools.count(1)
        self._waiting: dict[int, AsyncResult] = {}
        self._write_lock = Semaphore()  # the sampler and a scenario may call at once
        self._reader = gevent.spawn(self._read)

    def _read(self) -> None:
        for line in self.proc.stdout:
            try:
                msg = ujson.loads(line)
            except ValueError:
                continue
            waiter = self._waiting.pop(msg.get("rid"), None)
            if waiter is not None:
                if msg.get("error"):
                    waiter.set_exception(RuntimeError(f"loadgen {self.index}: {msg['error']}"))
                else:
                    waiter.set(msg.get("result"))
        for waiter in self._waiting.values():
            waiter.set_exception(RuntimeError(f"loadgen {self.index} exited"))
        self._waiting.clear()

    def call(self, cmd: str, timeout: float | None = None, **kw: Any) -> Any:
        rid = next(self._rids)
        waiter = self._waiting[rid] = AsyncResult()
        with self._write_lock:
            self.proc.stdin.write((ujson.dumps(dict(kw, cmd=cmd, rid=rid)) + "\n").encode())
            self.proc.stdin.flush()
        return waiter.get(timeout=timeout)

    def source(self, j: int) -> str:
        """The source address of this worker's j-th connection."""
        return f"127.0.{self.index + 1}.{2 + j // PER_ADDRESS}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self.call("quit", timeout=10)
            except Exception:
                pass
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class LoadGen:
    """A pool of load workers, spread as the connection count needs."""

    def __init__(self, connections: int, processes: int | None = None) -> None:
        n = processes or max(1, math.ceil(connections / PER_PROCESS))
        self.workers = [LoadWorker(i) for i in range(n)]
        self.all("status", timeout=60)  # every process imported and listening

    @property
    def pids(self) -> list[int]:
        return [w.proc.pid for w in self.workers if w.proc.poll() is None]

    def cpu(self) -> float:
        return procs.cpu(self.pids)

    def memory(self) -> dict[str, int]:
        return procs.memory(self.pids)

    def split(self, items: Sequence[Any]) -> list[list[Any]]:
        """Round-robin: item i goes to worker i % n."""
        n = len(self.workers)
        return [list(items[i::n]) for i in range(n)]

    def each(self, fn: Callable[["LoadWorker", Any], Any], args: Sequence[Any]) -> list[Any]:
        """fn(worker, arg) in every worker at once; the results in worker order."""
        jobs = [gevent.spawn(fn, w, a) for w, a in zip(self.workers, args)]
        gevent.joinall(jobs, raise_error=True)
        return [j.value for j in jobs]

    def all(self, cmd: str, timeout: float | None = None, **kw: Any) -> list[Any]:
        return self.each(lambda w, _: w.call(cmd, timeout=timeout, **kw), [None] * len(self.workers))

    def status(self) -> dict[str, Any]:
        """Counters summed over the workers (lists and dicts merged)."""
        total: dict[str, Any] = {}
        for st in self.all("status", timeout=60):
            for k, v in st.items():
                if isinstance(v, bool) or v is None:
                    continue
                if isinstance(v, (int, float)):
                    total[k] = total.get(k, 0) + v if k != "now" else v
                elif isinstance(v, dict):
                    d = total.setdefault(k, {})
                    for kk, vv in v.items():
                        d[kk] = d.get(kk, 0) + vv
                elif isinstance(v, list):
                    total.setdefault(k, []).extend(v)
            for k in ("all_got_at", "last_got_at"):
                if st.get(k) is not None:
                    total.setdefault(k + "_list", []).append(st[k])
        return total

    def stop(self) -> None:
        gevent.joinall([gevent.spawn(w.stop) for w in self.workers])


def imboy_specs(users: Sequence[Any], port: int, worker_of: Callable[[int], int],
                workers: list[LoadWorker], device: str = "web") -> list[list[list]]:
    """Per worker: [key, path, port, source] of an authenticated imboy connection."""
    out: list[list[list]] = [[] for _ in workers]
    for key, user in enumerate(users):
        w = worker_of(key)
        j = len(out[w])
        out[w].append([key, f"/ws?cos={device}&authorization={user.token}", port, workers[w].source(j)])
    return out


def baseline_specs(n: int, ports: Sequence[int], worker_of: Callable[[int], int],
                   workers: list[LoadWorker], group: str = "",
                   port_of: Callable[[int], int] | None = None) -> list[list[list]]:
    """Per worker: [key, path, port, source] of a baseline connection named by its key."""
    out: list[list[list]] = [[] for _ in workers]
    for key in range(n):
        w = worker_of(key)
        j = len(out[w])
        port = ports[port_of(key) if port_of else key % len(ports)]
        path = f"/ws?name={key}" + (f"&group={group}" if group else "")
        out[w].append([key, path, port, workers[w].source(j)])
    return out


IMBOY_HEADERS = [["Sec-WebSocket-Protocol", "text"]]


def cpu_count() -> int:
    return os.cpu_count() or 1
