"""Group messages (PROTOCOL section 4, Delivery/C2G), end to end on real sockets."""
from __future__ import annotations

import pytest

from imboy import clock
from imboy.clock import now_ms
from imboy.repositories import groups as groups_repo
from imboy.repositories import messages as messages_repo
from imboy import ids

from .ws_support import befriend, collect, connect, fast_passwords, make_group  # noqa: F401


def _c2g(msg_id, gid, payload, kind="C2G", **extra):
    return {"id": msg_id, "type": kind, "to": gid, "payload": payload, **extra}


def test_fan_out_acks_retries_and_offline_members(imboy, server, users):
    owner, b, c, d = users(4)
    gid = make_group(imboy, owner, b, c, d)
    co, cb, cc = connect(server, owner), connect(server, b), connect(server, c)
    payload = {"msg_type": "text", "text": "hello group"}
    co.send_json(_c2g("g-1", gid, payload, created_at=1650000000000))
    ack = co.expect_type("C2G_SERVER_ACK")
    assert ack["id"] == "g-1" and isinstance(ack["server_ts"], int)
    expected = {"id": "g-1", "type": "C2G", "from": owner.hashid, "to": gid, "payload": payload,
                "created_at": 1650000000000, "server_ts": ack["server_ts"]}
    assert cb.expect_type("C2G") == expected
    assert cc.expect_type("C2G") == expected
    # B acks: no more copies for B; C does not: C gets the retry (0.4 s later).
    cb.send_json({"id": "g-1", "type": "C2G_CLIENT_ACK", "to": gid})
    assert cc.expect_type("C2G")["id"] == "g-1"
    assert collect(cb, 0.15, "C2G") == []  # B's copy would have been due with C's
    # The sender never gets its own message.
    assert collect(co, 0.1, "C2G") == []
    # D was offline: it gets the message when it connects.
    cd = connect(server, d)
    assert cd.expect_type("C2G") == expected
    cd.send_json({"id": "g-1", "type": "C2G_CLIENT_ACK", "to": gid})
    cd.close()
    # Reconnecting after the ack brings nothing; C, who never acked, gets it again.
    cb.close()
    cc.close()
    cb, cc, cd = connect(server, b), connect(server, c), connect(server, d)
    assert cc.expect_type("C2G")["id"] == "g-1"
    assert collect(cb, 0.5, "C2G") == [] and collect(cd, 0.05, "C2G") == []
    for x in (co, cb, cc, cd):
        x.close()


def test_group_alias_case_insensitive_types_and_idempotent_resend(imboy, server, users):
    owner, b = users(2)
    gid = make_group(imboy, owner, b)
    co, cb = connect(server, owner), connect(server, b)
    co.send_json(_c2g("g-alias", gid, "via GROUP", kind="GROUP"))
    first = co.expect_type("C2G_SERVER_ACK")
    msg = cb.expect_type("C2G")
    assert msg["type"] == "C2G" and msg["payload"] == "via GROUP"
    co.send_json(_c2g("g-lower", gid, "via c2g", kind="c2g"))
    co.expect_type("C2G_SERVER_ACK")
    assert cb.expect_type("C2G")["id"] == "g-lower"
    for msg_id in ("g-alias", "g-lower"):
        cb.send_json({"id": msg_id, "type": "c2g_client_ack", "to": gid})
    # Resending the same id: same server_ts, no second copy.
    co.send_json(_c2g("g-alias", gid, "via GROUP", kind="Group"))
    assert co.expect_type("C2G_SERVER_ACK") == first
    assert collect(cb, 0.6, "C2G") == []
    co.close()
    cb.close()


def test_non_members_are_refused(imboy, server, users):
    owner, b, outsider, leaver = users(4)
    gid = make_group(imboy, owner, b, leaver)
    imboy.db.run("test.leave", groups_repo.end_membership, ids.decode(gid), leaver.id, groups_repo.LEFT,
                leaver.id, now_ms())
    cx, cl, cb = connect(server, outsider), connect(server, leaver), connect(server, b)
    for client, frame in ((cx, _c2g("nm-1", gid, "let me in")),
                          (cl, _c2g("nm-2", gid, "I left")),
                          (cx, _c2g("nm-3", "zzzzzz", "no such group")),
                          (cx, _c2g("nm-4", ids.encode(987654), "unknown group"))):
        client.send_json(frame)
        err = client.expect_type("error")
        assert err["id"] == frame["id"] and err["code"] in (1, 2) and err["msg"], frame
    assert collect(cb, 0.2, "C2G") == []
    # A member who left receives nothing sent after leaving.
    co = connect(server, owner)
    co.send_json(_c2g("after-leave", gid, "members only"))
    co.expect_type("C2G_SERVER_ACK")
    assert cb.expect_type("C2G")["id"] == "after-leave"
    assert collect(cl, 0.2, "C2G") == []
    for x in (cx, cl, cb, co):
        x.close()


def test_a_group_message_id_is_stored_once_whoever_sends_it_again(imboy, server, users):
    owner, b, leaver = users(3)
    gid = make_group(imboy, owner, b, leaver)
    other_gid = make_group(imboy, owner, b, name="other")
    cl, cb, co = connect(server, leaver), connect(server, b), connect(server, owner)
    cl.send_json(_c2g("once-1", gid, "before I go"))
    first = cl.expect_type("C2G_SERVER_ACK")
    assert cb.expect_type("C2G")["id"] == "once-1"
    assert co.expect_type("C2G")["id"] == "once-1"
    for client in (cb, co):
        client.send_json({"id": "once-1", "type": "C2G_CLIENT_ACK", "to": gid})
    imboy.db.run("test.leave", groups_repo.end_membership, ids.decode(gid), leaver.id, groups_repo.LEFT,
                leaver.id, now_ms())
    # The sender's resend after leaving (its first ack was lost, say) is answered as
    # the first time, and reaches no one again.
    cl.send_json(_c2g("once-1", gid, "before I go"))
    assert cl.expect_type("C2G_SERVER_ACK") == first
    # A new message from someone who left is refused.
    cl.send_json(_c2g("once-2", gid, "still here?"))
    err = cl.expect_type("error")
    assert err["id"] == "once-2" and err["code"] == 2, err
    # The same id from another member, or to another group: refused, nothing stored.
    cb.send_json(_c2g("once-1", gid, "mine now"))
    co.send_json(_c2g("once-1", other_gid, "elsewhere"))
    for client in (cb, co):
        err = client.expect_type("error")
        assert err["id"] == "once-1" and err["code"] == 1 and "already used" in err["msg"], err
    assert collect(cb, 0.3, "C2G") == [] and collect(co, 0.05, "C2G") == []
    rows = imboy.db.read("test.rows", "SELECT `from_id`, `to_groupid`, `payload`, `server_ts` FROM `msg_c2g`"
                         " WHERE `msg_id` = %s", ("once-1",))
    assert rows == [{"from_id": leaver.id, "to_groupid": ids.decode(gid), "payload": '"before I go"',
                     "server_ts": first["server_ts"]}]
    assert imboy.db.read("test.rows", "SELECT `id` FROM `msg_c2g` WHERE `msg_id` = %s", ("once-2",)) == []
    for x in (cl, cb, co):
        x.close()


@pytest.mark.parametrize("returning", [True, False], ids=["returning", "read-back"])
def test_group_message_rows_with_and_without_insert_returning(imboy, users, returning):
    """Both ways of learning the members who got a pending entry (MySQL has no
    `INSERT ... RETURNING`) give the same members, and write nothing for a non-member."""
    owner, b, c, leaver, outsider = users(5)
    gid = ids.decode(make_group(imboy, owner, b, c, leaver))
    imboy.db.run("test.leave", groups_repo.end_membership, gid, leaver.id, groups_repo.LEFT, leaver.id, now_ms())

    def store(tx, msg_id, sender):
        tx.returning = returning
        return messages_repo.insert_c2g_to_members(tx, msg_id, sender, gid, '"x"', 1, 2)

    assert sorted(imboy.db.run("test.store", store, "rt-1", owner.id)) == sorted([b.id, c.id])
    assert sorted(imboy.db.run("test.store", store, "rt-2", b.id)) == sorted([owner.id, c.id])
    # Again with a stored id, or from someone who is not (or no longer) a member: nothing.
    assert imboy.db.run("test.store", store, "rt-1", owner.id) is None
    assert imboy.db.run("test.store", store, "rt-3", outsider.id) is None
    assert imboy.db.run("test.store", store, "rt-4", leaver.id) is None
    timeline = imboy.db.read("test.rows", "SELECT `msg_id`, `to_id` FROM `msg_c2g_timeline`"
                             " WHERE `to_groupid` = %s", (gid,))
    assert sorted((r["msg_id"], r["to_id"]) for r in timeline) == sorted(
        [("rt-1", b.id), ("rt-1", c.id), ("rt-2", owner.id), ("rt-2", c.id)])
    assert [r["msg_id"] for r in imboy.db.read("test.rows", "SELECT `msg_id` FROM `msg_c2g` WHERE"
                                                " `to_groupid` = %s ORDER BY `id`", (gid,))] == ["rt-1", "rt-2"]


def test_group_pending_store_keeps_the_newest_up_to_the_limit(make_app, make_server, users):
    app = make_app(PENDING_LIMIT=3)
    imboy = app.extensions["imboy"]
    server = make_server(app)
    owner, member = users(2)
    gid = make_group(imboy, owner, member)
    co = connect(server, owner)
    for n in range(6):
        co.send_json(_c2g(f"gl-{n}", gid, f"message {n}"))
        co.expect_type("C2G_SERVER_ACK")
    cm = connect(server, member)
    got = [cm.expect_type("C2G")["id"] for _ in range(3)]
    assert got == ["gl-3", "gl-4", "gl-5"]
    assert collect(cm, 0.2, "C2G") == []
    left = imboy.db.read("test.timeline", "SELECT msg_id FROM msg_c2g_timeline WHERE to_id = %s ORDER BY id",
                         (member.id,))
    assert [r["msg_id"] for r in left] == ["gl-3", "gl-4", "gl-5"]
    co.close()
    cm.close()


def test_messages_stored_in_one_millisecond_come_back_in_the_order_stored(imboy, users, monkeypatch):
    """One-to-one and group messages are merged by server_ts for the pending store: stores of
    one process in the same millisecond (or a clock stepped back) do not tie."""
    sender, member = users(2)
    befriend(imboy, sender, member)
    gid = ids.decode(make_group(imboy, sender, member))
    monkeypatch.setattr(clock, "now_ms", lambda: 1_500_000_000_000)
    for n in range(3):
        imboy.messages.send_c2c(sender.id, member.id, f"ms-c{n}", '"x"', 1)
        imboy.messages.send_c2g(sender.id, gid, f"ms-g{n}", '"x"', 1)
    rows = imboy.db.run("test.pending", imboy.messages.load_pending_many, [member.id])[member.id]
    assert [row["msg_id"] for _, row in rows] == ["ms-c0", "ms-g0", "ms-c1", "ms-g1", "ms-c2", "ms-g2"]
    stamps = [row["server_ts"] for _, row in rows]
    assert stamps == sorted(set(stamps))


def test_a_batch_of_group_acks_removes_exactly_the_entries_acked(imboy, users):
    """Acks of several members for several messages go in one statement; other pending
    entries stay, and acks of entries already gone or never there remove nothing."""
    owner, b, c, d, outsider = users(5)
    gid = ids.decode(make_group(imboy, owner, b, c, d))
    for n in range(4):
        imboy.messages.send_c2g(owner.id, gid, f"ab-{n}", '"x"', 1)

    def pending():
        rows = imboy.db.read("test.rows", "SELECT `msg_id`, `to_id` FROM `msg_c2g_timeline`"
                             " WHERE `to_groupid` = %s", (gid,))
        return sorted((r["msg_id"], r["to_id"]) for r in rows)

    everyone = sorted((f"ab-{n}", uid) for n in range(4) for uid in (b.id, c.id, d.id))
    assert pending() == everyone
    ack = lambda acks: imboy.db.run("test.ack", messages_repo.ack_c2g_many, acks)  # noqa: E731
    # Two messages, three members.
    assert ack([(b.id, "ab-0"), (c.id, "ab-0"), (d.id, "ab-1")]) == 3
    # One member, three messages: one of them acked before, one id unknown, and an
    # outsider's ack of a real message.
    assert ack([(b.id, "ab-0"), (b.id, "ab-2"), (b.id, "ab-3"), (b.id, "nope"), (outsider.id, "ab-2")]) == 2
    assert ack([]) == 0
    gone = {("ab-0", b.id), ("ab-0", c.id), ("ab-1", d.id), ("ab-2", b.id), ("ab-3", b.id)}
    assert pending() == sorted(set(everyone) - gone)


def test_a_batch_of_group_acks_over_several_statements(imboy, users, monkeypatch):
    """More acks than one statement takes (SQLite: at most 999 parameters before 3.32,
    and an expression at most 1,000 deep): every ack is removed, and nothing else;
    and a thousand acks in one batch."""
    monkeypatch.setattr(messages_repo, "ACKS_PER_STATEMENT", 5)
    owner, *members = users(5)
    gid = ids.decode(make_group(imboy, owner, *members))
    for n in range(8):
        imboy.messages.send_c2g(owner.id, gid, f"ak-{n}", '"x"', 1)
    # Six messages by four members, in five statements (lists by message or by member).
    acks = [(m.id, f"ak-{n}") for n in range(6) for m in members]
    assert imboy.db.run("test.ack", messages_repo.ack_c2g_many, acks) == 24
    # Three members' acks of one message.
    assert imboy.db.run("test.ack", messages_repo.ack_c2g_many, [(m.id, "ak-6") for m in members[:3]]) == 3

    def left():
        rows = imboy.db.read("test.rows", "SELECT `msg_id`, `to_id` FROM `msg_c2g_timeline`"
                             " WHERE `to_groupid` = %s", (gid,))
        return sorted((r["msg_id"], r["to_id"]) for r in rows)

    assert left() == sorted([("ak-6", members[3].id)] + [("ak-7", m.id) for m in members])
    monkeypatch.undo()
    # A thousand at once, as a batch of the commit lane can be.
    for n in range(8, 258):
        imboy.messages.send_c2g(owner.id, gid, f"ak-{n}", '"x"', 1)
    acks = [(m.id, f"ak-{n}") for n in range(8, 258) for m in members]
    assert imboy.db.run("test.ack", messages_repo.ack_c2g_many, acks) == 1000
    assert left() == sorted([("ak-6", members[3].id)] + [("ak-7", m.id) for m in members])


def test_a_member_acking_hundreds_at_once_gets_back_only_what_it_did_not_ack(imboy, server, users):
    """A member back from offline acks its whole backlog in one go: reconnecting brings
    back exactly the few it left unacked, and another member's entries are untouched."""
    owner, b, c = users(3)
    gid = make_group(imboy, owner, b, c)
    group = ids.decode(gid)
    sent = [f"bulk-{n}" for n in range(700)]
    for msg_id in sent:
        imboy.messages.send_c2g(owner.id, group, msg_id, '"x"', 1)
    kept = {msg_id for n, msg_id in enumerate(sent) if n % 100 == 7}

    def backlog(client, count):
        got: set[str] = set()
        while len(got) < count:  # copies retried meanwhile come again: ids, not frames
            got.add(client.expect_type("C2G", 10)["id"])
        return got

    cb = connect(server, b)
    assert backlog(cb, 700) == set(sent)
    for msg_id in sent:
        if msg_id not in kept:
            cb.send_json({"id": msg_id, "type": "C2G_CLIENT_ACK", "to": gid})
    cb.send_text("ping")  # frames are handled in order: once pong2 is back, the acks are stored
    cb.expect(lambda f: f == "pong2", 10)
    cb.close()
    cb = connect(server, b)
    assert backlog(cb, len(kept)) == kept
    assert {frame["id"] for _, frame in collect(cb, 0.3, "C2G")} <= kept
    cc = connect(server, c)
    assert backlog(cc, 700) == set(sent)
    cb.close()
    cc.close()
