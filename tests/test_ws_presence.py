"""Presence (PROTOCOL section 4): S2C 1019 to online friends as users come, go and change state."""
from __future__ import annotations

from .ws_support import befriend, collect, connect, fast_passwords, http_post  # noqa: F401


def _presence(client, seconds: float = 0.3) -> list[dict]:
    return [f for _, f in collect(client, seconds, "S2C") if f["payload"]["msg_type"] == "1019"]


def _expect_1019(client, who, to, content) -> None:
    frame = client.expect(lambda f: isinstance(f, dict) and f.get("type") == "S2C"
                          and f["payload"]["msg_type"] == "1019")
    assert frame["from"] == who.hashid and frame["to"] == to.hashid
    assert frame["payload"]["content"] == content
    assert isinstance(frame["payload"]["msg_type"], str) and isinstance(frame["server_ts"], int)
    assert "code" not in frame


def test_friends_see_first_connection_and_last_disconnection(imboy, server, users):
    a, b, c, stranger = users(4)
    befriend(imboy, a, b)
    befriend(imboy, a, c)
    cb, cs = connect(server, b), connect(server, stranger)
    ca_web = connect(server, a, "web")
    _expect_1019(cb, a, b, "online")
    # C comes online later: it is told nothing about A, but A hears about C.
    cc = connect(server, c)
    _expect_1019(ca_web, c, a, "online")
    assert _presence(cc, 0.1) == []
    # A second device is not news; closing one of two devices is not either.
    ca_phone = connect(server, a, "android")
    assert _presence(cb) == []
    ca_web.close()
    assert _presence(cb) == []
    ca_phone.close()
    _expect_1019(cb, a, b, "offline")
    _expect_1019(cc, a, c, "offline")
    # Not a friend: never told anything.
    assert _presence(cs, 0.05) == []
    for x in (cb, cc, cs):
        x.close()


def test_hidden_user_comes_and_goes_unseen(imboy, server, users):
    a, b = users(2)
    befriend(imboy, a, b)
    imboy.users.change_state(a.id, "hide")  # nobody online yet: nobody told
    cb = connect(server, b)
    ca = connect(server, a)
    ca.send_text("ping")
    assert ca.recv() == "pong2"
    ca.close()
    assert _presence(cb, 0.5) == []
    cb.close()


def test_change_state_over_http_reaches_online_friends(imboy, server, users):
    a, b, stranger = users(3)
    befriend(imboy, a, b)
    cb, cs = connect(server, b), connect(server, stranger)
    for state in ("hide", "online", "offline"):
        status, body = http_post(server, "/user/change_state", {"state": state}, token=a.token)
        assert (status, body["code"]) == (200, 0), body
        _expect_1019(cb, a, b, state)
    # A bad state is refused and announces nothing.
    status, body = http_post(server, "/user/change_state", {"state": "away"}, token=a.token)
    assert status == 200 and body["code"] == 1
    assert _presence(cb) == []
    assert _presence(cs, 0.05) == []
    cb.close()
    cs.close()
