"""A tiny RFC 6455 client on gevent sockets, cheap enough to hold thousands.

websocket-client keeps several objects, a lock and a thread-safe buffer per
connection; a load generator that holds 15,000 connections in one process
needs less.  This client is one socket, one bytearray and one semaphore
(several greenlets may write: the sender, the acking reader, the heartbeat).
Client frames are masked with a random key as RFC 6455 requires; server
frames are never fragmented by the servers we test, so fragments are refused.
"""
from __future__ import annotations

import base64
import hashlib
import random
import socket
import struct

import gevent.socket
from gevent.lock import Semaphore

OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x1, 0x2, 0x8, 0x9, 0xA
# Linux: let connect() pick the port per 4-tuple after bind(addr, 0), so one
# source address is not limited to one ephemeral range for all destinations.
IP_BIND_ADDRESS_NO_PORT = 24
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_MAX_HEAD = 65536


class HandshakeError(Exception):
    """The server answered the upgrade with something other than 101."""

    def __init__(self, reason: str, status: int = 0, body: bytes = b"") -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.body = body


class Closed(Exception):
    """The connection ended (EOF, reset or a close frame)."""

    def __init__(self, code: int | None = None) -> None:
        super().__init__(code)
        self.code = code


def mask(data: bytes, key: int) -> bytes:
    """XOR `data` with the 4-byte key, as one big-integer operation."""
    n = len(data)
    if not n:
        return data
    k = key.to_bytes(4, "little") * (n // 4 + 1)
    return (int.from_bytes(data, "little") ^ int.from_bytes(k[:n], "little")).to_bytes(n, "little")


def client_frame(opcode: int, payload: bytes) -> bytes:
    """One final, masked frame."""
    key = random.getrandbits(32)
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    return header + key.to_bytes(4, "little") + mask(payload, key)


def _read_head(sock: socket.socket) -> tuple[bytes, bytearray]:
    buf = bytearray()
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            raise HandshakeError("closed during handshake")
        buf += chunk
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            return bytes(buf[:end]), buf[end + 4:]
        if len(buf) > _MAX_HEAD:
            raise HandshakeError("response head too large")


class WsConn:
    """One client connection: `connect`, then `send_text` / `recv_frame`."""

    __slots__ = ("sock", "raw", "buf", "wlock")

    def __init__(self, sock: socket.socket, buf: bytearray) -> None:
        self.sock = sock
        # gevent's socket wraps a non-blocking one: a frame is first offered to
        # it directly (gevent's sendall costs a getsockopt call per send).
        self.raw = sock._sock if isinstance(sock, gevent.socket.socket) else None
        self.buf = buf
        self.wlock = Semaphore()

    @classmethod
    def connect(cls, host: str, port: int, path: str, src: str | None = None,
                headers: tuple[tuple[str, str], ...] = (), timeout: float = 10.0) -> "WsConn":
        """Open a connection from source address `src` and upgrade it."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            if src:
                try:
                    sock.setsockopt(socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)
                except OSError:
                    pass
                sock.bind((src, 0))
            sock.settimeout(timeout)
            sock.connect((host, port))
            key = base64.b64encode(random.getrandbits(128).to_bytes(16, "little"))
            extra = "".join(f"{k}: {v}\r\n" for k, v in headers)
            sock.sendall((f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                          f"Connection: Upgrade\r\nSec-WebSocket-Key: {key.decode()}\r\n"
                          f"Sec-WebSocket-Version: 13\r\n{extra}\r\n").encode("latin-1"))
            head, rest = _read_head(sock)
            lines = head.split(b"\r\n")
            parts = lines[0].split(b" ", 2)
            status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
            if status != 101:
                raise HandshakeError(f"http {status}", status, bytes(rest[:512]))
            want = base64.b64encode(hashlib.sha1(key + _GUID).digest())
            fields = {ln.split(b":", 1)[0].strip().lower(): ln.split(b":", 1)[1].strip()
                      for ln in lines[1:] if b":" in ln}
            if fields.get(b"sec-websocket-accept") != want:
                raise HandshakeError("bad Sec-WebSocket-Accept", status)
            sock.settimeout(None)
            return cls(sock, rest)
        except BaseException:
            sock.close()
            raise

    # writing ----------------------------------------------------------------
    def send_raw(self, data: bytes) -> None:
        with self.wlock:
            sent = 0
            if self.raw is not None:
                try:
                    sent = self.raw.send(data)
                except (BlockingIOError, InterruptedError):
                    pass
            if sent < len(data):
                self.sock.sendall(data[sent:] if sent else data)

    def send_text(self, text: str) -> None:
        self.send_raw(client_frame(OP_TEXT, text.encode("utf-8")))

    # reading ----------------------------------------------------------------
    def recv_frame(self) -> tuple[int, bytes]:
        """The next frame as (opcode, payload); raises Closed at EOF."""
        buf = self.buf
        recv = self.sock.recv
        while True:
            if len(buf) >= 2:
                b1 = buf[1]
                n = b1 & 0x7F
                off = 2
                if n == 126:
                    off = 4
                    n = int.from_bytes(buf[2:4], "big") if len(buf) >= 4 else -1
                elif n == 127:
                    off = 10
                    n = int.from_bytes(buf[2:10], "big") if len(buf) >= 10 else -1
                if n >= 0 and len(buf) >= off + n:
                    b0 = buf[0]
                    if not b0 & 0x80 or b1 & 0x80:
                        raise Closed(1002)
                    payload = bytes(buf[off:off + n])
                    del buf[:off + n]
                    return b0 & 0x0F, payload
            try:
                chunk = recv(65536)
            except OSError:
                raise Closed(None) from None
            if not chunk:
                raise Closed(None)
            buf += chunk

    # closing ------------------------------------------------------------------
    def close(self, code: int = 1000) -> None:
        """A clean close: close frame, then the socket."""
        try:
            self.send_raw(client_frame(OP_CLOSE, struct.pack("!H", code)))
        except OSError:
            pass
        self.sock.close()

    def abort(self) -> None:
        """Drop the connection as a lost network would: RST, no close frame."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.sock.close()
