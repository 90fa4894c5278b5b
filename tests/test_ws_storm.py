"""Reconnect storms: handshakes that wait while their clients give up."""
from __future__ import annotations

import base64
import os
import socket

import gevent.event

from imboy import ids

from .ws_support import assert_open, befriend, collect, connect, fast_passwords, make_group  # noqa: F401


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
    real = imboy.users.check_active

    def slow(uid):
        if not held.is_set():
            held.set()
            release.wait(5)
        return real(uid)

    monkeypatch.setattr(imboy.users, "check_active", slow)
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
    real = imboy.presence._states_and_friends

    def slow(uids):
        gevent.sleep(0.5)  # the departure's read is still running when A comes back
        return real(uids)

    monkeypatch.setattr(imboy.presence, "_states_and_friends", slow)
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


def _backlog(imboy, sender, limit_over, two, group_member):
    """Pending messages for a batch of arrivals: over the limit (3), under it, mixed with a
    group's; returns the ids each user should get, oldest first."""
    gid = ids.decode(make_group(imboy, sender, limit_over, two, group_member))
    send = imboy.messages.send_c2c
    for n in range(4):
        send(sender.id, limit_over.id, f"over-{n}", '"x"', 1)
    send(sender.id, two.id, "two-0", '"x"', 1)
    send(sender.id, group_member.id, "mixed-0", '"x"', 1)
    imboy.messages.send_c2g(sender.id, gid, "group-0", '"x"', 1)
    send(sender.id, group_member.id, "mixed-1", '"x"', 1)
    send(sender.id, two.id, "two-1", '"x"', 1)
    send(sender.id, limit_over.id, "over-4", '"x"', 1)
    return {two.id: ["two-0", "group-0", "two-1"], group_member.id: ["mixed-0", "group-0", "mixed-1"],
            limit_over.id: ["over-2", "over-3", "group-0", "over-4"]}


def test_pending_of_many_users_read_together_keeps_each_users_own_and_the_limit(make_app, users):
    """The pending store is read for a batch of arriving users at once: each gets only its own
    messages, one-to-one and group merged oldest first, the newest up to the limit."""
    imboy = make_app(PENDING_LIMIT=3).extensions["imboy"]
    sender, over, two, member, idle = users(5)
    befriend(imboy, sender, over, two, member)
    expected = _backlog(imboy, sender, over, two, member)
    got = imboy.db.run("test.pending", imboy.messages.load_pending_many,
                       [over.id, idle.id, two.id, member.id, two.id])
    assert {uid: [row["msg_id"] for _, row in rows] for uid, rows in got.items()} == {**expected, idle.id: []}
    assert {kind for _, rows in got.items() for kind, _ in rows} == {"C2C", "C2G"}
    # The oldest over the limit were dropped, not left to come back later.
    again = imboy.db.run("test.pending", imboy.messages.load_pending_many, [over.id])
    assert [row["msg_id"] for _, row in again[over.id]] == expected[over.id]


def test_users_arriving_together_each_get_their_own_backlog(make_app, make_server, users):
    """Clients connecting at the same moment share the pending read; none gets another's."""
    app = make_app(PENDING_LIMIT=3)
    imboy = app.extensions["imboy"]
    server = make_server(app)
    sender, over, two, member = users(4)
    befriend(imboy, sender, over, two, member)
    expected = _backlog(imboy, sender, over, two, member)
    people = [over, two, member]
    clients = [job.get(timeout=10) for job in [gevent.spawn(connect, server, p) for p in people]]
    for person, client in zip(people, clients):
        frames = [f for _, f in collect(client, 1.0) if f.get("type") in ("C2C", "C2G")]
        # Unacked, so the retries follow; the first copies come in the order stored.
        assert list(dict.fromkeys(f["id"] for f in frames)) == expected[person.id]
        client.close()


def _presence_of(client, who, seconds: float) -> list[str]:
    """The presence notices (S2C 1019) about `who` arriving within `seconds`."""
    return [f["payload"]["content"] for _, f in collect(client, seconds, "S2C")
            if f["payload"]["msg_type"] == "1019" and f["from"] == who.hashid]


def test_the_server_accepts_a_storm_a_few_connections_per_loop_turn(app):
    """`python wsgi.py` (and the gunicorn worker, through the same `pace_accepts`) takes fewer
    connections per loop turn than gevent's default (bench/RESULTS.md: a 20,000 reconnect took
    44 s at gevent's 100 per turn, 19-21 s at 10)."""
    from gevent.baseserver import BaseServer

    from imboy import server

    built = server.make_server(app, "127.0.0.1", 0)
    assert built.max_accept == server.MAX_ACCEPT < BaseServer.max_accept
