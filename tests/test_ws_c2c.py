"""One-to-one messages (PROTOCOL section 4, Delivery/C2C and Revoke), end to end on real sockets."""
from __future__ import annotations

import json
import sqlite3
import time

import gevent
import gevent.event
import pymysql
import pytest

from imboy.clock import now_ms
from imboy.repositories import friends as friends_repo
from imboy.repositories import messages as messages_repo
from imboy.services import messages as messages_service

from .conftest import MYSQL
from .helpers import wait_for
from .ws_support import befriend, client_frame, collect, connect, fast_passwords, ids_of, take  # noqa: F401

REVOKED = {"msg_type": "custom", "custom_type": "revoked"}


def _row(imboy, msg_id):
    return imboy.db.run("test.row", messages_repo.c2c_by_msg_id, msg_id)


def _pending_ids(imboy, uid):
    return [r["msg_id"] for r in imboy.db.run("test.pending", messages_repo.pending_c2c, uid)]


def _c2c(msg_id, to, payload, **extra):
    return {"id": msg_id, "type": "C2C", "to": to.hashid, "payload": payload, **extra}


def test_online_message_is_durable_before_the_ack_and_reaches_every_device(imboy, server, users):
    a, b = users(2)
    befriend(imboy, a, b)
    ca = connect(server, a)
    web, phone = connect(server, b, "web"), connect(server, b, "android")
    payload = {"msg_type": "text", "text": "hi 👋", "nested": {"n": [1, 2.5, None, True]}}
    ca.send_json(_c2c("m-obj", b, payload, created_at=1650000000123, **{"from": "forged"}))
    ack = ca.expect_type("C2C_SERVER_ACK")
    # The ack came after the commit: the row is there, pending, with the acked server_ts.
    row = _row(imboy, "m-obj")
    assert row is not None and row["status"] == messages_repo.PENDING
    assert ack == {"id": "m-obj", "type": "C2C_SERVER_ACK", "server_ts": row["server_ts"]}
    for device in (web, phone):
        msg = device.expect_type("C2C")
        assert msg == {"id": "m-obj", "type": "C2C", "from": a.hashid, "to": b.hashid, "payload": payload,
                       "created_at": 1650000000123, "server_ts": ack["server_ts"]}
    # A string payload stays a string; a missing or non-integer created_at becomes the server time.
    for msg_id, created_at in (("m-str", None), ("m-bad-ts", "yesterday"), ("m-float-ts", 1.5)):
        before = now_ms()
        frame = _c2c(msg_id, b, "plain text {not json}")
        if created_at is not None:
            frame["created_at"] = created_at
        ca.send_json(frame)
        ca.expect_type("C2C_SERVER_ACK")
        for device in (web, phone):
            msg = device.expect(lambda f: isinstance(f, dict) and f.get("id") == msg_id)
            assert msg["payload"] == "plain text {not json}"
            assert before <= msg["created_at"] <= now_ms()
    # The sender gets no copy of its own messages.
    assert collect(ca, 0.1, "C2C") == []
    for c in (ca, web, phone):
        c.close()


def test_not_friends_is_refused_with_the_id(imboy, server, users):
    a, b, c = users(3)
    befriend(imboy, a, b)
    ca, cc = connect(server, a), connect(server, c)
    ca.send_json(_c2c("nf-1", c, "hello stranger"))
    err = ca.expect_type("error")
    assert err["id"] == "nf-1" and err["code"] == 1 and err["msg"] and isinstance(err["timestamp"], int)
    assert _row(imboy, "nf-1") is None
    # A friendship that ended (one direction is enough) refuses too.
    imboy.db.run("test.unlink", friends_repo.unlink, a.id, b.id, now_ms())
    ca.send_json(_c2c("nf-2", b, "hello ex-friend"))
    assert ca.expect_type("error")["id"] == "nf-2"
    assert _row(imboy, "nf-2") is None
    assert collect(cc, 0.2, "C2C") == []
    ca.close()
    cc.close()


def test_resend_of_the_same_id_is_idempotent(imboy, server, users):
    a, b, c = users(3)
    befriend(imboy, a, b, c)
    ca, cb, cc = connect(server, a), connect(server, b), connect(server, c)
    ca.send_json(_c2c("dup-1", b, "once"))
    first = ca.expect_type("C2C_SERVER_ACK")
    assert cb.expect_type("C2C")["id"] == "dup-1"
    cb.send_json({"id": "dup-1", "type": "C2C_CLIENT_ACK"})
    # Reopening the chat resends it, even with other content: same server_ts, no second copy.
    ca.send_json(_c2c("dup-1", b, "once again", created_at=1))
    again = ca.expect_type("C2C_SERVER_ACK")
    # The same ack, its server_ts an integer on the wire (not 1.7e12 from a DECIMAL column).
    assert again == first and type(again["server_ts"]) is int
    assert collect(cb, 0.7, "C2C") == []
    assert _row(imboy, "dup-1")["payload"] == '"once"'
    # What the send batch reads of a stored message is the row itself, value for value and type for type.
    stored, friends = imboy.db.run("test.batch_read", messages_repo.stored_and_friendships, ["dup-1"],
                                   [(a.id, b.id), (c.id, b.id)])
    row = _row(imboy, "dup-1")
    assert stored == {"dup-1": row} and friends == {(a.id, b.id), (c.id, b.id)}
    assert {k: type(v) for k, v in stored["dup-1"].items()} == {k: type(v) for k, v in row.items()}
    # Another sender cannot take the id.
    cc.send_json(_c2c("dup-1", b, "hijack"))
    assert cc.expect_type("error")["id"] == "dup-1"
    assert collect(cb, 0.1, "C2C") == []
    for x in (ca, cb, cc):
        x.close()


class _Operator:
    """An operator's own connection to the server's database, holding up the server's writes
    as a long command would: SQLite's write lock, or MariaDB's lock on a message's row."""

    def __init__(self, db):
        self.sqlite = db.dialect == "sqlite"
        if self.sqlite:
            self.conn = sqlite3.connect(db.database, isolation_level=None, check_same_thread=False)
        else:
            self.conn = pymysql.connect(**MYSQL, database=db.database, autocommit=False, connect_timeout=5)

    def hold(self, msg_id):
        if self.sqlite:
            # From another thread, as another process would: the server may be finishing a write.
            gevent.get_hub().threadpool.apply(self.conn.execute, ("BEGIN IMMEDIATE",))
        else:
            with self.conn.cursor() as cur:
                cur.execute("SELECT `id` FROM `msg_c2c` WHERE `msg_id` = %s FOR UPDATE", (msg_id,))

    def release(self):
        self.conn.commit()


def _friends_beside_an_operator(make_app, make_server, users, **settings):
    """Two connected friends, and an operator's own connection to the server's database."""
    app = make_app(**settings)
    imboy = app.extensions["imboy"]
    server = make_server(app)
    a, b = users(2)
    befriend(imboy, a, b)
    ca, cb = connect(server, a), connect(server, b)
    return imboy, a, b, ca, cb, _Operator(imboy.db)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_message_waiting_for_the_sqlite_lock_holds_up_no_one_else(make_app, make_server, users):
    """An operator's command holding SQLite's write lock delays the messages that must be
    stored, and nothing else: other connections are served, and the sender is acked once
    the lock is free and its message durable."""
    imboy, a, b, ca, cb, operator = _friends_beside_an_operator(make_app, make_server, users, DB_QUERY_TIMEOUT=10)
    operator.hold("m-wait")
    try:
        ca.send_json(_c2c("m-wait", b, {"text": "after the lock"}))
        wait_for(lambda: imboy.db.pool_in_use == 1, what="the message's transaction waiting for the lock")
        cb.send_text("ping")
        assert cb.expect(lambda f: isinstance(f, str)) == "pong2"
        assert imboy.db.pool_in_use == 1
        # No answer yet: an ack only once the message is durable.
        assert [f for _, f in collect(ca, 0.2) if isinstance(f, dict) and f.get("id") == "m-wait"] == []
    finally:
        operator.release()
        operator.conn.close()
    ack = ca.expect_type("C2C_SERVER_ACK", timeout=10)
    assert ack["id"] == "m-wait"
    assert _row(imboy, "m-wait") is not None
    assert cb.expect_type("C2C")["id"] == "m-wait"
    ca.close()
    cb.close()


def test_no_copy_is_resent_while_the_ack_is_being_stored(make_app, make_server, users):
    """The recipient acked; while its ack waits to be stored (here for an operator's command
    holding a lock it needs) the server sends no further copies.  An ack that could not be
    stored gets an error frame and the copies go on, so the message still arrives for good."""
    imboy, a, b, ca, cb, operator = _friends_beside_an_operator(
        make_app, make_server, users, DB_QUERY_TIMEOUT=3, ACK_RETRY_SCHEDULE=(0.3, 0.3, 0.3, 0.3, 0.3, 0.3))

    def deliver(msg_id):
        ca.send_json(_c2c(msg_id, b, {"text": msg_id}))
        ca.expect_type("C2C_SERVER_ACK")
        assert cb.expect_type("C2C")["id"] == msg_id
        operator.hold(msg_id)
        cb.send_json({"id": msg_id, "type": "C2C_CLIENT_ACK"})

    try:
        deliver("held-1")
        # Three copies were due in this second; the ack in progress holds them back.
        assert collect(cb, 1.0, "C2C") == []
    finally:
        operator.release()
    wait_for(lambda: "held-1" not in _pending_ids(imboy, b.id), what="the ack stored")
    assert collect(cb, 0.7, "C2C") == []

    try:
        deliver("held-2")
        # Not stored within the time the database may take: an error frame, then the copies go on.
        error = cb.expect(lambda f: isinstance(f, dict) and f.get("type") == "error", timeout=15)
        assert error["id"] == "held-2"
        assert cb.expect_type("C2C", timeout=3)["id"] == "held-2"
    finally:
        operator.release()
        operator.conn.close()
    cb.send_json({"id": "held-2", "type": "C2C_CLIENT_ACK"})
    wait_for(lambda: _pending_ids(imboy, b.id) == [], what="held-2 acked")
    ca.close()
    cb.close()


def test_no_copy_is_resent_while_the_clients_frames_wait_unread(make_app, make_server, users):
    """The server is behind on reading the recipient's frames (here its reading loop waits
    for an earlier ack to be stored, held up by an operator's lock): its ack of the next
    message sits unread, and the server sends no copies of that message meanwhile."""
    imboy, a, b, ca, cb, operator = _friends_beside_an_operator(
        make_app, make_server, users, DB_QUERY_TIMEOUT=5, ACK_RETRY_SCHEDULE=(0.3, 0.3, 0.3, 0.3, 0.3, 0.3))
    for msg_id in ("unread-0", "unread-1"):
        ca.send_json(_c2c(msg_id, b, {"text": msg_id}))
        ca.expect_type("C2C_SERVER_ACK")
        assert cb.expect_type("C2C")["id"] == msg_id
    operator.hold("unread-0")
    try:
        cb.send_json({"id": "unread-0", "type": "C2C_CLIENT_ACK"})
        # A heartbeat waits for the ack before it to be stored: the reading loop stops here.
        cb.send_text("ping")
        cb.send_json({"id": "unread-1", "type": "C2C_CLIENT_ACK"})
        # Three copies of each were due in this second.
        assert collect(cb, 1.0, "C2C") == []
    finally:
        operator.release()
        operator.conn.close()
    assert cb.expect(lambda f: isinstance(f, str), timeout=5) == "pong2"
    wait_for(lambda: _pending_ids(imboy, b.id) == [], what="both acks stored")
    assert collect(cb, 0.7, "C2C") == []
    ca.close()
    cb.close()


def test_a_retry_put_off_again_and_again_on_a_short_schedule_holds_up_no_one(make_app, make_server, users):
    """Retries shorter than the queues' slack come one interval apart, not all at once, and
    put off while the ack is being stored they wait for the queue's next turn: the server
    goes on serving everyone meanwhile."""
    imboy, a, b, ca, cb, operator = _friends_beside_an_operator(
        make_app, make_server, users, DB_QUERY_TIMEOUT=5, ACK_RETRY_SCHEDULE=(0.005,) * 1000)
    ca.send_json(_c2c("short-1", b, {"text": "quick"}))
    ca.expect_type("C2C_SERVER_ACK")
    assert cb.expect_type("C2C")["id"] == "short-1"
    # A thousand copies over five seconds: a few dozen in the first fifth of a second.
    assert 1 <= len(collect(cb, 0.2, "C2C")) <= 60
    operator.hold("short-1")
    try:
        cb.send_json({"id": "short-1", "type": "C2C_CLIENT_ACK"})
        wait_for(lambda: imboy.db.pool_in_use == 1, what="the ack waiting for the lock")
        gevent.sleep(0.1)
        ca.send_text("ping")
        assert ca.expect(lambda f: isinstance(f, str), timeout=3) == "pong2"
    finally:
        operator.release()
        operator.conn.close()
    wait_for(lambda: _pending_ids(imboy, b.id) == [], what="the ack stored")
    ca.close()
    cb.close()


def test_full_retry_schedule_then_silence(make_app, make_server, users):
    schedule = (0.3, 0.5, 0.7, 0.9)
    app = make_app(ACK_RETRY_SCHEDULE=schedule)
    imboy = app.extensions["imboy"]
    server = make_server(app)
    a, b = users(2)
    befriend(imboy, a, b)
    ca, cb = connect(server, a), connect(server, b)
    ca.send_json(_c2c("retry-1", b, {"text": "answer me"}))
    copies = [cb.expect_type("C2C")]
    times = [0.0]
    t0 = time.monotonic()
    arrivals = collect(cb, sum(schedule) + 0.9, "C2C")
    times += [t - t0 for t, _ in arrivals]
    copies += [f for _, f in arrivals]
    assert len(copies) == 1 + len(schedule), times
    assert all(f == copies[0] for f in copies), "every copy is the same frame"
    gaps = [later - earlier for earlier, later in zip(times, times[1:])]
    # Generous bounds: a copy received late makes its gap look longer and the next one shorter.
    for gap, expected in zip(gaps, schedule):
        assert expected - 0.15 <= gap <= expected + 0.5, (gaps, schedule)
    # It stays stored for the next connection.
    assert _pending_ids(imboy, b.id) == ["retry-1"]
    ca.close()
    cb.close()


def test_client_ack_on_one_device_stops_the_retries_on_all(imboy, server, users):
    a, b = users(2)
    befriend(imboy, a, b)
    ca, web, phone = connect(server, a), connect(server, b, "web"), connect(server, b, "android")
    ca.send_json(_c2c("stop-1", b, "x"))
    web.expect_type("C2C")
    phone.expect_type("C2C")
    # The first retry (after 0.4 s) reaches both devices; the web one acks.
    assert web.expect_type("C2C")["id"] == "stop-1"
    assert phone.expect_type("C2C")["id"] == "stop-1"
    web.send_json({"id": "stop-1", "type": "C2C_CLIENT_ACK"})
    # The next retry was due 0.6 s later, on both devices: it never comes.
    assert collect(phone, 1.0, "C2C") == []
    assert collect(web, 0.05, "C2C") == []
    assert _pending_ids(imboy, b.id) == []
    for x in (ca, web, phone):
        x.close()


def test_ack_removes_exactly_the_acking_recipients_entry(imboy, server, users):
    a, b, c = users(3)
    befriend(imboy, a, b, c)
    ca, cb, cc = connect(server, a), connect(server, b), connect(server, c)
    ca.send_json(_c2c("for-b", b, "b"))
    ca.send_json(_c2c("for-c", c, "c"))
    cb.expect_type("C2C")
    cc.expect_type("C2C")
    assert _pending_ids(imboy, b.id) == ["for-b"] and _pending_ids(imboy, c.id) == ["for-c"]
    cb.send_json({"id": "for-b", "type": "C2C_CLIENT_ACK"})
    # B cannot ack C's message.
    cb.send_json({"id": "for-c", "type": "C2C_CLIENT_ACK"})
    assert cb.expect_type("error")["id"] == "for-c"
    assert _pending_ids(imboy, b.id) == []
    assert _pending_ids(imboy, c.id) == ["for-c"]
    # Reconnecting shows the same: C gets it again, B gets nothing.
    cb.close()
    cc.close()
    cb, cc = connect(server, b), connect(server, c)
    assert cc.expect_type("C2C")["id"] == "for-c"
    assert collect(cb, 0.6, "C2C") == []
    for x in (ca, cb, cc):
        x.close()


def test_acks_committed_together_each_get_their_own_answer(imboy, users):
    """One batch of acks: duplicates, an ack of a message acked before, of another user's
    message and of an unknown id; only each acker's own pending messages become acked."""
    a, b, c = users(3)
    befriend(imboy, a, b, c)
    for msg_id, to in (("m-b1", b), ("m-b2", b), ("m-old", b), ("m-c1", c)):
        imboy.messages.send_c2c(a.id, to.id, msg_id, "x", 1)
    assert imboy.db.run("test.acks", messages_service._ack_c2c, [(b.id, "m-old")]) == [True]
    batch = [(b.id, "m-b1"), (b.id, "m-b1"), (b.id, "m-old"), (b.id, "m-c1"), (c.id, "unknown"),
             (a.id, "m-b2"), (b.id, "m-b2")]
    assert imboy.db.run("test.acks", messages_service._ack_c2c, batch) == [
        True, True, True, False, False, False, True]
    assert _pending_ids(imboy, b.id) == []
    assert _pending_ids(imboy, c.id) == ["m-c1"]
    assert [_row(imboy, m)["status"] for m in ("m-b1", "m-b2", "m-old", "m-c1")] == [
        messages_repo.ACKED, messages_repo.ACKED, messages_repo.ACKED, messages_repo.PENDING]
    assert imboy.db.run("test.acks", messages_service._ack_c2c, [(c.id, "m-c1"), (c.id, "m-c1")]) == [True, True]
    assert _pending_ids(imboy, c.id) == []


def test_a_burst_of_acks_answers_each_on_its_own(imboy, server, users):
    """Acks arriving in one write (so stored together): duplicates and an ack of a message
    acked before are fine, another user's message and an unknown id get an error frame, and
    only the acker's own messages leave the pending store."""
    a, b, c = users(3)
    befriend(imboy, a, b, c)
    ca, cb, cc = connect(server, a), connect(server, b), connect(server, c)
    for msg_id, to in (("m-b1", b), ("m-b2", b), ("m-old", b), ("m-c1", c)):
        ca.send_json(_c2c(msg_id, to, "x"))
    assert sorted(ids_of(take(cb, 3, "C2C"))) == ["m-b1", "m-b2", "m-old"]
    cc.expect_type("C2C")
    cb.send_json({"id": "m-old", "type": "C2C_CLIENT_ACK"})
    cb.send_text("ping")
    assert cb.expect(lambda f: f == "pong2")
    acks = ["m-b1", "m-b1", "m-old", "m-c1", "unknown", "m-b2"]
    cb.ws.sock.sendall(b"".join(client_frame(1, json.dumps({"id": m, "type": "C2C_CLIENT_ACK"}).encode())
                                for m in acks) + client_frame(1, b"ping"))
    answered = []
    while (frame := cb.expect(lambda f: f == "pong2" or isinstance(f, dict) and f.get("type") == "error")) != "pong2":
        answered.append(frame["id"])
    assert sorted(answered) == ["m-c1", "unknown"]
    assert _pending_ids(imboy, b.id) == []
    assert _pending_ids(imboy, c.id) == ["m-c1"]
    for x in (ca, cb, cc):
        x.close()


def test_offline_messages_arrive_at_connect_oldest_first_and_until_acked(imboy, server, users):
    a, b = users(2)
    befriend(imboy, a, b)
    ca = connect(server, a)
    sent = ["off-1", "off-2", "off-3"]
    for n, msg_id in enumerate(sent):
        ca.send_json(_c2c(msg_id, b, {"n": n}))
        assert ca.expect_type("C2C_SERVER_ACK")["id"] == msg_id
    cb = connect(server, b)
    # The first three frames are the three messages: all came before the first
    # retry was due (0.4 s), with no fixed delay per message.
    first = take(cb, 3, "C2C")
    assert ids_of(first) == sent
    assert [f["payload"] for f in first] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert all(f["from"] == a.hashid and f["to"] == b.hashid for f in first)
    cb.send_json({"id": "off-2", "type": "C2C_CLIENT_ACK"})
    cb.close()
    # Unacked ones come back on the next connection; the acked one never does.
    cb = connect(server, b)
    assert ids_of(take(cb, 2, "C2C")) == ["off-1", "off-3"]
    for msg_id in ("off-1", "off-3"):
        cb.send_json({"id": msg_id, "type": "C2C_CLIENT_ACK"})
    cb.close()
    cb = connect(server, b)
    assert collect(cb, 0.6, "C2C") == []
    ca.close()
    cb.close()


def test_pending_limit_keeps_the_newest(make_app, make_server, users):
    app = make_app(PENDING_LIMIT=3)
    imboy = app.extensions["imboy"]
    server = make_server(app)
    a, b = users(2)
    befriend(imboy, a, b)
    ca = connect(server, a)
    for n in range(5):
        ca.send_json(_c2c(f"lim-{n}", b, {"n": n}))
        ca.expect_type("C2C_SERVER_ACK")
    cb = connect(server, b)
    assert ids_of(take(cb, 3, "C2C")) == ["lim-2", "lim-3", "lim-4"]
    assert {f["id"] for _, f in collect(cb, 0.45, "C2C")} <= {"lim-2", "lim-3", "lim-4"}
    ca.close()
    cb.close()


def test_revoke_with_the_recipient_online(imboy, server, users):
    a, b = users(2)
    befriend(imboy, a, b)
    ca, cb = connect(server, a), connect(server, b)
    ca.send_json(_c2c("rv-1", b, "oops"))
    ca.expect_type("C2C_SERVER_ACK")
    cb.expect_type("C2C")
    ca.send_json({"id": "rv-1", "type": "C2C_REVOKE", "to": b.hashid})
    revoke = cb.expect_type("C2C_REVOKE")
    assert (revoke["id"], revoke["from"], revoke["to"]) == ("rv-1", a.hashid, b.hashid)
    assert isinstance(revoke["server_ts"], int)
    # Nothing for A until B confirms.
    assert collect(ca, 0.2, "C2C_REVOKE_ACK") == []
    cb.send_json({"id": "rv-1", "type": "C2C_REVOKE_ACK", "to": a.hashid})
    done = ca.expect_type("C2C_REVOKE_ACK")
    assert (done["id"], done["from"], done["to"]) == ("rv-1", b.hashid, a.hashid)
    # The revoked message is not re-pushed to B.
    assert collect(cb, 0.6, "C2C") == []
    ca.close()
    cb.close()


def test_revoke_with_the_recipient_offline(imboy, server, users):
    a, b = users(2)
    befriend(imboy, a, b)
    ca = connect(server, a)
    ca.send_json(_c2c("rv-off", b, {"text": "secret"}, created_at=123))
    ack = ca.expect_type("C2C_SERVER_ACK")
    ca.send_json({"id": "rv-off", "type": "C2C_REVOKE", "to": b.hashid})
    done = ca.expect_type("C2C_REVOKE_ACK")
    assert (done["id"], done["from"], done["to"]) == ("rv-off", b.hashid, a.hashid)
    cb = connect(server, b)
    msg = cb.expect_type("C2C")
    assert msg["id"] == "rv-off" and msg["payload"] == REVOKED
    assert (msg["from"], msg["to"], msg["created_at"], msg["server_ts"]) == (a.hashid, b.hashid, 123,
                                                                             ack["server_ts"])
    ca.close()
    cb.close()


def test_only_the_sender_may_revoke(imboy, server, users):
    a, b, c = users(3)
    befriend(imboy, a, b, c)
    ca, cc = connect(server, a), connect(server, c)
    ca.send_json(_c2c("mine", b, "keep"))
    ca.expect_type("C2C_SERVER_ACK")
    cb = connect(server, b)
    cb.expect_type("C2C")
    # The recipient, or a third user, cannot revoke A's message; nor can anyone revoke an unknown id.
    attempts = [(cb, {"id": "mine", "type": "C2C_REVOKE", "to": a.hashid}),
                (cc, {"id": "mine", "type": "C2C_REVOKE", "to": b.hashid}),
                (ca, {"id": "mine", "type": "C2C_REVOKE", "to": c.hashid}),   # wrong peer
                (ca, {"id": "no-such-msg", "type": "C2C_REVOKE", "to": b.hashid}),
                # A revoke ack must come from the recipient, for the real sender.
                (cc, {"id": "mine", "type": "C2C_REVOKE_ACK", "to": a.hashid}),
                (cb, {"id": "mine", "type": "C2C_REVOKE_ACK", "to": c.hashid})]
    for client, frame in attempts:
        client.send_json(frame)
        err = client.expect_type("error")
        assert err["id"] == frame["id"] and err["code"] == 1, frame
    assert _row(imboy, "mine")["payload"] == '"keep"'
    assert collect(cb, 0.1, "C2C_REVOKE") == []
    assert collect(ca, 0.1, "C2C_REVOKE_ACK") == []
    cb.close()
    cb = connect(server, b)
    assert cb.expect_type("C2C")["payload"] == "keep"
    for x in (ca, cb, cc):
        x.close()


def test_message_stored_while_the_recipient_connects_arrives_once(make_app, make_server, users, monkeypatch):
    """Sent live while the new connection loads its pending store: one copy, not two."""
    app = make_app(ACK_RETRY_SCHEDULE=(3.0,))
    imboy = app.extensions["imboy"]
    server = make_server(app)
    a, b = users(2)
    befriend(imboy, a, b)
    release, loaded = gevent.event.Event(), gevent.event.Event()
    original = imboy.sessions.arrive

    def slow_pending(uid, first):
        release.wait(5)
        try:
            return original(uid, first)
        finally:
            loaded.set()

    monkeypatch.setattr(imboy.sessions, "arrive", slow_pending)
    ca, cb = connect(server, a), connect(server, b)
    ca.send_json(_c2c("race-1", b, "once"))
    ca.expect_type("C2C_SERVER_ACK")
    assert cb.expect_type("C2C")["id"] == "race-1"  # live
    release.set()                                   # now the flush finds it pending too
    assert loaded.wait(5)
    assert collect(cb, 0.5, "C2C") == []
    ca.close()
    cb.close()
