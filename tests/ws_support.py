"""Helpers for the WebSocket tests: raw handshakes and frames, HTTP calls,
friends and groups made through the services, close-code readers.

`fast_passwords` is a fixture the WebSocket test modules import: these tests
never log in with a password, and scrypt (~80 ms a user) would otherwise
dominate their run time.
"""
from __future__ import annotations

import base64
import json
import os
import socket
import struct
import time
import urllib.parse
from typing import Any, Iterable

import pytest
import websocket

from imboy import passwords
from imboy.ws.frames import OP_CLOSE, unmask

from .helpers import TestUser, WsClient


@pytest.fixture(autouse=True)
def fast_passwords(monkeypatch):
    """Cheap password hashes for users these tests create (never used to log in)."""
    monkeypatch.setattr(passwords, "hash_password", lambda password: "test-only-not-a-hash")


# -- the social graph, through the services ------------------------------------
def befriend(imboy: Any, *people: TestUser) -> None:
    """Make every pair of `people` friends."""
    for i, a in enumerate(people):
        for b in people[i + 1:]:
            imboy.friends.do_make_friends(a.id, b.id)


def make_group(imboy: Any, owner: TestUser, *members: TestUser, name: str = "team") -> str:
    """A group owned by `owner`; returns its hashid."""
    return imboy.groups.do_create_group(owner.id, name, [m.id for m in members])["id"]


def connect(server: Any, user: TestUser, device: str = "web", timeout: float = 5.0) -> WsClient:
    return WsClient(server.ws_url, user.token, device=device, timeout=timeout)


def client_at(url: str, header: list[str] | None = None, timeout: float = 5.0, **options: Any) -> WsClient:
    """A `WsClient` on exactly `url` (WsClient itself always adds cos and the token)."""
    client = WsClient.__new__(WsClient)
    client.ws = websocket.create_connection(url, subprotocols=["text"], timeout=timeout, header=header or [],
                                            **options)
    client.timeout = timeout
    return client


# -- frames ---------------------------------------------------------------------
def client_frame(opcode: int, payload: bytes, fin: bool = True, rsv: int = 0, mask: bool = True) -> bytes:
    """One client frame, masked unless told otherwise (for RFC-violation tests)."""
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", b0, (0x80 if mask else 0) | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, (0x80 if mask else 0) | 126, n)
    else:
        head = struct.pack("!BBQ", b0, (0x80 if mask else 0) | 127, n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + unmask(payload, key)


def close_code(data: bytes) -> int | None:
    return struct.unpack("!H", data[:2])[0] if len(data) >= 2 else None


def expect_close(client: WsClient, timeout: float = 5.0) -> int | None:
    """Read until the server's close frame; its code, or None if the socket just ended.

    Text frames before the close are skipped.
    """
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("the server did not close the connection")
        try:
            opcode, data = client.recv_raw(left)
        except websocket.WebSocketTimeoutException:
            raise AssertionError("the server did not close the connection") from None
        except (websocket.WebSocketConnectionClosedException, ConnectionError, OSError):
            return None
        if opcode == OP_CLOSE:
            return close_code(data)


def assert_open(client: WsClient) -> None:
    """The connection still answers the text heartbeat."""
    client.send_text("ping")
    assert client.expect(lambda f: f == "pong2") == "pong2"


def collect(client: WsClient, seconds: float, kind: str | None = None) -> list[tuple[float, Any]]:
    """Every frame (of `kind`) that arrives within `seconds`, with its arrival time."""
    out: list[tuple[float, Any]] = []
    deadline = time.monotonic() + seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return out
        try:
            frame = client.recv(left)
        except websocket.WebSocketTimeoutException:
            return out
        if kind is None or (isinstance(frame, dict) and frame.get("type") == kind):
            out.append((time.monotonic(), frame))


def take(client: WsClient, n: int, kind: str, timeout: float = 5.0) -> list[Any]:
    """The next `n` frames of `kind`, in arrival order (other frames are skipped)."""
    return [client.expect_type(kind, timeout) for _ in range(n)]


# -- raw HTTP ---------------------------------------------------------------------
class RawResponse:
    def __init__(self, status: int, headers: dict[str, str], body: bytes, sock: socket.socket) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.sock = sock

    def json(self) -> Any:
        return json.loads(self.body)


def raw_handshake(port: int, path: str = "/ws", headers: dict[str, str] | None = None,
                  query: dict[str, str] | None = None, method: str = "GET",
                  timeout: float = 5.0) -> RawResponse:
    """Send an upgrade request as written, read the status, headers and body.

    The body is read by Content-Length; a 101 has none and leaves the
    socket open on the WebSocket stream.
    """
    if query:
        path += "?" + urllib.parse.urlencode(query)
    key = base64.b64encode(os.urandom(16)).decode("ascii")
    base = {"Host": f"127.0.0.1:{port}", "Upgrade": "websocket", "Connection": "Upgrade",
            "Sec-WebSocket-Key": key, "Sec-WebSocket-Version": "13"}
    for name, value in (headers or {}).items():
        if value is None:
            base.pop(name, None)
        else:
            base[name] = value
    request = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in base.items()) + "\r\n"
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.sendall(request.encode("latin-1"))
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(4096)
        if not chunk:
            raise AssertionError(f"connection closed before the response headers: {buf!r}")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        hdrs[name.strip().lower()] = value.strip()
    body = rest
    if status != 101:
        length = int(hdrs.get("content-length", "0"))
        while len(body) < length:
            chunk = sock.recv(4096)
            if not chunk:
                break
            body += chunk
    return RawResponse(status, hdrs, body, sock)


def ws_accept(key: str) -> str:
    import hashlib
    return base64.b64encode(hashlib.sha1(key.encode() + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()).decode()


def http_post(server: Any, path: str, form: dict[str, str], token: str | None = None) -> tuple[int, Any]:
    """A form POST to the live server; (HTTP status, parsed JSON body)."""
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if token:
        headers["authorization"] = token
    try:
        conn.request("POST", path, body=urllib.parse.urlencode(form), headers=headers)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def ids_of(frames: Iterable[Any]) -> list[str]:
    return [f["id"] for f in frames if isinstance(f, dict)]
