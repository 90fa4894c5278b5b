"""Groups over HTTP: the lifecycle seen by connected members, permissions,
limits, pagination, and the membership log."""
from __future__ import annotations

from imboy import ids
from imboy.repositories import groups as groups_repo

from .social_support import (call, close_all, connect, expect_event, fast_passwords, no_event, ok,  # noqa: F401
                             refused)


def befriend(imboy, owner, *others) -> None:
    for other in others:
        imboy.friends.do_make_friends(owner.id, other.id)


def group_row(imboy, gid: str) -> dict:
    return imboy.db.run("test.group", groups_repo.get, ids.decode(gid))


def member_ids(client, user, gid: str) -> list[str]:
    return [m["id"] for m in ok(client, user, "/group/member", "GET", id=gid)["list"]]


def my_groups(client, user) -> list[str]:
    return [grp["id"] for grp in ok(client, user, "/friend/myfriend", "GET")["group"]]


def c2g(ws, gid: str, msg_id: str, text: str) -> None:
    ws.send_json({"id": msg_id, "type": "C2G", "to": gid, "payload": {"text": text}})


def test_group_lifecycle_seen_by_members(client, server, imboy, users):
    owner, b, c, d = users(4)
    befriend(imboy, owner, b, c)
    wo, wb, wc, wd = (connect(server, u) for u in (owner, b, c, d))

    created = ok(client, owner, "/group/create", name="Hikers", uids=f"{b.hashid}, {c.hashid}")
    gid = created["id"]
    assert created == {"id": gid, "groupname": "Hikers", "member_count": 3}
    for ws in (wo, wb, wc):
        event = expect_event(ws, "group_member_join")
        assert event["from"] == owner.hashid and event["payload"]["content"] == gid
        assert event["payload"]["group"] == {"id": gid, "groupname": "Hikers", "avatar": ""}
        assert set(event["payload"]["uids"]) == {owner.hashid, b.hashid, c.hashid}
    no_event(wd, "group_member_join")
    assert my_groups(client, b) == [gid] and my_groups(client, d) == []

    ok(client, d, "/group/join", id=gid)
    for ws in (wo, wb, wc, wd):
        event = expect_event(ws, "group_member_join")
        assert event["from"] == d.hashid and event["payload"]["uids"] == [d.hashid]
        assert event["payload"]["member_count"] == 4

    c2g(wb, gid, "g-1", "hello all")
    wb.expect_type("C2G_SERVER_ACK")
    for ws in (wo, wc, wd):
        frame = ws.expect_type("C2G")
        assert frame["to"] == gid and frame["from"] == b.hashid and frame["payload"] == {"text": "hello all"}
        ws.send_json({"id": "g-1", "type": "C2G_CLIENT_ACK", "to": gid})

    ok(client, c, "/group/leave", id=gid)
    for ws in (wo, wb, wc, wd):
        event = expect_event(ws, "group_member_leave")
        assert event["payload"]["uids"] == [c.hashid] and event["payload"]["kicked"] is False
    c2g(wc, gid, "g-2", "I left")
    assert wc.expect_type("error")["id"] == "g-2"

    ok(client, owner, "/group/kick", id=gid, uid=d.hashid)
    for ws in (wo, wb, wd):
        event = expect_event(ws, "group_member_leave")
        assert event["from"] == owner.hashid and event["payload"]["uids"] == [d.hashid]
        assert event["payload"]["kicked"] is True and event["payload"]["member_count"] == 2
    c2g(wd, gid, "g-3", "kicked")
    assert wd.expect_type("error")["id"] == "g-3"
    assert member_ids(client, owner, gid) == [owner.hashid, b.hashid]
    assert group_row(imboy, gid)["member_count"] == 2

    ok(client, owner, "/group/dissolve", id=gid)
    for ws in (wo, wb):
        event = expect_event(ws, "group_dissolve")
        assert event["from"] == owner.hashid and event["payload"]["content"] == gid
    no_event(wc, "group_dissolve")
    c2g(wb, gid, "g-4", "anyone?")
    assert wb.expect_type("error")["id"] == "g-4"
    assert my_groups(client, owner) == [] and my_groups(client, b) == []
    for path, data in (("/group/member", {}), ("/group/join", {}), ("/group/leave", {}),
                       ("/group/kick", {"uid": b.hashid}), ("/group/dissolve", {})):
        refused(client, b if path != "/group/dissolve" else owner, path, 2,
                "GET" if path == "/group/member" else "POST", id=gid, **data)

    log = imboy.db.run("test.log", groups_repo.log_rows, ids.decode(gid))
    kinds = [(row["type"], row["user_id"], row["option_uid"]) for row in log]
    assert kinds == [
        (groups_repo.LOG_JOINED, owner.id, owner.id), (groups_repo.LOG_JOINED, b.id, owner.id),
        (groups_repo.LOG_JOINED, c.id, owner.id), (groups_repo.LOG_JOINED, d.id, d.id),
        (groups_repo.LOG_LEFT, c.id, c.id), (groups_repo.LOG_KICKED, d.id, owner.id),
        (groups_repo.LOG_DISSOLVED, owner.id, owner.id)]
    close_all(wo, wb, wc, wd)


def test_create_accepts_json_arrays(client, imboy, users):
    owner, b, c = users(3)
    befriend(imboy, owner, b, c)
    created = ok(client, owner, "/group/create", json={"name": "JSON", "uids": [b.hashid, c.hashid, b.hashid]})
    assert created["member_count"] == 3
    as_text = ok(client, owner, "/group/create", name="Text", uids=f'["{b.hashid}"]')
    assert as_text["member_count"] == 2
    alone = ok(client, owner, "/group/create", name="  Alone  ")
    assert alone["member_count"] == 1 and alone["groupname"] == "Alone"
    assert member_ids(client, owner, created["id"]) == [owner.hashid, b.hashid, c.hashid]
    roles = {m["id"]: m["role"] for m in ok(client, owner, "/group/member", "GET", id=created["id"])["list"]}
    assert roles == {owner.hashid: groups_repo.ROLE_OWNER, b.hashid: groups_repo.ROLE_MEMBER,
                     c.hashid: groups_repo.ROLE_MEMBER}


def test_create_refusals_write_nothing(client, imboy, users):
    owner, friend, stranger = users(3)
    befriend(imboy, owner, friend)
    refused(client, owner, "/group/create", 1, uids=friend.hashid)                     # no name
    refused(client, owner, "/group/create", 1, name="   ")
    refused(client, owner, "/group/create", 1, name="g" * 81)
    refused(client, owner, "/group/create", 1, name="ok", uids="not-an-id")
    refused(client, owner, "/group/create", 1, name="ok", uids="[1, 2]")
    refused(client, owner, "/group/create", 1, name="ok", uids="[broken")
    refused(client, owner, "/group/create", 1, name="ok", json={"name": "ok", "uids": {"a": 1}})
    refused(client, owner, "/group/create", 1, name="ok", uids=ids.encode(424242))      # nobody
    refused(client, owner, "/group/create", 2, name="ok", uids=f"{friend.hashid},{stranger.hashid}")
    refused(client, owner, "/group/create", 1, name="ok", uids=friend.hashid, member_max=1)
    refused(client, owner, "/group/create", 1, name="ok", member_max=0)
    refused(client, owner, "/group/create", 1, name="ok", member_max=10001)
    refused(client, owner, "/group/create", 1, name="ok", member_max="many")
    assert my_groups(client, owner) == [] and my_groups(client, friend) == []
    assert ok(client, owner, "/group/create", name="g" * 80, member_max=10000)["groupname"] == "g" * 80


def test_member_list_is_for_members_and_pages(client, imboy, users):
    owner, *others = users(6)
    outsider, = users(1)
    befriend(imboy, owner, *others)
    gid = ok(client, owner, "/group/create", name="Six", uids=",".join(u.hashid for u in others))["id"]

    whole = ok(client, others[0], "/group/member", "GET", id=gid)
    assert whole["total"] == 6 and len(whole["list"]) == 6
    first = whole["list"][0]
    assert set(first) >= {"id", "account", "nickname", "avatar", "sign", "alias", "description", "role", "status"}
    pages = [ok(client, owner, "/group/member", "GET", id=gid, size=4, page=n)["list"] for n in (1, 2, 3)]
    assert [len(p) for p in pages] == [4, 2, 0]
    assert [m["id"] for p in pages for m in p] == [m["id"] for m in whole["list"]]
    assert len(ok(client, owner, "/group/member", "GET", id=gid, limit=2)["list"]) == 2
    assert ok(client, owner, "/group/member", "GET", id=gid, size=100000)["size"] == 500

    refused(client, outsider, "/group/member", 2, "GET", id=gid)
    refused(client, owner, "/group/member", 1, "GET", id=ids.encode(777777))
    refused(client, owner, "/group/member", 1, "GET", id="garbage")
    refused(client, owner, "/group/member", 1, "GET")
    refused(client, owner, "/group/member", 1, "GET", id=gid, page=0)
    refused(client, owner, "/group/member", 1, "GET", id=gid, size=-1)


def test_join_and_leave_rules(client, imboy, users):
    owner, friend, a, b = users(4)
    befriend(imboy, owner, friend)
    gid = ok(client, owner, "/group/create", name="Pair", uids=friend.hashid, member_max=3)["id"]
    refused(client, friend, "/group/join", 2, id=gid)                  # already a member
    ok(client, a, "/group/join", id=gid)
    refused(client, b, "/group/join", 2, id=gid)                       # full: 3 of 3
    ok(client, a, "/group/leave", id=gid)
    refused(client, a, "/group/leave", 2, id=gid)                      # not a member any more
    ok(client, b, "/group/join", id=gid)                               # room again
    ok(client, b, "/group/leave", id=gid)
    ok(client, b, "/group/join", id=gid)                               # leaving is not final
    refused(client, owner, "/group/leave", 2, id=gid)                  # the owner dissolves instead
    refused(client, a, "/group/join", 1, id=ids.encode(5555))
    refused(client, a, "/group/join", 1, id="nope")
    refused(client, a, "/group/leave", 1)
    assert member_ids(client, owner, gid) == [owner.hashid, friend.hashid, b.hashid]
    assert group_row(imboy, gid)["member_count"] == 3


def test_kick_rules(client, imboy, users):
    owner, admin, m1, m2, outsider = users(5)
    befriend(imboy, owner, admin, m1, m2)
    gid = ok(client, owner, "/group/create", name="Club", uids=f"{admin.hashid},{m1.hashid},{m2.hashid}")["id"]
    imboy.db.run("test.promote", groups_repo.set_role, ids.decode(gid), admin.id, groups_repo.ROLE_ADMIN, 1)

    refused(client, m1, "/group/kick", 2, id=gid, uid=m2.hashid)       # plain members cannot
    refused(client, outsider, "/group/kick", 2, id=gid, uid=m2.hashid)
    refused(client, admin, "/group/kick", 2, id=gid, uid=owner.hashid)  # nobody removes the owner
    refused(client, owner, "/group/kick", 2, id=gid, uid=owner.hashid)
    refused(client, owner, "/group/kick", 2, id=gid, uid=outsider.hashid)
    refused(client, owner, "/group/kick", 1, id=gid, uid="x")
    refused(client, owner, "/group/kick", 1, id=gid)
    ok(client, admin, "/group/kick", id=gid, uid=m1.hashid)             # an admin removes a member
    refused(client, m1, "/group/join", 2, id=gid)                       # and they stay out
    ok(client, owner, "/group/kick", id=gid, uid=admin.hashid)          # the owner removes an admin
    refused(client, admin, "/group/kick", 2, id=gid, uid=m2.hashid)     # no longer a member
    assert member_ids(client, owner, gid) == [owner.hashid, m2.hashid]
    assert group_row(imboy, gid)["member_count"] == 2


def test_admin_cannot_remove_admin_or_dissolve(client, imboy, users):
    owner, a1, a2 = users(3)
    befriend(imboy, owner, a1, a2)
    gid = ok(client, owner, "/group/create", name="Admins", uids=f"{a1.hashid},{a2.hashid}")["id"]
    for admin in (a1, a2):
        imboy.db.run("test.promote", groups_repo.set_role, ids.decode(gid), admin.id, groups_repo.ROLE_ADMIN, 1)
    refused(client, a1, "/group/kick", 2, id=gid, uid=a2.hashid)
    refused(client, a1, "/group/dissolve", 2, id=gid)


def test_dissolve_rules(client, imboy, users):
    owner, member, outsider = users(3)
    befriend(imboy, owner, member)
    gid = ok(client, owner, "/group/create", name="Short", uids=member.hashid)["id"]
    refused(client, member, "/group/dissolve", 2, id=gid)
    refused(client, outsider, "/group/dissolve", 2, id=gid)
    refused(client, owner, "/group/dissolve", 1, id="??")
    refused(client, owner, "/group/dissolve", 1, id=ids.encode(31337))
    assert member_ids(client, member, gid) == [owner.hashid, member.hashid]
    ok(client, owner, "/group/dissolve", id=gid)
    refused(client, owner, "/group/dissolve", 2, id=gid)
    refused(client, member, "/group/member", 2, "GET", id=gid)
    assert call(client, owner, "/group/join", id=gid)["code"] == 2
