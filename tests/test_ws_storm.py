"""Reconnect storms: handshakes that wait while their clients give up."""
from __future__ import annotations

import base64
import os
import socket

import gevent.event

from .ws_support import assert_open, befriend, collect, connect, fast_passwords  # noqa: F401


def _send_handshake(port: int, token: str) -> socket.socket:
    """An upgrade request for `token` on device web; the response is not read."""
    key = base64.b64encode(os.urandom(16)).decode("ascii")
    request = (f"GET /ws?cos=web HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
               f"Sec-WebSocket-Protocol: text\r\nAuthorization: {token}\r\n\r\n")
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(request.encode("latin-1"))
    return sock


def test_a_handshake_whose_client_gave_up_does_not_replace_the_new_connection(make_app, make_server, users,
                                                                              monkeypatch):
    """A client times out, reconnects, and only then is its first attempt served: the first
    attempt must not log the new connection out (S2C 786) nor take its messages."""
    app = make_app()
    imboy = app.extensions["imboy"]
    server = make_server(app)
    a, b = users(2)
    befriend(imboy, a, b)
    held, release = gevent.event.Event(), gevent.event.Event()
    real = imboy.users.access_user

    def slow(uid):
        if not held.is_set():
            held.set()
            release.wait(5)
        return real(uid)

    monkeypatch.setattr(imboy.users, "access_user", slow)
    stale = _send_handshake(server.port, a.token)
    assert held.wait(5)          # the first attempt waits in the server
    stale.close()                # the client gives up on it ...
    live = connect(server, a)    # ... and connects again, at once
    release.set()                # now the first attempt's turn comes
    assert collect(live, 0.5, "S2C") == []
    assert_open(live)
    cb = connect(server, b)
    cb.send_json({"id": "storm-1", "type": "C2C", "to": a.hashid, "payload": "still here?"})
    cb.expect_type("C2C_SERVER_ACK")
    assert live.expect_type("C2C")["id"] == "storm-1"
    live.close()
    cb.close()
