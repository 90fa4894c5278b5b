"""Test helpers: a live in-process server, users, a WebSocket client."""
from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable

import websocket

from imboy import ids
from imboy.server import make_server

PASSWORD = "correct horse battery staple"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class LiveServer:
    """The app on 127.0.0.1 and a free port, served by gevent in this process."""

    def __init__(self, app) -> None:
        self.app = app
        self.imboy = app.extensions["imboy"]
        self._server = make_server(app, "127.0.0.1", 0)

    def start(self) -> None:
        self._server.start()
        self.port = self._server.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}/ws"

    def stop(self) -> None:
        self.imboy.shutdown()
        self._server.stop(timeout=2)


@dataclass
class TestUser:
    id: int
    email: str
    token: str
    password: str = PASSWORD

    @property
    def hashid(self) -> str:
        return ids.encode(self.id)

    @property
    def headers(self) -> dict[str, str]:
        return {"authorization": self.token}


def make_user(imboy, email: str, nickname: str = "", password: str = PASSWORD) -> TestUser:
    uid = imboy.accounts.do_create_user(email, password, nickname)
    return TestUser(uid, email, imboy.tokens.access_token(uid), password)


class WsClient:
    """A blocking WebSocket client with JSON helpers and time-outs."""

    def __init__(self, url: str, token: str | None, device: str = "web", timeout: float = 5.0,
                 subprotocols=("text",), header: list[str] | None = None) -> None:
        query = f"?cos={device}" + (f"&authorization={token}" if token else "")
        self.ws = websocket.create_connection(url + query, subprotocols=list(subprotocols) if subprotocols else None,
                                              timeout=timeout, header=header or [])
        self.timeout = timeout

    def send_json(self, frame: dict[str, Any]) -> None:
        self.ws.send(json.dumps(frame))

    def send_text(self, text: str) -> None:
        self.ws.send(text)

    def recv_raw(self, timeout: float | None = None) -> tuple[int, bytes]:
        """The next frame as (opcode, data); close frames included."""
        self.ws.settimeout(timeout or self.timeout)
        frame = self.ws.recv_data_frame(True)
        return frame[0], frame[1].data

    def recv(self, timeout: float | None = None) -> Any:
        """The next text frame, parsed as JSON when it is JSON."""
        self.ws.settimeout(timeout or self.timeout)
        text = self.ws.recv()
        try:
            return json.loads(text)
        except (TypeError, ValueError):
            return text

    def expect(self, predicate: Callable[[Any], bool], timeout: float | None = None) -> Any:
        """Receive until a frame matches `predicate`; fail on time-out."""
        deadline = time.monotonic() + (timeout or self.timeout)
        seen = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no matching frame; saw {seen!r}")
            try:
                frame = self.recv(left)
            except websocket.WebSocketTimeoutException:
                raise AssertionError(f"no matching frame; saw {seen!r}") from None
            if predicate(frame):
                return frame
            seen.append(frame)

    def expect_type(self, kind: str, timeout: float | None = None) -> dict[str, Any]:
        return self.expect(lambda f: isinstance(f, dict) and f.get("type") == kind, timeout)

    def nothing(self, timeout: float = 0.5) -> None:
        """Assert that no frame arrives within `timeout`."""
        self.ws.settimeout(timeout)
        try:
            frame = self.ws.recv()
        except websocket.WebSocketTimeoutException:
            return
        raise AssertionError(f"unexpected frame: {frame!r}")

    def close(self) -> None:
        try:
            self.ws.close(timeout=1)
        except Exception:
            pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """`python wsgi.py`, as production starts it, with IMBOY_* settings from `env`."""

    def __init__(self, env: dict[str, str], log_path: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}/ws"
        self.log_path = log_path
        # Nothing of the developer's own IMBOY_* settings leaks into a test server.
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("IMBOY_")}
        self.env.update(IMBOY_HOST="127.0.0.1", IMBOY_PORT=str(self.port), IMBOY_LOG_LEVEL="WARNING")
        self.env.update(env)
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 20.0) -> None:
        """Start it and wait until it answers /healthz."""
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "wsgi.py"], cwd=ROOT, env=self.env,
                                         stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited with {self.proc.returncode}: {self.log()}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
                conn.request("GET", "/healthz")
                conn.getresponse().read()
                conn.close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"server did not start: {self.log()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> int | None:
        """Send `sig` and return the exit status (killed if it does not exit in time)."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.proc.returncode

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def log(self) -> str:
        return tail(self.log_path)


def wait_for(predicate: Callable[[], Any], timeout: float = 5.0, what: str = "condition",
             interval: float = 0.02) -> Any:
    """Poll `predicate` (cooperatively) until it returns something truthy; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def tail(path: str, size: int = 3000) -> str:
    """The end of a server's log file, for failure messages."""
    try:
        with open(path, "rb") as fh:
            return fh.read().decode("utf-8", "replace")[-size:]
    except OSError:
        return ""
