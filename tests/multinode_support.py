"""Helpers for the multi-node tests: real server processes, Redis, test data.

Every server here is a separate OS process (`python wsgi.py` or gunicorn)
sharing one MariaDB database and one Redis database, as several hosts would.
Each test run claims a Redis database index of its own (1..15, one that is
empty) so concurrent test sessions never see each other's keys; a test that
must stop Redis starts a private `redis-server` instead of touching the
shared one.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis
import websocket

from imboy import create_app
from imboy.ws.redis_registry import RedisRegistry

from .conftest import TEST_SETTINGS, require_service
from .helpers import wait_for
from .helpers import TestUser, WsClient

REPO = Path(__file__).resolve().parent.parent
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
CLAIM_KEY = "imboy-test:claimed-by"
PRESENCE_TTL = 3.0
RETRY_SCHEDULE = "0.5,0.5,0.5,0.5"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- Redis and MariaDB ---------------------------------------------------------------------
def claim_redis_db() -> tuple[str, redis.Redis]:
    """An empty Redis database index of the shared server, flushed, marked as ours."""
    try:
        redis.Redis(host=REDIS_HOST, port=REDIS_PORT, socket_timeout=2).ping()
    except redis.RedisError as exc:
        require_service("Redis", exc)
    token = uuid.uuid4().hex
    for n in random.sample(range(1, 16), 15):
        client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=n, socket_timeout=2,
                             decode_responses=True)
        if client.dbsize() == 0 and client.set(CLAIM_KEY, token, nx=True, ex=3600):
            client.flushdb()
            client.set(CLAIM_KEY, token, ex=3600)
            return f"redis://{REDIS_HOST}:{REDIS_PORT}/{n}", client
    pytest.fail("no empty Redis database index among 1..15 for this test run")


def release_redis_db(client: redis.Redis) -> None:
    client.flushdb()
    client.close()


class PrivateRedis:
    """A redis-server of our own on a free port, so a test may kill and restart it."""

    def __init__(self, log_dir: Path) -> None:
        self.binary = shutil.which("redis-server")
        if self.binary is None:
            require_service("redis-server binary", FileNotFoundError("redis-server"))
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.log = log_dir / f"redis-{self.port}.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--daemonize", "no"], stdout=out, stderr=subprocess.STDOUT)
        client = self.client()
        wait_for(lambda: _pings(client), 10, "the private redis-server")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2,
                           decode_responses=True)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


class FreezableProxy:
    """A TCP proxy to Redis whose open connections can be frozen: bytes stop flowing both
    ways, yet nothing is closed, as when a network path dies silently.  Connections made
    after the freeze flow normally."""

    def __init__(self, target: tuple[str, int]) -> None:
        from gevent.server import StreamServer

        self.target = target
        self.generation = 0
        self.server = StreamServer(("127.0.0.1", 0), self._handle)
        self.server.start()
        self.port = self.server.server_port
        self.sockets: list[socket.socket] = []
        self.pipes: list[Any] = []

    def _handle(self, client: socket.socket, _addr: Any) -> None:
        import gevent

        upstream = socket.create_connection(self.target, timeout=5)
        upstream.settimeout(None)
        self.sockets += [client, upstream]
        born = self.generation

        def pipe(src: socket.socket, dst: socket.socket) -> None:
            try:
                while True:
                    data = src.recv(65536)
                    while self.generation != born:
                        gevent.sleep(3600)  # frozen: hold the bytes, close nothing
                    if not data:
                        break
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                for s in (src, dst):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        pipes = [gevent.spawn(pipe, client, upstream), gevent.spawn(pipe, upstream, client)]
        self.pipes += pipes
        gevent.joinall(pipes)

    def freeze(self) -> None:
        self.generation += 1

    def stop(self) -> None:
        import gevent

        self.server.stop(timeout=0.5)
        gevent.killall(self.pipes, timeout=1)
        for s in self.sockets:
            s.close()


# --- server processes ----------------------------------------------------------------------
class ServerProcess:
    """`python wsgi.py` or gunicorn, in its own session, logging to a file."""

    def __init__(self, name: str, env: dict[str, str], log_dir: Path,
                 gunicorn: bool = False) -> None:
        self.name = name
        self.port = int(env["IMBOY_PORT"])
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}/ws"
        self.env = env
        self.log_path = log_dir / f"{name}-{self.port}.log"
        self.argv = ([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
                     if gunicorn else [sys.executable, "wsgi.py"])
        self.proc: subprocess.Popen | None = None

    def start(self) -> "ServerProcess":
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(self.argv, cwd=REPO, env=self.env, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def ready(self, timeout: float = 30.0) -> "ServerProcess":
        def up() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"{self.name} exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as resp:
                    return resp.status == 200
            except (OSError, urllib.error.URLError):
                return False

        wait_for(up, timeout, f"{self.name} to answer /healthz", interval=0.1)
        return self

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-6000:]
        except FileNotFoundError:
            return ""

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 15.0) -> int:
        return self.proc.wait(timeout=timeout)

    def stop(self) -> None:
        """Teardown: SIGTERM, then SIGKILL for the whole process group."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)

    def get(self, path: str, token: str | None = None) -> dict[str, Any]:
        """An envelope from this server (HTTP 200 expected)."""
        headers = {"authorization": token} if token else {}
        req = urllib.request.Request(self.url + path, headers=headers)
        with urllib.request.urlopen(req, timeout=5) as resp:
            assert resp.status == 200
            return json.loads(resp.read())


def server_env(database_url: str, redis_url: str | None, instance: Path, rsa_key: str,
               **extra: str) -> dict[str, str]:
    """The environment of a server process: ours only, no IMBOY_* inherited."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMBOY_")}
    env.update({
        "IMBOY_DATABASE_URL": database_url,
        "IMBOY_HOST": "127.0.0.1",
        "IMBOY_PORT": str(free_port()),
        "IMBOY_SECRET_KEY": TEST_SETTINGS["SECRET_KEY"],
        "IMBOY_INSTANCE_PATH": str(instance),
        "IMBOY_RSA_PRIVATE_KEY": rsa_key,
        "IMBOY_PRESENCE_TTL": str(PRESENCE_TTL),
        "IMBOY_ACK_RETRY_SCHEDULE": RETRY_SCHEDULE,
        "IMBOY_LOG_LEVEL": "WARNING",
        "IMBOY_WS_IDLE_TIMEOUT": "60",
        "PYTHONUNBUFFERED": "1",
    })
    if redis_url:
        env["IMBOY_REDIS_URL"] = redis_url
    env.update(extra)
    return env


# --- test data and clients -----------------------------------------------------------------
class Seed:
    """Users, friendships and groups written through the services of an in-process app."""

    def __init__(self, database_url: str, instance: Path, rsa_key: str) -> None:
        self.app = create_app(dict(TEST_SETTINGS, DATABASE_URL=database_url, REDIS_URL=None,
                                   INSTANCE_PATH=str(instance), RSA_PRIVATE_KEY=rsa_key))
        self.imboy = self.app.extensions["imboy"]
        self._n = 0

    def users(self, n: int) -> list[TestUser]:
        out = []
        for _ in range(n):
            self._n += 1
            email = f"node{self._n}-{uuid.uuid4().hex[:6]}@example.com"
            uid = self.imboy.accounts.do_create_user(email, "pw-" + email, f"user{self._n}")
            out.append(TestUser(uid, email, self.imboy.tokens.access_token(uid)))
        return out

    def friends(self, *pairs: tuple[TestUser, TestUser]) -> None:
        for a, b in pairs:
            self.imboy.friends.do_make_friends(a.id, b.id)

    def group(self, owner: TestUser, members: list[TestUser]) -> str:
        return self.imboy.groups.do_create_group(owner.id, "g", [m.id for m in members])["id"]

    def close(self) -> None:
        self.imboy.close()


class Clients:
    """WebSocket clients of one test, all closed at its end."""

    def __init__(self) -> None:
        self.open: list[WsClient] = []

    def connect(self, server: ServerProcess, user: TestUser, device: str = "web") -> WsClient:
        ws = WsClient(server.ws_url, user.token, device=device)
        self.open.append(ws)
        return ws

    def close(self) -> None:
        for ws in self.open:
            ws.close()


def presence(client: redis.Redis, user: TestUser) -> dict[str, str]:
    """device -> node of the user's entries in Redis."""
    return {d: e.partition("|")[0] for d, e in client.hgetall(f"imboy:presence:{user.id}").items()}


def wait_registered(client: redis.Redis, user: TestUser, device: str = "web") -> str:
    """The node the user's `device` connection registered on."""
    return wait_for(lambda: presence(client, user).get(device), 5,
                    f"{user.email}/{device} in Redis")


def observer_online(redis_url: str, users: list[TestUser]) -> set[int]:
    """Who is online as any node sees it, asked by a fresh registry (no cached liveness)."""
    reg = RedisRegistry(redis_url, PRESENCE_TTL, node_id="observer-" + uuid.uuid4().hex[:6])
    reg.redis_ok = True
    try:
        return reg.online([u.id for u in users])
    finally:
        reg.redis.close()
        reg._sub_client.close()


def c2c(to: TestUser, msg_id: str, text: str = "hi") -> dict[str, Any]:
    return {"id": msg_id, "type": "C2C", "to": to.hashid,
            "payload": {"msg_type": "text", "text": text}, "created_at": int(time.time() * 1000)}


def send_c2c(ws: WsClient, to: TestUser, msg_id: str, text: str = "hi") -> dict[str, Any]:
    """Send a C2C and wait for its server ack."""
    ws.send_json(c2c(to, msg_id, text))
    return ws.expect(lambda f: isinstance(f, dict) and f.get("type") == "C2C_SERVER_ACK"
                     and f.get("id") == msg_id)


def expect_msg(ws: WsClient, kind: str, msg_id: str,
               timeout: float | None = None) -> dict[str, Any]:
    return ws.expect(lambda f: isinstance(f, dict) and f.get("type") == kind
                     and f.get("id") == msg_id, timeout)


def expect_presence(ws: WsClient, who: TestUser, state: str) -> dict[str, Any]:
    return ws.expect(lambda f: isinstance(f, dict) and f.get("type") == "S2C"
                     and f["payload"].get("msg_type") == "1019" and f.get("from") == who.hashid
                     and f["payload"].get("content") == state)


def acked(ws: WsClient, msg_id: str, kind: str = "C2C_CLIENT_ACK") -> None:
    """Ack `msg_id` and wait until the server has processed it: frames of one connection are
    handled in order, so the `pong2` to a following `ping` comes after the ack took effect.
    Copies sent meanwhile (retries) are skipped."""
    ws.send_json({"id": msg_id, "type": kind})
    ws.send_text("ping")
    ws.expect(lambda f: f == "pong2")


def drain(ws: WsClient, seconds: float) -> list[Any]:
    """Whatever arrives within `seconds` (retries still in flight)."""
    out = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            out.append(ws.recv(left))
        except websocket.WebSocketTimeoutException:
            break
    return out


def expect_close(ws: WsClient, timeout: float = 5.0) -> int:
    """Read until the close frame; returns its code."""
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        try:
            opcode, data = ws.recv_raw(max(0.05, deadline - time.monotonic()))
        except websocket.WebSocketTimeoutException:
            break
        except websocket.WebSocketConnectionClosedException:
            raise AssertionError(
                f"connection dropped without a close frame; saw {seen!r}") from None
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            return int.from_bytes(data[:2], "big") if len(data) >= 2 else 1005
        seen.append(data)
    raise AssertionError(f"no close frame; saw {seen!r}")
