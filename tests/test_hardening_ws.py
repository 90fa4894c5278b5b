"""Hardening of /ws and the HTTP side: frame rate limits, resource bounds,
authorization refusals and token attacks, each proven through the protocol
on real sockets, on SQLite and MariaDB.

Bounds covered elsewhere: a client that stops reading is dropped at
SEND_QUEUE_LIMIT frames (tests/test_ws_connection.py::
test_a_client_that_stops_reading_is_dropped_and_gets_everything_later),
fragmented messages over MAX_FRAME_BYTES (tests/test_ws_bad_input.py),
oversized bodies with and without a length (tests/test_bad_input_http.py::
test_body_over_the_limit).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import struct

import gevent
import gevent.event
import requests

from imboy.clock import now_ms
from imboy.repositories import messages as messages_repo
from imboy.ws import connection
from imboy.ws.frames import OP_PING, OP_PONG

from .hardening_support import RATE_LIMITED, eof_within, is_frame, read_until_close
from .helpers import wait_for as wait_until
from .ws_support import (assert_open, befriend, client_at, client_frame, collect, connect,  # noqa: F401
                         expect_close, fast_passwords, make_group, raw_handshake, take)


def c2c(msg_id: str, to, payload="x") -> dict:
    return {"id": msg_id, "type": "C2C", "to": to.hashid, "payload": payload}


def c2g(msg_id: str, gid: str, payload="x") -> dict:
    return {"id": msg_id, "type": "C2G", "to": gid, "payload": payload}


def pending_ids(imboy, uid: int) -> list[str]:
    return [r["msg_id"] for r in imboy.db.run("test.pending", messages_repo.pending_c2c, uid)]


def chat_works(sender, receiver, to, msg_id: str, payload="still here") -> None:
    """One message from `sender` reaches `receiver` and is acked: service as usual."""
    sender.send_json(c2c(msg_id, to, payload))
    assert sender.expect(lambda f: is_frame("C2C_SERVER_ACK")(f) and f["id"] == msg_id)
    assert receiver.expect(lambda f: is_frame("C2C")(f) and f["id"] == msg_id)["payload"] == payload


# -- frame rate limit ----------------------------------------------------------------
def test_a_frame_flood_gets_error_frames_then_1008_and_nobody_else_notices(make_app, make_server, users):
    app = make_app(WS_RATE=1.0, WS_BURST=10)
    imboy = app.extensions["imboy"]
    server = make_server(app)
    flooder, c, d = users(3)
    befriend(imboy, c, d)
    cf, cc, cd = connect(server, flooder), connect(server, c), connect(server, d)
    # A burst of 15 at once: the first 10 (and any token refilled meanwhile)
    # are served as usual, the rest refused, each with its own id.
    for n in range(15):
        cf.send_json({"id": f"f-{n}", "type": "NOPE"})
    answers = [cf.expect_type("error") for _ in range(15)]
    assert [a["id"] for a in answers] == [f"f-{n}" for n in range(15)]
    served = [a["msg"] != RATE_LIMITED for a in answers]
    assert served == sorted(served, reverse=True), "refusals only after the budget is spent"
    assert 10 <= served.count(True) <= 12 and all(a["code"] == 1 for a in answers)
    # Heartbeats are never refused, and other users chat as usual.
    assert_open(cf)
    cf.ws.sock.sendall(client_frame(OP_PING, b"hb"))
    assert cf.recv_raw() == (OP_PONG, b"hb")
    chat_works(cc, cd, d, "side-1")

    # Going on at full speed: more refusals, then the connection is closed with 1008,
    # while another user keeps being served at the same time.
    def flood() -> None:
        try:
            for n in range(15, 400):
                cf.send_json({"id": f"f-{n}", "type": "NOPE"})
        except Exception:
            pass  # the server closed the connection

    flooding = gevent.spawn(flood)
    for n in range(5):
        chat_works(cc, cd, d, f"side-flood-{n}")
    frames, code = read_until_close(cf)
    assert code == 1008
    # Refusals to the end (a token refilled meanwhile may serve one more frame).
    assert frames and frames[-1]["msg"] == RATE_LIMITED
    assert {f["msg"] for f in frames} <= {RATE_LIMITED, "Unknown frame type"}
    flooding.join(5)
    wait_until(lambda: not imboy.registry.is_online(flooder.id), what="the flooder to be gone")
    # The flooder may come back, with a fresh budget.
    cf = connect(server, flooder)
    cf.send_json({"id": "again", "type": "NOPE"})
    assert cf.expect_type("error")["msg"] == "Unknown frame type"
    for x in (cf, cc, cd):
        x.close()


def test_clients_within_the_budget_are_never_refused(make_app, make_server, users):
    app = make_app(WS_RATE=50.0, WS_BURST=10, ACK_RETRY_SCHEDULE=(5.0,))
    imboy = app.extensions["imboy"]
    server = make_server(app)
    a, b = users(2)
    befriend(imboy, a, b)
    ca = connect(server, a)
    # A full burst at once, then a steady half of the rate.
    sent = [f"burst-{n}" for n in range(10)]
    for msg_id in sent:
        ca.send_json(c2c(msg_id, b))
    for n in range(25):
        gevent.sleep(0.04)
        sent.append(f"steady-{n}")
        ca.send_json(c2c(sent[-1], b))
    answers = [ca.expect(lambda f: is_frame("C2C_SERVER_ACK")(f) or is_frame("error")(f)) for _ in sent]
    assert [f["type"] for f in answers] == ["C2C_SERVER_ACK"] * len(sent), [f for f in answers
                                                                           if f["type"] == "error"][:3]
    assert [f["id"] for f in answers] == sent
    # The acks owed for a large pending flush are not charged to the budget:
    # B gets 35 messages at connect and acks them all at once.
    cb = connect(server, b)
    got = take(cb, len(sent), "C2C")
    for frame in got:
        cb.send_json({"id": frame["id"], "type": "C2C_CLIENT_ACK"})
    assert_open(cb)
    assert not any(isinstance(f, dict) and f.get("msg") == RATE_LIMITED for _, f in collect(cb, 0.2))
    wait_until(lambda: pending_ids(imboy, b.id) == [], what="every ack to be applied")
    # That credit is bounded by what was pushed (35): a flood beyond it and the
    # budget is refused again, then closed.
    for n in range(150):
        cb.send_json({"id": f"extra-{n}", "type": "NOPE"})
    frames, code = read_until_close(cb)
    assert any(f["msg"] == RATE_LIMITED for f in frames) and code == 1008
    for x in (ca, cb):
        x.close()


# -- bounds --------------------------------------------------------------------------
def test_a_huge_declared_frame_is_refused_before_its_payload_exists(make_app, make_server, users):
    app = make_app(MAX_FRAME_BYTES=64 * 1024)
    imboy = app.extensions["imboy"]
    server = make_server(app)
    c, d, *hostile = users(8)
    befriend(imboy, c, d)
    cc, cd = connect(server, c), connect(server, d)
    clients = [connect(server, u) for u in hostile]
    # Each declares a 1 GiB text frame and sends only the header and mask: the
    # 1009 comes back although no payload was ever sent, so none was buffered.
    for client in clients:
        client.ws.sock.sendall(struct.pack("!BBQ", 0x81, 0xFF, 1 << 30) + b"mask")
    closes = [gevent.spawn(expect_close, client) for client in clients]
    # Meanwhile a message just under the limit goes through.
    chat_works(cc, cd, d, "big-but-fine", "p" * 60000)
    assert [job.get(timeout=10) for job in closes] == [1009] * len(clients)
    for client in clients:
        client.close()
    for x in (cc, cd):
        x.close()


def test_the_send_queue_is_bounded_in_bytes(make_app, make_server, users, monkeypatch):
    monkeypatch.setattr(connection, "CLOSE_GRACE", 0.5)
    cap = 256 * 1024
    app = make_app(SEND_QUEUE_LIMIT=1000, SEND_QUEUE_BYTES=cap, ACK_RETRY_SCHEDULE=(5.0,),
                   WS_RATE=1000.0, WS_BURST=1000)
    imboy = app.extensions["imboy"]
    server = make_server(app)
    a, b, c = users(3)
    befriend(imboy, a, b, c)
    ca, cc = connect(server, a), connect(server, c)
    # One frame larger than the whole byte bound still reaches a reading client.
    chat_works(ca, cc, c, "larger-than-the-queue", "L" * (cap + 50000))
    # B reads nothing through a tiny window: frames pile up in its queue.
    stuck = client_at(f"{server.ws_url}?cos=web&authorization={b.token}",
                      sockopt=((socket.SOL_SOCKET, socket.SO_RCVBUF, 2048),))
    conn_b = wait_until(lambda: imboy.registry.connections(b.id), what="B's connection")[0]
    peak = [0, 0]

    def watch() -> None:
        while True:
            peak[0] = max(peak[0], conn_b.queued_bytes)
            peak[1] = max(peak[1], len(conn_b._out))
            gevent.sleep(0.001)

    watcher = gevent.spawn(watch)
    sent = 0
    for n in range(300):
        ca.send_json(c2c(f"q-{n}", b, {"blob": "z" * 50000, "n": n}))
        ca.expect_type("C2C_SERVER_ACK")
        sent += 1
        if conn_b.closing:
            break
    watcher.kill()
    assert conn_b.close_code == 1008, "the byte bound closed the connection"
    assert 0 < peak[0] <= cap and peak[1] < 1000, peak
    # Others are served as usual, and B's messages wait in the pending store.
    chat_works(cc, ca, a, "side")
    stuck.close()
    wait_until(lambda: not imboy.registry.is_online(b.id), what="B to be gone")
    assert pending_ids(imboy, b.id) == [f"q-{n}" for n in range(sent)]
    for x in (ca, cc):
        x.close()


def test_a_ping_flood_that_never_reads_is_bounded_too(make_app, make_server, users, monkeypatch):
    """Pings are exempt from the frame budget, not from the send queue: their pongs count."""
    monkeypatch.setattr(connection, "CLOSE_GRACE", 0.5)
    app = make_app(SEND_QUEUE_LIMIT=100)
    imboy = app.extensions["imboy"]
    server = make_server(app)
    a, c, d = users(3)
    befriend(imboy, c, d)
    cc, cd = connect(server, c), connect(server, d)
    flooder = client_at(f"{server.ws_url}?cos=web&authorization={a.token}",
                        sockopt=((socket.SOL_SOCKET, socket.SO_RCVBUF, 2048),))
    conn = wait_until(lambda: imboy.registry.connections(a.id), what="the flooder's connection")[0]
    ping = client_frame(OP_PING, b"p" * 125)

    def flood() -> None:
        try:
            for _ in range(5000):
                flooder.ws.sock.sendall(ping * 20)
        except OSError:
            pass  # closed by the server

    flooding = gevent.spawn(flood)
    wait_until(lambda: conn.closing, timeout=10, what="the flooder to be closed")
    assert conn.close_code == 1008 and len(conn._out) <= 100
    chat_works(cc, cd, d, "during-ping-flood")
    flooding.kill()
    flooder.close()
    wait_until(lambda: not imboy.registry.is_online(a.id), what="the flooder to be gone")
    for x in (cc, cd):
        x.close()


def test_the_pending_store_is_bounded_per_user(make_app, make_server, users):
    app = make_app(PENDING_LIMIT=5)
    imboy = app.extensions["imboy"]
    server = make_server(app)
    http = app.test_client()
    a, b, c = users(3)
    befriend(imboy, a, b, c)
    ca = connect(server, a)
    for n in range(12):
        ca.send_json(c2c(f"to-b-{n}", b, {"n": n}))
        ca.expect_type("C2C_SERVER_ACK")
    for n in range(3):
        ca.send_json(c2c(f"to-c-{n}", c, {"n": n}))
        ca.expect_type("C2C_SERVER_ACK")
    count = imboy.db.run("test.count", lambda tx: tx.scalar(
        "SELECT COUNT(*) FROM `msg_c2c` WHERE `to_id` = %s AND `status` = 0", (b.id,)))
    assert count == 5
    mine = http.get("/conversation/mine", headers=b.headers).get_json()["payload"]
    assert [f["id"] for f in mine] == [f"to-b-{n}" for n in range(7, 12)]
    # C's store is its own: the overflow of B's took nothing from it.
    mine = http.get("/conversation/mine", headers=c.headers).get_json()["payload"]
    assert [f["id"] for f in mine] == ["to-c-0", "to-c-1", "to-c-2"]
    cb = connect(server, b)
    assert [f["id"] for f in take(cb, 5, "C2C")] == [f"to-b-{n}" for n in range(7, 12)]
    for x in (ca, cb):
        x.close()


def test_handshakes_beyond_the_gate_get_503_and_later_ones_succeed(make_app, make_server, users, monkeypatch):
    app = make_app(HANDSHAKE_CONCURRENCY=2)
    imboy = app.extensions["imboy"]
    server = make_server(app)
    a, b, c, d, e = users(5)
    befriend(imboy, d, e)
    cd, ce = connect(server, d), connect(server, e)
    # Handshakes that hang in the token check (a slow database, say) hold the gate.
    release, entered = gevent.event.Event(), []
    original = imboy.users.check_active

    def slow_access(uid):
        entered.append(uid)
        release.wait(10)
        return original(uid)

    monkeypatch.setattr(imboy.users, "check_active", slow_access)
    proto = {"Sec-WebSocket-Protocol": "text"}
    held = [gevent.spawn(raw_handshake, server.port, headers=dict(proto, authorization=u.token)) for u in (a, b)]
    wait_until(lambda: len(entered) == 2, what="two handshakes in progress")
    refused = [raw_handshake(server.port, headers=dict(proto, authorization=c.token)) for _ in range(3)]
    assert [r.status for r in refused] == [503] * 3
    assert all(b"retry" in r.body for r in refused) and len(entered) == 2
    for r in refused:
        assert eof_within(r.sock, 3)
        r.sock.close()
    # Connected users are not affected.
    chat_works(cd, ce, e, "during-handshakes")
    release.set()
    accepted = [job.get(timeout=5) for job in held]
    assert [r.status for r in accepted] == [101, 101]
    later = raw_handshake(server.port, headers=dict(proto, authorization=c.token))
    assert later.status == 101
    for r in accepted + [later]:
        r.sock.close()
    for x in (cd, ce):
        x.close()


def test_a_huge_declared_body_is_refused_with_the_envelope_before_it_is_read(app, server, users):
    a, b = users(2)
    big = 1 << 30

    def declare_huge() -> tuple[int, dict]:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        head = (f"POST /user/change_sign HTTP/1.1\r\nHost: x\r\nauthorization: {a.token}\r\n"
                "Content-Type: application/x-www-form-urlencoded\r\n"
                f"Content-Length: {big}\r\n\r\nsign=").encode()
        sock.sendall(head)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = int([ln.split(b":")[1] for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length")][0])
        while len(body) < length:
            body += sock.recv(65536)
        sock.close()
        return int(head.split()[1]), json.loads(body)

    jobs = [gevent.spawn(declare_huge) for _ in range(10)]
    info = requests.get(server.url + "/user/open_info", params={"id": a.hashid}, headers=b.headers, timeout=5)
    assert info.json()["code"] == 0
    for job in jobs:
        status, body = job.get(timeout=10)
        assert status == 200 and body == {"code": 1, "msg": "Request body too large", "payload": []}


# -- authorization -------------------------------------------------------------------
def test_kicked_members_and_dissolved_groups_are_refused(imboy, server, client, users):
    owner, kicked, member = users(3)
    gid = make_group(imboy, owner, kicked, member)
    co, ck, cm = connect(server, owner), connect(server, kicked), connect(server, member)
    ck.send_json(c2g("before-kick", gid))
    assert ck.expect_type("C2G_SERVER_ACK")["id"] == "before-kick"
    assert client.post("/group/kick", data={"id": gid, "uid": kicked.hashid},
                       headers=owner.headers).get_json()["code"] == 0
    ck.send_json(c2g("after-kick", gid))
    err = ck.expect_type("error")
    assert err["id"] == "after-kick" and err["code"] == 2
    # A kicked member may not list the members either.
    body = client.get("/group/member", query_string={"id": gid}, headers=kicked.headers).get_json()
    assert body["code"] == 2 and body["payload"] == []
    assert client.post("/group/dissolve", data={"id": gid}, headers=owner.headers).get_json()["code"] == 0
    for who, conn in (("owner", co), ("member", cm)):
        conn.send_json(c2g(f"dissolved-{who}", gid))
        err = conn.expect_type("error")
        assert err["id"] == f"dissolved-{who}" and err["code"] == 2
    # Nothing of it reached anybody.
    for conn in (co, cm):
        assert not [f for _, f in collect(conn, 0.2, "C2G") if f["id"] != "before-kick"]
    for x in (co, ck, cm):
        x.close()


def test_acks_only_ever_remove_the_ackers_own_entries(imboy, server, users):
    a, b, outsider = users(3)
    befriend(imboy, a, b)
    gid = make_group(imboy, a, b)
    ca, co = connect(server, a), connect(server, outsider)
    ca.send_json(c2c("for-b", b))
    ca.expect_type("C2C_SERVER_ACK")
    ca.send_json(c2g("g-for-b", gid))
    ca.expect_type("C2G_SERVER_ACK")
    # The sender acking its own message, and an outsider acking both.
    ca.send_json({"id": "for-b", "type": "C2C_CLIENT_ACK"})
    assert ca.expect_type("error")["id"] == "for-b"
    co.send_json({"id": "for-b", "type": "C2C_CLIENT_ACK"})
    assert co.expect_type("error")["id"] == "for-b"
    for conn in (ca, co):
        conn.send_json({"id": "g-for-b", "type": "C2G_CLIENT_ACK", "to": gid})
        assert_open(conn)
    assert pending_ids(imboy, b.id) == ["for-b"]
    cb = connect(server, b)
    got = {cb.expect(lambda f: isinstance(f, dict) and f.get("type") in ("C2C", "C2G"))["id"] for _ in range(2)}
    assert got == {"for-b", "g-for-b"}
    for x in (ca, cb, co):
        x.close()


def test_conversation_mine_shows_only_ones_own_messages(imboy, server, client, users):
    a, b, c = users(3)
    befriend(imboy, a, b, c)
    ca = connect(server, a)
    ca.send_json(c2c("secret-for-b", b, "for B's eyes"))
    ca.expect_type("C2C_SERVER_ACK")
    for query in ({}, {"uid": b.hashid}, {"to": b.hashid}, {"id": b.hashid}, {"last_server_ts": "0"},
                  {"to_id": str(b.id)}):
        body = client.get("/conversation/mine", query_string=query, headers=c.headers).get_json()
        assert body["code"] == 0 and body["payload"] == [], query
        body = client.get("/conversation/mine", query_string=query, headers=a.headers).get_json()
        assert body["payload"] == [], "the sender does not see its sent messages as pending"
    body = client.get("/conversation/mine", headers=b.headers).get_json()
    assert [f["id"] for f in body["payload"]] == ["secret-for-b"]
    ca.close()


# -- tokens at the handshake ----------------------------------------------------------
def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _jwt(header: dict, claims: dict, key: bytes | None) -> str:
    signing = _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(claims).encode())
    if key is None:
        return signing + "."
    return signing + "." + _b64(hmac.new(key, signing.encode(), hashlib.sha256).digest())


def test_forged_tokens_are_refused_at_the_handshake(server, imboy, users):
    a, b = users(2)
    claims = {"exp": now_ms() + 600000, "sub": "tk", "uid": b.hashid}
    real_payload = a.token.split(".")[1]
    cases = [
        _jwt({"alg": "none", "typ": "JWT"}, claims, None),                    # unsigned
        _jwt({"alg": "none", "typ": "JWT"}, claims, b"test-secret-key-not-for-production"),
        _jwt({"alg": "HS256", "typ": "JWT"}, claims, b"a guessed key"),         # B's uid, wrong key
        _jwt({"alg": "HS256", "typ": "JWT"}, claims, b""),                      # empty key
        # A's real signature over a payload changed to B's uid.
        a.token.replace(real_payload, _b64(json.dumps(claims).encode())),
        _jwt({"alg": "HS512", "typ": "JWT"}, claims, b"test-secret-key-not-for-production"),
        "..", "a.b.c", "Bearer", "\u00e9" * 40, "x" * 5000,
    ]
    for token in cases:
        resp = raw_handshake(server.port, headers={"Sec-WebSocket-Protocol": "text"},
                             query={"authorization": token})
        assert resp.status == 200 and "sec-websocket-accept" not in resp.headers, token
        assert resp.json() == {"code": 706, "msg": resp.json()["msg"], "payload": []}, token
        resp.sock.close()
    # The genuine token of the same user still works.
    c = connect(server, b)
    assert_open(c)
    c.close()
