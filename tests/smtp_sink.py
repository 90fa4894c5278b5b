"""A real, minimal SMTP server for tests: it accepts everything and keeps it.

Only ``socket``, ``threading`` and ``time`` are used, so it works in a plain
process (native threads) and in a gevent-monkey-patched one (the threads
become greenlets and the sockets cooperative). Blocking calls all carry
time-outs, so ``stop()`` never hangs on a client that went away.
"""
from __future__ import annotations

import base64
import email
import email.policy
import socket
import threading
import time
from email.message import Message
from typing import Callable


class SmtpSink:
    """SMTP on 127.0.0.1 at a free port; received mail lands in ``messages``.

    ``envelopes`` holds (MAIL FROM, [RCPT TO...]) per message and
    ``auth_users`` the user names given to AUTH PLAIN/LOGIN (any password is
    accepted, and none is recorded).
    """

    def __init__(self, auth: bool = True, host: str = "127.0.0.1"):
        self.host = host
        self.auth = auth
        self.port = 0
        self.messages: list[Message] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.auth_users: list[str] = []
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._listener: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._conns: list[socket.socket] = []

    # -- lifecycle -------------------------------------------------------

    def start(self) -> "SmtpSink":
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, 0))
        listener.listen(16)
        listener.settimeout(0.1)  # so the accept loop notices stop()
        self._listener = listener
        self.port = listener.getsockname()[1]
        thread = threading.Thread(target=self._accept_loop, name="smtp-sink", daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in list(self._threads):
            thread.join(timeout=2.0)
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    def __enter__(self) -> "SmtpSink":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def wait_for(self, predicate: Callable[["SmtpSink"], bool], timeout: float = 5.0) -> bool:
        """Poll until predicate(self) is true; False if the time ran out."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                if predicate(self):
                    return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)

    # -- server ----------------------------------------------------------

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            conn.settimeout(5.0)
            with self._lock:
                self._conns.append(conn)
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, conn: socket.socket) -> None:
        try:
            _Session(self, conn).run()
        except OSError:
            pass
        finally:
            conn.close()
            with self._lock:
                if conn in self._conns:
                    self._conns.remove(conn)

    def _deliver(self, mail_from: str, rcpts: list[str], data: bytes) -> None:
        message = email.message_from_bytes(data, policy=email.policy.default)
        with self._lock:
            self.envelopes.append((mail_from, list(rcpts)))
            self.messages.append(message)

    def _record_user(self, user: str) -> None:
        with self._lock:
            self.auth_users.append(user)


class _Session:
    """One SMTP conversation."""

    def __init__(self, sink: SmtpSink, conn: socket.socket):
        self.sink = sink
        self.conn = conn
        self.buffer = b""
        self.mail_from: str | None = None
        self.rcpts: list[str] = []

    def send(self, line: str) -> None:
        self.conn.sendall(line.encode("ascii") + b"\r\n")

    def readline(self) -> bytes | None:
        while b"\n" not in self.buffer:
            chunk = self.conn.recv(65536)
            if not chunk:
                return None
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line.rstrip(b"\r")

    def run(self) -> None:
        self.send("220 smtp-sink ready")
        while True:
            line = self.readline()
            if line is None:
                return
            verb, _, arg = line.decode("utf-8", "replace").partition(" ")
            verb = verb.upper()
            if verb == "EHLO":
                extensions = ["8BITMIME", "SMTPUTF8"]
                if self.sink.auth:
                    extensions.append("AUTH PLAIN LOGIN")
                self.send("250-smtp-sink")
                for ext in extensions[:-1]:
                    self.send("250-" + ext)
                self.send("250 " + extensions[-1])
            elif verb == "HELO":
                self.send("250 smtp-sink")
            elif verb == "MAIL":
                self.mail_from, self.rcpts = _address(arg), []
                self.send("250 OK")
            elif verb == "RCPT":
                if self.mail_from is None:
                    self.send("503 need MAIL first")
                else:
                    self.rcpts.append(_address(arg))
                    self.send("250 OK")
            elif verb == "DATA":
                if not self.rcpts:
                    self.send("503 need RCPT first")
                    continue
                self.send("354 end data with <CR><LF>.<CR><LF>")
                if not self.read_data():
                    return
                self.send("250 OK queued")
            elif verb == "AUTH" and self.sink.auth:
                self.authenticate(arg)
            elif verb in ("RSET", "NOOP"):
                if verb == "RSET":
                    self.mail_from, self.rcpts = None, []
                self.send("250 OK")
            elif verb == "QUIT":
                self.send("221 bye")
                return
            else:
                self.send("502 command not implemented")

    def read_data(self) -> bool:
        lines = []
        while True:
            line = self.readline()
            if line is None:
                return False
            if line == b".":
                break
            lines.append(line[1:] if line.startswith(b".") else line)
        assert self.mail_from is not None
        self.sink._deliver(self.mail_from, self.rcpts, b"\r\n".join(lines) + b"\r\n")
        self.mail_from, self.rcpts = None, []
        return True

    def authenticate(self, arg: str) -> None:
        mechanism, _, initial = arg.partition(" ")
        mechanism = mechanism.upper()
        try:
            if mechanism == "PLAIN":
                if not initial:
                    self.send("334 ")
                    initial = (self.readline() or b"").decode("ascii")
                _, user, _ = base64.b64decode(initial).split(b"\0", 2)
            elif mechanism == "LOGIN":
                if initial:
                    user = base64.b64decode(initial)
                else:
                    self.send("334 VXNlcm5hbWU6")
                    user = base64.b64decode(self.readline() or b"")
                self.send("334 UGFzc3dvcmQ6")
                self.readline()  # the password: accepted, never kept
            else:
                self.send("504 unrecognized authentication type")
                return
        except ValueError:
            self.send("501 cannot decode credentials")
            return
        self.sink._record_user(user.decode("utf-8", "replace"))
        self.send("235 authentication successful")


def _address(arg: str) -> str:
    """The address inside ``FROM:<a@b> SIZE=..`` or ``TO:<a@b>``."""
    _, _, rest = arg.partition(":")
    rest = rest.strip()
    if rest.startswith("<"):
        return rest[1:rest.find(">")] if ">" in rest else rest[1:]
    return rest.split(" ")[0]
