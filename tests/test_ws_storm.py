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


def test_a_handshake_whose_client_gave_up_does_not_replace_the_new_connection(imboy, server, users, monkeypatch):
    """A client times out, reconnects, and only then is its first attempt served: the first
    attempt must not log the new connection out (S2C 786) nor take its messages."""
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


def test_a_user_back_before_the_departure_is_announced_is_not_shown_offline(imboy, server, users, monkeypatch):
    """Departures are announced a little later (bounded, behind the handshakes); a user who
    reconnected meanwhile must not appear offline to friends."""
    a, b = users(2)
    befriend(imboy, a, b)
    cb = connect(server, b)
    ca = connect(server, a)
    assert _presence_of(cb, a, 2.0) == ["online"]
    real = imboy.presence._state_and_friends

    def slow(uid):
        gevent.sleep(0.5)  # the departure's read is still running when A comes back
        return real(uid)

    monkeypatch.setattr(imboy.presence, "_state_and_friends", slow)
    ca.close()
    gevent.sleep(0.1)
    ca = connect(server, a)
    notices = _presence_of(cb, a, 1.5)
    assert notices in ([], ["online"])  # never a trailing "offline"
    assert_open(ca)
    ca.close()
    # A real departure is still announced.
    assert _presence_of(cb, a, 2.0) == ["offline"]
    cb.close()


def _presence_of(client, who, seconds: float) -> list[str]:
    """The presence notices (S2C 1019) about `who` arriving within `seconds`."""
    return [f["payload"]["content"] for _, f in collect(client, seconds, "S2C")
            if f["payload"]["msg_type"] == "1019" and f["from"] == who.hashid]
