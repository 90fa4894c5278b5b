"""The /ws handshake (PROTOCOL section 4): every refusal is plain HTTP, decided before any upgrade."""
from __future__ import annotations

import base64
import os
import socket

from imboy.clock import now_ms
from imboy.ws.frames import OP_TEXT

from .helpers import WsClient
from .ws_support import assert_open, client_at, client_frame, expect_close, fast_passwords, raw_handshake, ws_accept  # noqa: F401


def _no_upgrade(resp) -> None:
    """A refusal: no 101, no WebSocket headers, and the server ends the connection."""
    assert resp.status != 101
    assert "sec-websocket-accept" not in resp.headers and "upgrade" not in resp.headers
    resp.sock.settimeout(3)
    rest = b""
    while True:
        chunk = resp.sock.recv(4096)
        if not chunk:
            break
        rest += chunk
    assert rest == b"", "nothing may follow the refusal"
    resp.sock.close()


def test_accepted_handshake_answers_text_and_the_key(server, users):
    (a,) = users(1)
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    for proto in ("text", "chat, text", "text,binary"):
        resp = raw_handshake(server.port, headers={"Sec-WebSocket-Protocol": proto, "Sec-WebSocket-Key": key,
                                                   "authorization": a.token})
        assert resp.status == 101, proto
        assert resp.headers["sec-websocket-protocol"] == "text"
        assert resp.headers["sec-websocket-accept"] == ws_accept(key)
        assert resp.headers["upgrade"].lower() == "websocket"
        resp.sock.close()
    # The trailing-slash path is the same endpoint.
    resp = raw_handshake(server.port, path="/ws/", headers={"Sec-WebSocket-Protocol": "text"},
                         query={"authorization": a.token})
    assert resp.status == 101
    resp.sock.close()


def test_refusals_are_http_before_upgrade(server, imboy, users):
    (a,) = users(1)
    port = server.port
    # No subprotocol at all: 400, even with a valid token.
    resp = raw_handshake(port, headers={"authorization": a.token})
    assert resp.status == 400
    _no_upgrade(resp)
    # Subprotocols without "text": 406.
    resp = raw_handshake(port, headers={"Sec-WebSocket-Protocol": "chat, json", "authorization": a.token})
    assert resp.status == 406
    _no_upgrade(resp)
    # No token anywhere: 412.
    resp = raw_handshake(port, headers={"Sec-WebSocket-Protocol": "text"})
    assert resp.status == 412
    _no_upgrade(resp)
    resp = raw_handshake(port, headers={"Sec-WebSocket-Protocol": "text"}, query={"authorization": ""})
    assert resp.status == 412
    _no_upgrade(resp)


def test_token_errors_are_envelopes_without_upgrade(server, imboy, users):
    (a,) = users(1)
    expired = imboy.tokens.encode({"exp": now_ms() - 1000, "sub": "tk", "uid": a.hashid})
    tampered = a.token[:-3] + ("AAA" if not a.token.endswith("AAA") else "BBB")
    refresh = imboy.tokens.refresh_token(a.id)
    ghost = imboy.tokens.encode({"exp": now_ms() + 60000, "sub": "tk", "uid": "9d4nnk"})  # uid 513244
    cases = [
        ({"authorization": expired}, None, 705),
        (None, {"authorization": expired}, 705),
        ({"authorization": "not-a-token"}, None, 706),
        (None, {"authorization": tampered}, 706),
        ({"authorization": ghost}, None, 706),          # a well-signed token for no user
        ({"authorization": refresh}, None, 1),           # "Does not support refreshtoken"
    ]
    for headers, query, code in cases:
        resp = raw_handshake(server.port, headers={"Sec-WebSocket-Protocol": "text", **(headers or {})},
                             query=query)
        assert resp.status == 200, (headers, query)
        assert resp.headers["content-type"].startswith("application/json")
        body = resp.json()
        assert body["code"] == code and body["payload"] == [] and isinstance(body["msg"], str), body
        _no_upgrade(resp)


def test_token_by_header_or_query(server, users):
    (a,) = users(1)
    by_header = WsClient(server.ws_url, None, header=[f"authorization: {a.token}"])
    assert_open(by_header)
    bearer = WsClient(server.ws_url, None, device="ios", header=[f"authorization: Bearer {a.token}"])
    assert_open(bearer)
    by_query = WsClient(server.ws_url, a.token, device="android")
    assert_open(by_query)
    for c in (by_header, bearer, by_query):
        c.close()


def test_device_type_by_header_or_query(server, users):
    """The device type decides who gets kicked: the header wins over the query."""
    (a,) = users(1)
    # Query says web, header says android: an android connection.
    first = WsClient(server.ws_url, a.token, device="web", header=["cos: android"])
    assert_open(first)
    web = WsClient(server.ws_url, a.token, device="web")          # a different type: no kick
    assert_open(web)
    assert_open(first)
    second = WsClient(server.ws_url, a.token, device="android")   # by query: kicks the first
    first.expect(lambda f: isinstance(f, dict) and f.get("code") == 786)
    assert expect_close(first) == 4786
    assert_open(second)
    assert_open(web)
    # No cos at all means web: it replaces the web connection.
    plain = client_at(server.ws_url + f"?authorization={a.token}")  # no cos anywhere
    assert expect_close(web) == 4786
    assert_open(plain)
    for c in (second, plain):
        c.close()


def test_unknown_device_type_is_refused(server, users):
    (a,) = users(1)
    resp = raw_handshake(server.port, headers={"Sec-WebSocket-Protocol": "text", "cos": "toaster"},
                         query={"authorization": a.token})
    assert resp.status == 400
    _no_upgrade(resp)


def test_frames_sent_with_the_handshake_are_not_lost(server, users):
    """A client may write its first frames right behind the upgrade request; the
    handshake's reader takes them from the socket, and the connection must get them."""
    (a,) = users(1)
    key = base64.b64encode(os.urandom(16)).decode()
    request = (f"GET /ws?cos=web&authorization={a.token} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
               "Sec-WebSocket-Protocol: text\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(request + client_frame(OP_TEXT, b"ping") * 3)
        data = b""
        while data.count(b"pong2") < 3:
            chunk = sock.recv(4096)
            assert chunk, data
            data += chunk
        assert data.startswith(b"HTTP/1.1 101")
