"""Helpers for the hardening tests: a private MariaDB server, an imboy server
process, waiting for conditions, reading frames and refusals.

`PrivateMariaDB` is a MariaDB of the test's own (a fresh data directory and a
free port), so a test may stop and restart it without touching the shared
server other tests use.  `ImboyProcess` is `python wsgi.py` as production
starts it, with settings in the environment.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from typing import Any, Callable

import pymysql
import pytest

from imboy.ws.frames import OP_CLOSE

from .conftest import IN_CI
from .helpers import ServerProcess, free_port, tail

RATE_LIMITED = "Too many frames, slow down"


def is_frame(kind: str, msg: str | None = None) -> Callable[[Any], bool]:
    """A predicate for `WsClient.expect`: a frame of `kind` (and error `msg`)."""
    def match(frame: Any) -> bool:
        return (isinstance(frame, dict) and frame.get("type") == kind
                and (msg is None or frame.get("msg") == msg))
    return match


def read_until_close(client: Any, timeout: float = 5.0) -> tuple[list[Any], int | None]:
    """Every text frame until the server's close frame, and its close code.

    The code is None when the socket ended without a close frame.
    """
    import websocket
    frames: list[Any] = []
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"the server did not close; got {frames[-5:]!r}")
        try:
            opcode, data = client.recv_raw(left)
        except websocket.WebSocketTimeoutException:
            raise AssertionError(f"the server did not close; got {frames[-5:]!r}") from None
        except (websocket.WebSocketConnectionClosedException, ConnectionError, OSError):
            return frames, None
        if opcode == OP_CLOSE:
            return frames, int.from_bytes(data[:2], "big") if len(data) >= 2 else None
        if opcode == 0x1:
            import json
            try:
                frames.append(json.loads(data))
            except ValueError:
                frames.append(data.decode("utf-8"))


def eof_within(sock: socket.socket, timeout: float) -> bool:
    """True when the peer ends the TCP stream within `timeout` (data before it is dropped)."""
    sock.settimeout(timeout)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not sock.recv(65536):
                return True
    except socket.timeout:
        return False
    except (ConnectionError, OSError):
        return True
    return False


def require_binary(name: str, *candidates: str) -> str:
    for candidate in candidates:
        path = shutil.which(candidate) or (candidate if os.path.exists(candidate) else None)
        if path:
            return path
    message = f"{name} not installed (looked for {', '.join(candidates)})"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


class PrivateMariaDB:
    """A MariaDB server of one test: its own data directory, port and socket."""

    def __init__(self, workdir: str) -> None:
        self.datadir = os.path.join(workdir, "data")
        self.socket = os.path.join(workdir, "mysqld.sock")
        self.log_path = os.path.join(workdir, "mariadbd.log")
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self._mariadbd = require_binary("mariadbd", "mariadbd", "/usr/sbin/mariadbd", "mysqld", "/usr/sbin/mysqld")
        install = require_binary("mariadb-install-db", "mariadb-install-db", "mysql_install_db")
        result = subprocess.run([install, "--no-defaults", f"--datadir={self.datadir}", "--user=root",
                                 "--auth-root-authentication-method=normal", "--skip-test-db"],
                                capture_output=True, timeout=120)
        if result.returncode != 0:
            raise AssertionError(f"mariadb-install-db failed: {result.stderr.decode(errors='replace')[-2000:]}")

    def start(self, timeout: float = 30.0) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [self._mariadbd, "--no-defaults", f"--datadir={self.datadir}", f"--port={self.port}",
                 f"--socket={self.socket}", "--skip-grant-tables", "--bind-address=127.0.0.1",
                 "--innodb-buffer-pool-size=16M", "--skip-log-bin", "--user=root"],
                stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"mariadbd exited with {self.proc.returncode}: {self.log()}")
            try:
                self.connect().close()
                return
            except pymysql.err.MySQLError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"mariadbd did not start: {self.log()}") from None
                time.sleep(0.1)

    def stop(self, sig: int = signal.SIGKILL, timeout: float = 30.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout)
        self.proc = None

    def connect(self) -> pymysql.connections.Connection:
        return pymysql.connect(host="127.0.0.1", port=self.port, user="root", connect_timeout=2,
                               autocommit=True)

    def create_database(self, name: str) -> str:
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci")
        finally:
            conn.close()
        return f"mysql://root@127.0.0.1:{self.port}/{name}"

    def log(self) -> str:
        return tail(self.log_path)


class ImboyProcess(ServerProcess):
    """`python wsgi.py` with IMBOY_* settings from `env` on a free port."""
