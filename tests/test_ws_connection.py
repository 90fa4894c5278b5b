"""One connection's life: heartbeats, idle timeout, logout, kick, a client that stops reading,
a handler that fails, timers that die with the connection."""
from __future__ import annotations

import socket
import time

import gevent

from imboy.repositories import messages as messages_repo
from imboy.ws import connection
from imboy.ws.frames import OP_PING, OP_PONG

from .helpers import WsClient

from .ws_support import (assert_open, befriend, client_at, client_frame, connect, expect_close,  # noqa: F401
                         fast_passwords)


def test_text_and_websocket_heartbeats(server, users):
    (a,) = users(1)
    c = connect(server, a)
    c.send_text("ping")
    assert c.recv() == "pong2"
    for payload in (b"", b"hello", bytes(range(125))):
        c.ws.sock.sendall(client_frame(OP_PING, payload))
        opcode, data = c.recv_raw()
        assert (opcode, data) == (OP_PONG, payload)
    # A ping in the middle of a fragmented message is answered at once.
    c.ws.sock.sendall(client_frame(0x1, b'pi', fin=False) + client_frame(OP_PING, b"mid"))
    assert c.recv_raw() == (OP_PONG, b"mid")
    c.ws.sock.sendall(client_frame(0x0, b"ng"))
    assert c.recv() == "pong2"
    c.close()


def test_idle_connection_is_closed_and_heartbeats_keep_it(make_app, make_server, users):
    server = make_server(make_app(WS_IDLE_TIMEOUT=0.6))
    (a,) = users(1)
    c = connect(server, a)
    # Heartbeats more often than the timeout keep the connection for longer than it.
    for _ in range(3):
        gevent.sleep(0.35)
        assert_open(c)
    started = time.monotonic()
    assert expect_close(c, timeout=4) == 1000
    assert 0.4 < time.monotonic() - started < 3
    gevent.sleep(0.1)
    assert not server.imboy.registry.is_online(a.id)


def test_logout_closes_the_connection(server, users):
    (a,) = users(1)
    c = connect(server, a)
    c.send_text("logout")
    assert expect_close(c) == 1000
    deadline = time.monotonic() + 3
    while server.imboy.registry.is_online(a.id) and time.monotonic() < deadline:
        gevent.sleep(0.05)
    assert not server.imboy.registry.is_online(a.id)


def test_second_login_on_the_same_device_type_kicks_the_first(imboy, server, users):
    a, b = users(2)
    befriend(imboy, a, b)
    old = connect(server, a, "android")
    other_type = connect(server, a, "ios")
    cb = connect(server, b)
    new = connect(server, a, "android")
    kick = old.expect(lambda f: isinstance(f, dict) and f.get("type") == "S2C"
                      and f["payload"]["msg_type"] != "1019")
    assert kick["payload"]["msg_type"] == "786" and isinstance(kick["payload"]["content"], str)
    assert kick["code"] == 786 and kick["to"] == a.hashid
    assert expect_close(old) == 4786
    # The new connection and the other device type go on working and both get messages.
    assert_open(new)
    assert_open(other_type)
    cb.send_json({"id": "kick-m1", "type": "C2C", "to": a.hashid, "payload": "after the kick"})
    for c in (new, other_type):
        assert c.expect_type("C2C")["payload"] == "after the kick"
    other_type.nothing(0.2)
    # A kick is not a disconnection: friends heard no "offline".
    cb.expect_type("C2C_SERVER_ACK")
    cb.nothing(0.3)
    for c in (new, other_type, cb):
        c.close()


def test_unexpected_handler_failure_gives_an_error_frame_and_the_connection_survives(
        imboy, server, users, monkeypatch):
    a, b = users(2)
    befriend(imboy, a, b)
    c = connect(server, a)

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(imboy.messages, "send_c2c", broken)
    c.send_json({"id": "boom-1", "type": "C2C", "to": b.hashid, "payload": "x"})
    err = c.expect_type("error")
    assert err["id"] == "boom-1" and err["code"] == 1
    assert_open(c)
    monkeypatch.undo()
    c.send_json({"id": "boom-2", "type": "C2C", "to": b.hashid, "payload": "x"})
    assert c.expect_type("C2C_SERVER_ACK")["id"] == "boom-2"
    c.close()


def test_retry_timers_die_with_the_connection_and_pending_comes_back(imboy, server, users):
    a, b = users(2)
    befriend(imboy, a, b)
    ca = connect(server, a)
    cb = connect(server, b)
    conn_b = imboy.registry.connections(b.id)[0]
    ca.send_json({"id": "t-1", "type": "C2C", "to": b.hashid, "payload": "x"})
    cb.expect_type("C2C")
    assert conn_b.retrying == 1
    cb.close()
    deadline = time.monotonic() + 3
    while imboy.registry.is_online(b.id) and time.monotonic() < deadline:
        gevent.sleep(0.05)
    assert conn_b.retrying == 0
    # Not acked, so the next connection gets it again.
    cb = connect(server, b)
    assert cb.expect_type("C2C")["id"] == "t-1"
    cb.send_json({"id": "t-1", "type": "C2C_CLIENT_ACK"})
    cb.nothing(0.6)
    cb.close()
    ca.close()


def test_a_client_that_stops_reading_is_dropped_and_gets_everything_later(make_app, make_server, users,
                                                                         monkeypatch):
    # Shorter wait for the peer's close reply: the stuck client never sends one.
    monkeypatch.setattr(connection, "CLOSE_GRACE", 0.5)
    app = make_app(SEND_QUEUE_LIMIT=50, ACK_RETRY_SCHEDULE=(5.0,))
    imboy = app.extensions["imboy"]
    server = make_server(app)
    a, b, c = users(3)
    befriend(imboy, a, b, c)
    ca = connect(server, a)
    cc = connect(server, c)
    # B's client reads nothing and advertises a tiny window, so the server's
    # socket buffers fill and frames pile up in B's send queue.
    stuck = client_at(f"{server.ws_url}?cos=web&authorization={b.token}",
                      sockopt=((socket.SOL_SOCKET, socket.SO_RCVBUF, 2048),))
    blob = "z" * 60000
    sent = 0
    dropped_at = None
    for n in range(400):
        ca.send_json({"id": f"flood-{n}", "type": "C2C", "to": b.hashid, "payload": {"blob": blob, "n": n}})
        ca.expect_type("C2C_SERVER_ACK")
        sent += 1
        if not imboy.registry.is_online(b.id) or all(x.closing for x in imboy.registry.connections(b.id)):
            dropped_at = n
            break
    assert dropped_at is not None, "the send queue never overflowed"
    # Meanwhile everybody else is served as usual.
    cc.send_json({"id": "flood-side", "type": "C2C", "to": a.hashid, "payload": "still here"})
    assert ca.expect_type("C2C")["payload"] == "still here"
    assert cc.expect_type("C2C_SERVER_ACK")["id"] == "flood-side"
    # The stuck client's socket ends: 1008, or a bare close when the frame could not get through.
    stuck.ws.sock.settimeout(6)
    ended = False
    try:
        while stuck.ws.sock.recv(1 << 20):
            pass
        ended = True
    except (ConnectionError, OSError):
        ended = True
    assert ended
    deadline = time.monotonic() + 4
    while imboy.registry.is_online(b.id) and time.monotonic() < deadline:
        gevent.sleep(0.05)
    assert not imboy.registry.is_online(b.id)
    pending = imboy.db.run("t", messages_repo.pending_c2c, b.id)
    assert len(pending) == sent
    # Back with a client that reads: everything, oldest first.
    cb = connect(server, b, timeout=10)
    got = []
    while len(got) < sent:
        frame = cb.expect_type("C2C")
        if frame["id"] not in got:
            got.append(frame["id"])
    assert got == [f"flood-{n}" for n in range(sent)]
    assert_open(cb)
    for client in (ca, cb, cc):
        client.close()


def test_pending_store_unavailable_at_connect_is_tried_again(imboy, server, users, monkeypatch):
    """A busy database at connect delays the backlog instead of losing it until a reconnect."""
    from imboy.errors import ServiceUnavailable

    a, b = users(2)
    imboy.friends.do_make_friends(a.id, b.id)
    ca = WsClient(server.ws_url, a.token)
    ca.send_json({"id": "busy-1", "type": "C2C", "to": b.hashid, "payload": "waiting"})
    ca.expect_type("C2C_SERVER_ACK")
    real = imboy.sessions.arrive
    failures = []

    def flaky(uid, first):
        if not failures:
            failures.append(uid)
            raise ServiceUnavailable("Database busy, try again")
        return real(uid, first)

    monkeypatch.setattr(imboy.sessions, "arrive", flaky)
    cb = WsClient(server.ws_url, b.token)
    assert cb.expect_type("C2C", timeout=5)["id"] == "busy-1"
    assert failures == [b.id]
    ca.close()
    cb.close()


def test_retries_of_many_connections_share_queues_that_empty_after_the_schedule(imboy, server, users):
    """Each connection's retries come in its own order, stop at its ack or its close,
    and the process-wide queues behind them keep nothing once the schedule is over."""
    a, b, c, d = users(4)
    for friend in (b, c, d):
        befriend(imboy, a, friend)
    ca, cb, cc, cd = (connect(server, u) for u in (a, b, c, d))
    for n in range(3):
        for to in (b, c, d):
            ca.send_json({"id": f"q-{to.id}-{n}", "type": "C2C", "to": to.hashid, "payload": str(n)})
    first = {name: [client.expect_type("C2C")["id"] for _ in range(3)]
             for name, client in (("b", cb), ("c", cc), ("d", cd))}
    assert first == {name: [f"q-{u.id}-{n}" for n in range(3)] for name, u in (("b", b), ("c", c), ("d", d))}
    conn_d = imboy.registry.connections(d.id)[0]
    shared = conn_d._s
    assert sum(len(q) for q in shared._due.values()) >= 9
    # B acks everything, C only its middle message, D goes away.
    for n in range(3):
        cb.send_json({"id": f"q-{b.id}-{n}", "type": "C2C_CLIENT_ACK"})
    cc.send_json({"id": f"q-{c.id}-1", "type": "C2C_CLIENT_ACK"})
    cd.close()
    # C's copies (0.4 s after the push) come in the order first sent.
    assert [cc.expect_type("C2C")["id"] for _ in range(2)] == [f"q-{c.id}-0", f"q-{c.id}-2"]
    assert conn_d.retrying == 0
    cb.nothing(0.3)
    for n in (0, 2):
        cc.send_json({"id": f"q-{c.id}-{n}", "type": "C2C_CLIENT_ACK"})
    # The last interval of the schedule (1.0 s) passes: nothing is left queued.
    deadline = time.monotonic() + 5
    while shared._due and time.monotonic() < deadline:
        gevent.sleep(0.1)
    assert shared._due == {} and shared._due_timers == {}
    cc.nothing(0.2)
    for client in (ca, cb, cc):
        client.close()
