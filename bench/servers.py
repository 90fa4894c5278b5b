"""Start and stop what a run measures: imboy, the baseline relay, a private Redis.

Every process here is started by the harness, watched by its pid, and ended
by that pid (SIGTERM, then SIGKILL of the same tree) when the run ends.
"""
from __future__ import annotations

import ctypes
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from typing import Any

from . import procs

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(REPO, "bench")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _raise_nofile() -> None:
    """In the child: open files up to the hard limit (20,000 here), and die with the harness.

    PR_SET_PDEATHSIG: if the harness itself is killed (SIGKILL, no clean-up),
    the kernel sends its children SIGTERM, so no server outlives a run.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _http_answers(port: int, path: str = "/ws") -> bool:
    """True once something on `port` answers an HTTP request."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            return s.recv(64).startswith(b"HTTP/1.")
    except OSError:
        return False


class Managed:
    """A set of processes started by the harness, stopped by their pids."""

    name = "process"

    def __init__(self) -> None:
        self.popens: list[subprocess.Popen] = []
        self.logs: list[str] = []

    def _spawn(self, cmd: list[str], env: dict[str, str], log_path: str) -> subprocess.Popen:
        fh = open(log_path, "ab")
        self.logs.append(log_path)
        p = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=fh, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, preexec_fn=_raise_nofile)
        fh.close()
        self.popens.append(p)
        return p

    @property
    def pids(self) -> list[int]:
        """Every live process of this server (workers included)."""
        return procs.tree(p.pid for p in self.popens if p.poll() is None)

    def memory(self) -> dict[str, int]:
        return procs.memory(self.pids)

    def cpu(self) -> float:
        return procs.cpu(self.pids)

    def alive(self) -> bool:
        return bool(self.popens) and all(p.poll() is None for p in self.popens)

    def stop(self, timeout: float = 15.0) -> None:
        everyone = self.pids
        for p in self.popens:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for p in self.popens:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for pid in everyone:  # stragglers of our own tree only
            if os.path.exists(f"/proc/{pid}"):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        for p in self.popens:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                pass
        self.popens = []

    def log_tail(self, n: int = 30) -> str:
        out = []
        for path in self.logs:
            try:
                with open(path, "rb") as fh:
                    out.append(b"".join(fh.readlines()[-n:]).decode("utf-8", "replace"))
            except OSError:
                pass
        return "\n".join(out)


class ImboyServer(Managed):
    """`python wsgi.py` for one process; gunicorn with IMBOY_WORKERS for several."""

    name = "imboy"

    def __init__(self, db_url: str, secret: str, workdir: str, workers: int = 1,
                 redis_url: str | None = None, env: dict[str, str] | None = None) -> None:
        super().__init__()
        self.port = free_port()
        self.workers = workers
        self.db_url = db_url
        self.secret = secret
        self.workdir = workdir
        self.redis_url = redis_url
        self.extra_env = env or {}

    @property
    def command(self) -> list[str]:
        if self.workers == 1:
            return [sys.executable, "wsgi.py"]
        return [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]

    def start(self, timeout: float = 90.0) -> None:
        env = dict(os.environ)
        env.update({
            "IMBOY_DATABASE_URL": self.db_url,
            "IMBOY_SECRET_KEY": self.secret,
            "IMBOY_HOST": "127.0.0.1",
            "IMBOY_PORT": str(self.port),
            "IMBOY_BIND": f"127.0.0.1:{self.port}",
            "IMBOY_INSTANCE_PATH": os.path.join(self.workdir, "instance"),
            "IMBOY_RSA_PRIVATE_KEY": rsa_key_path(),
            "IMBOY_LOG_LEVEL": "WARNING",
            "IMBOY_WORKERS": str(self.workers),
            "IMBOY_GRACEFUL_TIMEOUT": "5",
            # The load generator sends as fast as acks come back: a client's
            # frame budget (50/s by default) would refuse it, so it is lifted
            # for the measurement.  Durability and delivery are unchanged.
            "IMBOY_WS_RATE": "1000000",
            "IMBOY_WS_BURST": "1000000",
        })
        if self.redis_url:
            env["IMBOY_REDIS_URL"] = self.redis_url
        env.update(self.extra_env)
        self._spawn(self.command, env, os.path.join(self.workdir, "imboy-server.log"))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError("imboy server exited during start:\n" + self.log_tail())
            ready = _http_answers(self.port)
            if ready and self.workers > 1:
                ready = len(procs.children(self.popens[0].pid)) >= self.workers
            if ready:
                break
            time.sleep(0.2)
        else:
            raise RuntimeError("imboy server did not come up:\n" + self.log_tail())
        if self.workers > 1:
            # Every worker imports the app after the fork; let them all finish.
            for _ in range(self.workers * 3):
                _http_answers(self.port)
        settle(self)


class BaselineServer(Managed):
    """`procs` baseline relays on consecutive ports (one process holds < 20,000 sockets)."""

    name = "baseline"

    def __init__(self, workdir: str, processes: int = 1) -> None:
        super().__init__()
        self.workdir = workdir
        self.processes = processes
        self.ports: list[int] = []

    @property
    def command(self) -> list[str]:
        return [sys.executable, "bench/baseline_server.py", "--port", "<port>"]

    def start(self, timeout: float = 30.0) -> None:
        self.ports = [free_port() for _ in range(self.processes)]
        for port in self.ports:
            self._spawn([sys.executable, os.path.join(BENCH, "baseline_server.py"), "--port", str(port)],
                        dict(os.environ), os.path.join(self.workdir, f"baseline-{port}.log"))
        deadline = time.monotonic() + timeout
        for port in self.ports:
            while not _http_answers(port):
                if not self.alive() or time.monotonic() > deadline:
                    raise RuntimeError("baseline did not come up:\n" + self.log_tail())
                time.sleep(0.1)
        settle(self)


class RedisServer(Managed):
    """A private redis-server for multi-worker runs, so no test shares its keys."""

    name = "redis"

    def start(self, workdir: str) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._spawn(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                     "--appendonly", "no", "--dir", workdir, "--maxclients", "10000"],
                    dict(os.environ), os.path.join(workdir, "redis.log"))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("redis did not come up:\n" + self.log_tail())


def settle(server: Managed, timeout: float = 5.0) -> dict[str, Any]:
    """Wait until the server's RSS stops moving (start-up allocations done)."""
    last = server.memory()["rss"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = server.memory()["rss"]
        if abs(now - last) < 64 * 1024:
            break
        last = now
    return server.memory()


_RSA = os.path.join(BENCH, "results", ".cache", "rsa_private_key.pem")


def rsa_key_path() -> str:
    """One RSA key for every bench server (generating one per run costs seconds)."""
    if not os.path.exists(_RSA):
        os.makedirs(os.path.dirname(_RSA), exist_ok=True)
        from imboy.rsakey import RsaKey
        RsaKey.load_or_create(_RSA)
    return _RSA
