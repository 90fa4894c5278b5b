"""Friends over HTTP: requests, confirmation, lists, categories, remarks, search,
and the request -> confirm -> chat -> delete cycle seen through WebSockets."""
from __future__ import annotations

import pytest

from imboy import ids

from .social_support import (call, close_all, connect, expect_event, fast_passwords, no_event, ok,  # noqa: F401
                             refused)

DEFAULT = ids.encode(0)  # "2ja1kp"
NOBODY = ids.encode(987654)  # a well-formed id that is nobody


def friend_ids(client, user) -> list[str]:
    return [f["id"] for f in ok(client, user, "/friend/list", "GET")["friend"]]


def msgbox(client, user) -> list[dict]:
    return ok(client, user, "/conversation/msgbox", "GET")["apply"]


# the whole cycle, as two connected users see it ----------------------------------------
def test_request_confirm_chat_delete_cycle(client, server, users):
    a, b = users(2)
    ca, cb = connect(server, a), connect(server, b)

    assert ok(client, a, "/friend/apply", uid=b.hashid, msg="hi, it's a") == []
    event = expect_event(cb, "apply_friend")
    assert event["from"] == a.hashid and event["to"] == b.hashid
    assert event["payload"]["content"] == "hi, it's a"
    assert event["payload"]["user"]["id"] == a.hashid
    [waiting] = msgbox(client, b)
    assert waiting["from"]["id"] == a.hashid and waiting["msg"] == "hi, it's a"
    assert isinstance(waiting["created_at"], int)
    assert msgbox(client, a) == []

    # Not friends yet: a C2C message is refused.
    ca.send_json({"id": "early", "type": "C2C", "to": b.hashid, "payload": {"text": "too soon"}})
    assert ca.expect_type("error")["id"] == "early"

    assert ok(client, b, "/friend/confirm", uid=a.hashid) == []
    to_a = expect_event(ca, "apply_friend_confirm")
    to_b = expect_event(cb, "apply_friend_confirm")
    assert to_a["from"] == b.hashid and to_a["payload"]["user"]["id"] == b.hashid
    assert to_b["from"] == a.hashid and to_b["payload"]["user"]["id"] == a.hashid
    assert msgbox(client, b) == []
    assert friend_ids(client, a) == [b.hashid] and friend_ids(client, b) == [a.hashid]

    ca.send_json({"id": "m-1", "type": "C2C", "to": b.hashid, "payload": {"text": "hello"}})
    ca.expect_type("C2C_SERVER_ACK")
    assert cb.expect_type("C2C")["payload"] == {"text": "hello"}
    cb.send_json({"id": "m-1", "type": "C2C_CLIENT_ACK"})

    assert ok(client, a, "/friend/delete", uid=b.hashid) == []
    event = expect_event(cb, "friend_delete")
    assert event["from"] == a.hashid and event["to"] == b.hashid
    no_event(ca, "friend_delete")
    assert friend_ids(client, a) == [] and friend_ids(client, b) == []

    # Both directions are ended: neither may write to the other any more.
    ca.send_json({"id": "m-2", "type": "C2C", "to": b.hashid, "payload": {"text": "still there?"}})
    err = ca.expect_type("error")
    assert err["id"] == "m-2" and err["code"] in (1, 2)
    cb.send_json({"id": "m-3", "type": "C2C", "to": a.hashid, "payload": {"text": "no"}})
    assert cb.expect_type("error")["id"] == "m-3"
    refused(client, a, "/friend/delete", 2, uid=b.hashid)

    # They may become friends again.
    ok(client, b, "/friend/apply", uid=a.hashid)
    ok(client, a, "/friend/confirm", uid=b.hashid)
    assert friend_ids(client, a) == [b.hashid]
    close_all(ca, cb)


def test_asking_back_confirms(client, server, users):
    a, b = users(2)
    ca, cb = connect(server, a), connect(server, b)
    ok(client, a, "/friend/apply", uid=b.hashid)
    body = call(client, b, "/friend/apply", uid=a.hashid, msg="me too")
    assert body["code"] == 0 and body["msg"] == "You are now friends"
    expect_event(ca, "apply_friend_confirm")
    expect_event(cb, "apply_friend_confirm")
    assert friend_ids(client, a) == [b.hashid] and friend_ids(client, b) == [a.hashid]
    assert msgbox(client, a) == [] and msgbox(client, b) == []
    close_all(ca, cb)


def test_request_to_offline_user_waits_in_msgbox(client, users):
    a, b, c = users(3)
    ok(client, a, "/friend/apply", uid=b.hashid, msg="first")
    ok(client, c, "/friend/apply", uid=b.hashid, json={"uid": b.hashid})
    box = msgbox(client, b)
    assert {w["from"]["id"] for w in box} == {a.hashid, c.hashid}
    assert {w["msg"] for w in box} == {"first", ""}
    assert set(box[0]["from"]) >= {"id", "account", "nickname", "avatar", "sign"}
    page = ok(client, b, "/conversation/msgbox", "GET", size=1, page=2)["apply"]
    assert len(page) == 1 and page[0]["from"]["id"] == box[1]["from"]["id"]


# refusals ---------------------------------------------------------------------------------
def test_apply_refusals(client, users):
    a, b, c = users(3)
    refused(client, a, "/friend/apply", 2, uid=a.hashid)                 # oneself
    refused(client, a, "/friend/apply", 1)                               # missing uid
    refused(client, a, "/friend/apply", 1, uid="not-an-id")              # undecodable
    refused(client, a, "/friend/apply", 1, uid=NOBODY)                   # nobody
    refused(client, a, "/friend/apply", 1, uid=b.hashid, msg="x" * 256)  # over varchar(255)
    assert msgbox(client, b) == []                                       # nothing half-written

    ok(client, a, "/friend/apply", uid=b.hashid, msg="x" * 255)
    refused(client, a, "/friend/apply", 2, uid=b.hashid)                 # duplicate request
    assert len(msgbox(client, b)) == 1

    ok(client, b, "/friend/confirm", uid=a.hashid)
    refused(client, a, "/friend/apply", 2, uid=b.hashid)                 # already friends
    refused(client, b, "/friend/apply", 2, uid=a.hashid)


def test_confirm_refusals(client, users):
    a, b, c = users(3)
    refused(client, b, "/friend/confirm", 2, uid=a.hashid)               # no request at all
    ok(client, a, "/friend/apply", uid=b.hashid)
    refused(client, c, "/friend/confirm", 2, uid=a.hashid)               # not sent to c
    refused(client, a, "/friend/confirm", 2, uid=b.hashid)               # the asker cannot confirm
    refused(client, b, "/friend/confirm", 2, uid=b.hashid)               # oneself
    refused(client, b, "/friend/confirm", 1, uid="???")
    refused(client, b, "/friend/confirm", 1)
    assert friend_ids(client, a) == [] and friend_ids(client, c) == []
    assert len(msgbox(client, b)) == 1
    ok(client, b, "/friend/confirm", uid=a.hashid)
    refused(client, b, "/friend/confirm", 2, uid=a.hashid)               # already answered


def test_delete_refusals(client, users):
    a, b = users(2)
    refused(client, a, "/friend/delete", 2, uid=b.hashid)
    refused(client, a, "/friend/delete", 2, uid=a.hashid)
    refused(client, a, "/friend/delete", 1, uid="zz")
    refused(client, a, "/friend/delete", 1)


# lists ------------------------------------------------------------------------------------
def test_friend_list_shows_presence_and_respects_hide(client, server, imboy, users):
    a, b, c = users(3)
    imboy.friends.do_make_friends(a.id, b.id)
    imboy.friends.do_make_friends(a.id, c.id)
    ok(client, a, "/friend/change_remark", uid=c.hashid, remark="Cee")
    cb = connect(server, b)

    payload = ok(client, a, "/friend/list", "GET")
    assert payload["mine"]["id"] == a.hashid and payload["mine"]["status"] == "online"
    by_id = {f["id"]: f for f in payload["friend"]}
    assert set(by_id) == {b.hashid, c.hashid}
    assert by_id[b.hashid]["status"] == "online" and "remark" not in by_id[b.hashid]
    assert by_id[c.hashid]["status"] == "offline" and by_id[c.hashid]["remark"] == "Cee"
    assert set(by_id[b.hashid]) >= {"id", "account", "nickname", "avatar", "sign", "status"}
    assert by_id[b.hashid]["avatar"]  # the default avatar when none is set

    ok(client, b, "/user/change_state", state="hide")
    by_id = {f["id"]: f for f in ok(client, a, "/friend/list", "GET")["friend"]}
    assert by_id[b.hashid]["status"] == "offline"
    assert ok(client, b, "/friend/list", "GET")["mine"]["status"] == "hide"
    ok(client, b, "/user/change_state", state="online")
    by_id = {f["id"]: f for f in ok(client, a, "/friend/list", "GET")["friend"]}
    assert by_id[b.hashid]["status"] == "online"
    cb.close()


def test_myfriend_categories_groups_and_remarks(client, imboy, users):
    a, b, c = users(3)
    imboy.friends.do_make_friends(a.id, b.id)
    imboy.friends.do_make_friends(a.id, c.id)
    group = imboy.groups.do_create_group(a.id, "climbers", [b.id])
    work = ok(client, a, "/friend/category/add", name="Work")
    assert set(work) == {"id", "name"} and work["name"] == "Work" and ids.decode(work["id"]) > 0
    empty = ok(client, a, "/friend/category/add", name="Empty")
    ok(client, a, "/friend/move", uid=b.hashid, category_id=work["id"])
    assert ok(client, a, "/friend/change_remark", uid=b.hashid, remark=" Bee ") == "Bee"

    payload = ok(client, a, "/friend/myfriend", "GET")
    assert payload["mine"]["id"] == a.hashid
    assert payload["group"] == [{"id": group["id"], "groupname": "climbers", "avatar": ""}]
    cats = {cat["id"]: cat for cat in payload["friend"]}
    assert payload["friend"][0]["id"] == DEFAULT and payload["friend"][0]["groupname"] == "default"
    assert [u["id"] for u in cats[DEFAULT]["list"]] == [c.hashid]
    assert cats[work["id"]]["groupname"] == "Work"
    [bee] = cats[work["id"]]["list"]
    assert bee["id"] == b.hashid and bee["account"] == "Bee" and bee["remark"] == "Bee"
    assert cats[empty["id"]]["list"] == []

    ok(client, a, "/friend/category/rename", id=work["id"], name="Office")
    ok(client, a, "/friend/move", uid=c.hashid, category_id=work["id"])
    cats = {cat["id"]: cat for cat in ok(client, a, "/friend/myfriend", "GET")["friend"]}
    assert cats[work["id"]]["groupname"] == "Office" and len(cats[work["id"]]["list"]) == 2

    ok(client, a, "/friend/category/delete", id=work["id"])
    cats = {cat["id"]: cat for cat in ok(client, a, "/friend/myfriend", "GET")["friend"]}
    assert work["id"] not in cats
    assert {u["id"] for u in cats[DEFAULT]["list"]} == {b.hashid, c.hashid}
    ok(client, a, "/friend/move", uid=b.hashid, category_id=empty["id"])
    ok(client, a, "/friend/move", uid=b.hashid, category_id=DEFAULT)
    ok(client, a, "/friend/change_remark", uid=b.hashid, remark="")  # clears it
    cats = {cat["id"]: cat for cat in ok(client, a, "/friend/myfriend", "GET")["friend"]}
    bee = next(u for u in cats[DEFAULT]["list"] if u["id"] == b.hashid)
    assert "remark" not in bee and bee["account"] != ""
    # b sees no remark of a's, and no group list of someone else's categories.
    assert [cat["id"] for cat in ok(client, b, "/friend/myfriend", "GET")["friend"]] == [DEFAULT]


def test_category_refusals(client, imboy, users):
    a, b, c = users(3)
    imboy.friends.do_make_friends(a.id, b.id)
    mine = ok(client, a, "/friend/category/add", name="Family")
    theirs = ok(client, c, "/friend/category/add", name="Theirs")
    refused(client, a, "/friend/category/add", 1, name="   ")
    refused(client, a, "/friend/category/add", 1)
    refused(client, a, "/friend/category/add", 1, name="n" * 81)
    assert ok(client, a, "/friend/category/add", name="n" * 80)["name"] == "n" * 80
    refused(client, a, "/friend/category/add", 2, name="family")        # duplicate name
    refused(client, a, "/friend/category/add", 2, name="Default")
    refused(client, a, "/friend/category/rename", 2, id=DEFAULT, name="x")
    refused(client, a, "/friend/category/delete", 2, id=DEFAULT)
    refused(client, a, "/friend/category/rename", 2, id=theirs["id"], name="Mine now")
    refused(client, a, "/friend/category/delete", 2, id=theirs["id"])
    refused(client, a, "/friend/category/rename", 1, id="?", name="x")
    refused(client, a, "/friend/category/rename", 1, id=mine["id"], name="")
    refused(client, a, "/friend/category/rename", 1, id=mine["id"], name="n" * 81)
    refused(client, a, "/friend/category/delete", 2, id=ids.encode(99999))
    refused(client, a, "/friend/move", 2, uid=b.hashid, category_id=theirs["id"])  # someone else's
    refused(client, a, "/friend/move", 2, uid=c.hashid, category_id=mine["id"])    # not a friend
    refused(client, a, "/friend/move", 1, uid=b.hashid, category_id="nope")
    assert [cat["groupname"] for cat in ok(client, c, "/friend/myfriend", "GET")["friend"]] == ["default", "Theirs"]
    names = [cat["groupname"] for cat in ok(client, a, "/friend/myfriend", "GET")["friend"]]
    assert names == ["default", "Family", "n" * 80]


def test_change_remark_refusals(client, imboy, users):
    a, b, c = users(3)
    imboy.friends.do_make_friends(a.id, b.id)
    refused(client, a, "/friend/change_remark", 2, uid=c.hashid, remark="x")
    refused(client, a, "/friend/change_remark", 1, uid=b.hashid, remark="r" * 81)
    refused(client, a, "/friend/change_remark", 1, remark="x")
    assert ok(client, a, "/friend/change_remark", json={"uid": b.hashid, "remark": "ü" * 80}) == "ü" * 80
    [friend] = ok(client, a, "/friend/list", "GET")["friend"]
    assert friend["remark"] == "ü" * 80


def test_information(client, imboy, users):
    a, b, c = users(3)
    imboy.friends.do_make_friends(a.id, b.id)
    ok(client, a, "/friend/change_remark", uid=b.hashid, remark="Bee")
    info = ok(client, a, "/friend/information", "GET", type="friend", id=b.hashid)
    assert info["mine_uid"] == a.hashid and info["type"] == "friend" and info["id"] == b.hashid
    assert info["is_friend"] is True and info["remark"] == "Bee" and info["user_setting"] == {}
    assert set(info) >= {"account", "nickname", "avatar", "sign", "gender", "region"}
    other = ok(client, a, "/friend/information", "GET", id=c.hashid)
    assert other["is_friend"] is False and other["remark"] == ""
    refused(client, a, "/friend/information", 1, "GET", type="group", id=b.hashid)
    refused(client, a, "/friend/information", 1, "GET", id=NOBODY)
    refused(client, a, "/friend/information", 1, "GET", id="bad id")
    refused(client, a, "/friend/information", 1, "GET")


def test_find_matches_limits_and_excludes_oneself(client, imboy, users):
    me, = users(1, nickname="zed")
    crowd = users(22, nickname="zed")
    other, = users(1, nickname="amy")
    imboy.friends.do_make_friends(me.id, crowd[0].id)

    first = ok(client, me, "/friend/find", "GET", keyword="ze")
    assert len(first) == 20 and me.hashid not in {u["id"] for u in first}
    assert set(first[0]) >= {"id", "account", "nickname", "avatar", "sign", "is_friend"}
    assert [u["is_friend"] for u in first if u["id"] == crowd[0].hashid] == [True]
    everyone = ok(client, me, "/friend/find", "GET", keyword="zed", size=1000)  # capped at 50
    assert {u["id"] for u in everyone} == {u.hashid for u in crowd}
    pages = [ok(client, me, "/friend/find", "GET", keyword="zed", size=10, page=n) for n in (1, 2, 3, 4)]
    assert [len(p) for p in pages] == [10, 10, 2, 0]
    assert len({u["id"] for p in pages for u in p}) == 22
    assert len(ok(client, me, "/friend/find", "GET", keyword="zed", limit=3)) == 3

    account = ok(client, other, "/friend/list", "GET")["mine"]["account"]
    assert [u["id"] for u in ok(client, me, "/friend/find", "GET", keyword=account)] == [other.hashid]
    assert [u["id"] for u in ok(client, me, "/friend/find", "GET", keyword=other.email)] == [other.hashid]
    assert ok(client, me, "/friend/find", "GET", keyword=me.email) == []       # not oneself
    assert ok(client, me, "/friend/find", "GET", keyword="%") == []            # no wildcards
    assert ok(client, me, "/friend/find", "GET", keyword="_ed") == []
    assert ok(client, me, "/friend/find", "GET", keyword="example.com") == []  # emails match exactly
    refused(client, me, "/friend/find", 1, "GET")
    refused(client, me, "/friend/find", 1, "GET", keyword="   ")
    refused(client, me, "/friend/find", 1, "GET", keyword="k" * 101)
    refused(client, me, "/friend/find", 1, "GET", keyword="zed", page=0)
    refused(client, me, "/friend/find", 1, "GET", keyword="zed", size=0)
    refused(client, me, "/friend/find", 1, "GET", keyword="zed", size="ten")


AUTH_ENDPOINTS = [
    ("GET", "/friend/list"), ("GET", "/friend/myfriend"), ("POST", "/friend/move"),
    ("GET", "/friend/information"), ("GET", "/friend/find"), ("POST", "/friend/change_remark"),
    ("POST", "/friend/category/add"), ("POST", "/friend/category/delete"), ("POST", "/friend/category/rename"),
    ("POST", "/friend/apply"), ("POST", "/friend/confirm"), ("POST", "/friend/delete"),
    ("GET", "/group/member"), ("POST", "/group/create"), ("POST", "/group/join"), ("POST", "/group/leave"),
    ("POST", "/group/kick"), ("POST", "/group/dissolve"),
    ("GET", "/conversation/mine"), ("GET", "/conversation/msgbox"),
]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_every_social_endpoint_needs_a_token(client):
    for method, path in AUTH_ENDPOINTS:
        assert call(client, None, path, method)["code"] == 706, path
        resp = client.open(path, method=method, headers={"authorization": "garbage"})
        assert resp.get_json()["code"] == 706, path
