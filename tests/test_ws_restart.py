"""A real server process stopped and started between send and connect loses nothing acked."""
from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from .helpers import WsClient
from .ws_support import befriend, expect_close, fast_passwords, take  # noqa: F401

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """`python wsgi.py` on the test's database, as production starts it."""

    def __init__(self, settings: dict, log_path: str) -> None:
        self.port = _free_port()
        self.ws_url = f"ws://127.0.0.1:{self.port}/ws"
        self.log_path = log_path
        self.env = dict(os.environ,
                        IMBOY_DATABASE_URL=settings["DATABASE_URL"],
                        IMBOY_HOST="127.0.0.1",
                        IMBOY_PORT=str(self.port),
                        IMBOY_SECRET_KEY=settings["SECRET_KEY"],
                        IMBOY_INSTANCE_PATH=settings["INSTANCE_PATH"],
                        IMBOY_RSA_PRIVATE_KEY=settings["RSA_PRIVATE_KEY"],
                        IMBOY_ACK_RETRY_SCHEDULE="0.4,0.6",
                        IMBOY_LOG_LEVEL="WARNING")
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "wsgi.py"], cwd=ROOT, env=self.env,
                                         stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited with {self.proc.returncode}: {self.log()}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
                conn.request("GET", "/init")
                conn.getresponse().read()
                conn.close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"server did not start: {self.log()}")

    def stop(self, sig: int, timeout: float = 10) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def log(self) -> str:
        with open(self.log_path, "rb") as fh:
            return fh.read().decode("utf-8", "replace")[-3000:]

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


@pytest.fixture
def server_process(settings, tmp_path):
    proc = ServerProcess(settings, str(tmp_path / "server.log"))
    yield proc
    proc.kill()


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_acked_messages_survive_a_restart(how, imboy, users, server_process):
    a, b = users(2)  # made in-process, on the same database as the server process
    befriend(imboy, a, b)
    server_process.start()
    ca = WsClient(server_process.ws_url, a.token)
    sent = [f"restart-{n}" for n in range(3)]
    for n, msg_id in enumerate(sent):
        ca.send_json({"id": msg_id, "type": "C2C", "to": b.hashid, "payload": {"n": n}})
        assert ca.expect_type("C2C_SERVER_ACK")["id"] == msg_id
    if how == "SIGTERM":
        server_process.proc.send_signal(signal.SIGTERM)
        # A graceful stop tells clients to go elsewhere, then exits cleanly.
        assert expect_close(ca) == 1001
        assert server_process.proc.wait(10) == 0, server_process.log()
    else:
        assert server_process.stop(signal.SIGKILL) == -signal.SIGKILL
    ca.close()
    server_process.start()
    cb = WsClient(server_process.ws_url, b.token)
    got = take(cb, 3, "C2C")
    assert [f["id"] for f in got] == sent
    assert [f["payload"] for f in got] == [{"n": 0}, {"n": 1}, {"n": 2}]
    cb.close()
    server_process.stop(signal.SIGTERM)
