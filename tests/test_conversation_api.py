"""/conversation/online, /conversation/mine, /conversation/msgbox and /auth/assets."""
from __future__ import annotations

import hashlib

import gevent

from imboy.clock import now_ms

from .social_support import call, close_all, connect, fast_passwords, ok, refused  # noqa: F401


def test_online_count_and_list_for_admins_only(client, server, imboy, users):
    admin, a, hidden = users(3)
    imboy.config["ADMIN_UIDS"] = (admin.hashid,)
    body = call(client, None, "/conversation/online", "GET")
    assert body == {"code": 0, "msg": "0", "payload": []}

    ok(client, hidden, "/user/change_state", state="hide")
    clients = [connect(server, u) for u in (a, hidden)]
    body = call(client, None, "/conversation/online", "GET")
    assert body["code"] == 0 and body["msg"] == "2" and body["payload"] == []

    refused(client, None, "/conversation/online", 1, "GET", type="list")   # no token
    refused(client, a, "/conversation/online", 1, "GET", type="list")      # not an admin
    resp = client.get("/conversation/online?type=list", headers={"authorization": "forged"})
    assert resp.get_json()["code"] == 706
    body = call(client, admin, "/conversation/online", "GET", type="list")
    assert body["code"] == 0 and body["msg"] == "2"
    assert sorted(body["payload"]) == sorted([a.hashid, hidden.hashid])

    clients.append(connect(server, admin))
    assert call(client, None, "/conversation/online", "GET")["msg"] == "3"
    close_all(*clients)


def _send_c2c(ws, to, msg_id: str, payload) -> int:
    ws.send_json({"id": msg_id, "type": "C2C", "to": to.hashid, "payload": payload, "created_at": 1234})
    server_ts = ws.expect(lambda f: isinstance(f, dict) and f.get("type") == "C2C_SERVER_ACK"
                          and f.get("id") == msg_id)["server_ts"]
    while now_ms() <= server_ts:  # the next message gets a later server_ts
        gevent.sleep(0.001)
    return server_ts


def test_mine_lists_unacknowledged_messages_as_frames(client, server, imboy, users):
    a, b, c = users(3)
    imboy.friends.do_make_friends(a.id, b.id)
    wa = connect(server, a)
    first = _send_c2c(wa, b, "mine-1", {"text": "one"})
    second = _send_c2c(wa, b, "mine-2", "two as a string")

    frames = ok(client, b, "/conversation/mine", "GET")
    assert frames == [
        {"id": "mine-1", "type": "C2C", "from": a.hashid, "to": b.hashid, "payload": {"text": "one"},
         "created_at": 1234, "server_ts": first},
        {"id": "mine-2", "type": "C2C", "from": a.hashid, "to": b.hashid, "payload": "two as a string",
         "created_at": 1234, "server_ts": second},
    ]
    assert [f["id"] for f in ok(client, b, "/conversation/mine", "GET", last_server_ts=first)] == ["mine-2"]
    assert ok(client, b, "/conversation/mine", "GET", last_server_ts=second) == []
    assert ok(client, a, "/conversation/mine", "GET") == []
    assert ok(client, c, "/conversation/mine", "GET") == []

    wb = connect(server, b)
    wb.expect(lambda f: isinstance(f, dict) and f.get("id") == "mine-1")
    wb.send_json({"id": "mine-1", "type": "C2C_CLIENT_ACK"})
    wb.send_text("ping")  # frames are handled in order: once pong2 is back, the ack is stored
    wb.expect(lambda f: f == "pong2")
    assert [f["id"] for f in ok(client, b, "/conversation/mine", "GET")] == ["mine-2"]

    refused(client, b, "/conversation/mine", 1, "GET", last_server_ts="yesterday")
    refused(client, b, "/conversation/mine", 1, "GET", last_server_ts=-5)
    close_all(wa, wb)


def test_msgbox_pages(client, users):
    target, *askers = users(4)
    for asker in askers:
        ok(client, asker, "/friend/apply", uid=target.hashid, msg=f"from {asker.email}")
    box = ok(client, target, "/conversation/msgbox", "GET")["apply"]
    assert {w["from"]["id"]: w["msg"] for w in box} == {u.hashid: f"from {u.email}" for u in askers}
    pages = [ok(client, target, "/conversation/msgbox", "GET", size=2, page=n)["apply"] for n in (1, 2, 3)]
    assert [len(p) for p in pages] == [2, 1, 0]
    assert [w["from"]["id"] for p in pages for w in p] == [w["from"]["id"] for w in box]
    refused(client, target, "/conversation/msgbox", 1, "GET", page=0)


def _sign(key: str, v: str) -> str:
    return hashlib.md5((key + v).encode()).hexdigest()[8:24]


def test_auth_assets(make_app):
    app = make_app(ASSET_AUTH_KEYS={"avatar": "k-avatar", "chat": "k-chat"})
    client = app.test_client()
    v = "1700000000/img/a.png"

    def answer(**data) -> str:
        resp = client.post("/auth/assets", data=data)
        assert resp.status_code == 200 and resp.content_type.startswith("text/plain")
        return resp.get_data(as_text=True)

    assert answer(a=_sign("k-avatar", v), s="avatar", v=v) == "ok"
    assert answer(a=_sign("k-chat", v), s="chat", v=v) == "ok"
    assert answer(a=_sign("k-chat", v), s="avatar", v=v) == "fail"      # another scene's key
    assert answer(a=_sign("k-avatar", v), s="avatar", v=v + "x") == "fail"
    assert answer(a=_sign("k-avatar", v), s="unknown", v=v) == "fail"
    assert answer(a="", s="avatar", v=v) == "fail"
    assert answer(s="avatar", v=v) == "fail"
    assert answer() == "fail"
    assert answer(a="\x00", s="avatar", v=v) == "fail"
    resp = client.get("/auth/assets", query_string={"a": _sign("k-avatar", v), "s": "avatar", "v": v})
    assert resp.get_data(as_text=True) == "ok"
    resp = client.post("/auth/assets", data="{not json", content_type="application/json")
    assert resp.get_data(as_text=True) == "fail"
