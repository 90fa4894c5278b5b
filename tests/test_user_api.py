"""User endpoints and token handling over HTTP, on SQLite and MariaDB."""
from __future__ import annotations

import time

from imboy import ids
from imboy.repositories import users as users_repo

from .passport_support import JSON_TYPE, call, get, post, refused, success


def client_call(client, method: str, path: str, headers: dict, **kwargs) -> dict:
    return call(client, method, path, headers=headers, **kwargs)


def open_info(client, user, target_hashid: str, **headers) -> dict:
    return get(client, "/user/open_info", query_string={"id": target_hashid},
               headers=headers or user.headers)


def test_change_sign_then_open_info_shows_it(client, users):
    alice, bob = users(2)
    success(post(client, "/user/change_sign", {"sign": "  hello, world  "}, headers=alice.headers))
    info = success(open_info(client, bob, alice.hashid))
    assert info == {"id": alice.hashid, "nickname": "user1", "avatar": info["avatar"],
                    "account": info["account"], "sign": "  hello, world  "}
    assert info["avatar"].startswith("http") and len(info["account"]) == 9
    # An empty value clears the signature; a JSON body works too.
    success(post(client, "/user/change_sign", json={"sign": ""}, headers=alice.headers))
    assert success(open_info(client, bob, alice.hashid))["sign"] == ""
    success(post(client, "/user/change_sign", json={"sign": "多语言 ✓ 😀"}, headers=alice.headers))
    assert success(open_info(client, alice, alice.hashid))["sign"] == "多语言 ✓ 😀"
    # At most 255 characters (not bytes).
    longest = "😀" * 255
    success(post(client, "/user/change_sign", {"sign": longest}, headers=alice.headers))
    assert success(open_info(client, alice, alice.hashid))["sign"] == longest
    assert "too long" in refused(post(client, "/user/change_sign", {"sign": longest + "x"},
                                      headers=alice.headers))
    assert success(open_info(client, alice, alice.hashid))["sign"] == longest


def test_token_in_both_spellings(client, users):
    (alice,) = users(1)
    for value in (alice.token, "Bearer " + alice.token, "bearer " + alice.token):
        info = success(open_info(client, alice, alice.hashid, authorization=value))
        assert info["id"] == alice.hashid
        success(post(client, "/user/change_sign", {"sign": value[:6]}, headers={"authorization": value}))


def test_open_info_of_unknown_or_malformed_ids(client, users):
    (alice,) = users(1)
    assert refused(open_info(client, alice, ids.encode(999999))) == "User not found"
    assert refused(open_info(client, alice, ids.encode(0)))
    for bad in ("kybqdq", "nothashid", "'; --", "x" * 100):
        assert refused(open_info(client, alice, bad)), bad
    assert refused(get(client, "/user/open_info", headers=alice.headers)) == "Missing parameter: id"


def test_change_state(client, users, imboy):
    (alice,) = users(1)

    def stored_state():
        return imboy.db.run("test.state", users_repo.by_id, alice.id)["state"]

    for state in ("hide", "offline", "online"):
        success(post(client, "/user/change_state", {"state": state}, headers=alice.headers))
        assert stored_state() == state
    success(post(client, "/user/change_state", json={"state": "hide"}, headers=alice.headers))
    assert stored_state() == "hide"
    for bad in ("away", "ONLINE", "online; DROP TABLE user"):
        assert refused(post(client, "/user/change_state", {"state": bad}, headers=alice.headers))
    assert refused(post(client, "/user/change_state", {}, headers=alice.headers)) == "Missing parameter: state"
    assert stored_state() == "hide"


def test_tokens_missing_expired_invalid_or_refresh(client, users, imboy):
    (alice,) = users(1)
    past = int(time.time() * 1000) - 1000
    expired = imboy.tokens.encode({"exp": past, "sub": "tk", "uid": alice.hashid})
    refresh = imboy.tokens.refresh_token(alice.id)
    other_key = imboy.tokens.access_token(alice.id)[:-4] + "AAAA"
    calls = [("GET", "/user/open_info", {"id": alice.hashid}),
             ("POST", "/user/change_sign", {"sign": "x"}),
             ("POST", "/user/change_state", {"state": "hide"})]
    for method, path, data in calls:
        kwargs = {"query_string": data} if method == "GET" else {"data": data}
        assert refused(client_call(client, method, path, {}, **kwargs), 706)
        assert refused(client_call(client, method, path, {"authorization": ""}, **kwargs), 706)
        assert refused(client_call(client, method, path, {"authorization": expired}, **kwargs), 705)
        assert refused(client_call(client, method, path, {"authorization": "Bearer " + expired}, **kwargs), 705)
        assert refused(client_call(client, method, path, {"authorization": other_key}, **kwargs), 706)
        assert refused(client_call(client, method, path, {"authorization": "garbage"}, **kwargs), 706)
        assert refused(client_call(client, method, path, {"authorization": refresh}, **kwargs), 1) \
            == "Does not support refreshtoken"
    # None of those changed anything.
    row = imboy.db.run("test.read", users_repo.by_id, alice.id)
    assert row["sign"] == "" and row["state"] == "online"
    # A refresh token outlives a deleted account only until it is used.
    success(get(client, "/refreshtoken", headers={"imboy-refreshtoken": refresh}))
    imboy.db.run("test.delete", lambda tx: tx.execute("UPDATE `user` SET `status` = -1 WHERE `id` = %s",
                                                       (alice.id,)))
    assert refused(get(client, "/refreshtoken", headers={"imboy-refreshtoken": refresh}), 706)


def test_unknown_paths_are_plain_404(client, users):
    (alice,) = users(1)
    for path in ("/nope", "/user/nope", "/passport/nope", "/user/open_info/extra"):
        for method in ("GET", "POST"):
            resp = client.open(path, method=method, headers=alice.headers)
            assert resp.status_code == 404, (method, path)
            assert resp.content_type != JSON_TYPE
    # A known path with the wrong method gets the envelope.
    assert refused(get(client, "/user/change_sign", headers=alice.headers)) == "Method not allowed"
    assert refused(get(client, "/passport/login")) == "Method not allowed"
