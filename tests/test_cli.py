"""The operators' Flask commands, on both backends.

Most run through `app.test_cli_runner()` (fast, same app); one test starts
real `flask --app wsgi` processes against the test's database and live
server.  `online` and `send-system` talk to a live server over HTTP and are
checked by what WebSocket clients receive.
"""
from __future__ import annotations

import base64
import json
import os
import shutil

import pytest

from imboy import ids
from imboy.clock import now_ms
from imboy.repositories import messages as messages_repo
from imboy.rsakey import RsaKey
from imboy.services.admin import ring_pairs

from .helpers import WsClient
from .ops_support import ADMIN, cli, envelope, fails, field, free_port, ok, run_flask, subprocess_env

DAY_MS = 86_400_000


def login(client, account: str, password: str) -> dict:
    return envelope(client.post("/passport/login", data={"account": account, "pwd": password,
                                                         "rsa_encrypt": "0"}))


# --- create-user, make-friends, create-group ------------------------------------
def test_create_user_prints_uid_and_account_and_the_user_can_log_in(app, client):
    out = ok(cli(app, "create-user", "--email", "Ann@Example.com", "--password", "pw-of-ann",
                 "--nickname", "Ann"))
    uid, account = field(out, "uid"), field(out, "account")
    assert ids.decode(uid) > 0 and len(account) == 9 and account.isdigit()
    body = login(client, "ann@example.com", "pw-of-ann")
    assert body["code"] == 0, body
    assert body["payload"]["uid"] == uid
    assert body["payload"]["account"] == account
    assert body["payload"]["nickname"] == "Ann"


def test_create_user_prompts_for_a_password_it_was_not_given(app, client):
    out = ok(cli(app, "create-user", "--email", "bob@example.com", input="pw-of-bob\npw-of-bob\n"))
    assert "pw-of-bob" not in out
    assert login(client, "bob@example.com", "pw-of-bob")["code"] == 0


def test_create_user_errors(app):
    ok(cli(app, "create-user", "--email", "c@example.com", "--password", "x"))
    fails(cli(app, "create-user", "--email", "c@example.com", "--password", "x"), 1, "already registered")
    fails(cli(app, "create-user", "--email", "not-an-address", "--password", "x"), 1, "Invalid email")
    fails(cli(app, "create-user", "--password", "x"), 2, "--email")


def test_make_friends(app, imboy, users):
    a, b = users(2)
    out = ok(cli(app, "make-friends", a.hashid, b.hashid))
    assert a.hashid in out and b.hashid in out
    assert imboy.friends.is_friend(a.id, b.id) and imboy.friends.is_friend(b.id, a.id)
    # Again: still friends, no error.
    ok(cli(app, "make-friends", b.hashid, a.hashid))


def test_make_friends_errors(app, users):
    (a,) = users(1)
    fails(cli(app, "make-friends", a.hashid, "not-an-id"), 2, "'not-an-id' is not a user id")
    fails(cli(app, "make-friends", a.hashid, ids.encode(0)), 2, "is not a user id")
    fails(cli(app, "make-friends", a.hashid), 2, "Missing argument")
    fails(cli(app, "make-friends", a.hashid, ids.encode(4242)), 1, "User not found")
    fails(cli(app, "make-friends", a.hashid, a.hashid), 1, "oneself")


def test_create_group(app, imboy, users):
    owner, m1, m2 = users(3)
    out = ok(cli(app, "create-group", "--owner", owner.hashid, "--name", "Ops team", m1.hashid, m2.hashid))
    gid = ids.decode(field(out, "group"))
    assert gid > 0 and field(out, "members") == "3"
    assert all(imboy.groups.is_member(gid, u.id) for u in (owner, m1, m2))


def test_create_group_errors(app, users):
    owner, member = users(2)
    fails(cli(app, "create-group", "--owner", "nope", "--name", "g", member.hashid), 2, "is not a user id")
    fails(cli(app, "create-group", "--name", "g", member.hashid), 2, "--owner")
    fails(cli(app, "create-group", "--owner", owner.hashid, "--name", "g", ids.encode(4242)), 1, "Unknown user")
    fails(cli(app, "create-group", "--owner", owner.hashid, "--name", "x" * 81), 1, "80")


# --- mint-token -----------------------------------------------------------------
def _claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_mint_token(app, imboy, client, users):
    (u,) = users(1)
    token = ok(cli(app, "mint-token", u.hashid)).strip()
    assert imboy.tokens.verify_access(token) == u.id
    assert envelope(client.post("/user/change_sign", data={"sign": "hi"},
                                headers={"authorization": token}))["code"] == 0
    refresh = ok(cli(app, "mint-token", u.hashid, "--refresh")).strip()
    assert imboy.tokens.verify_refresh(refresh) == u.id
    short = ok(cli(app, "mint-token", u.hashid, "--ttl", "30")).strip()
    assert abs(_claims(short)["exp"] - (now_ms() + 30_000)) < 5_000


def test_mint_token_errors(app, users):
    (u,) = users(1)
    fails(cli(app, "mint-token", ids.encode(4242)), 1, "no such user")
    fails(cli(app, "mint-token", "???"), 2, "is not a user id")
    fails(cli(app, "mint-token", u.hashid, "--ttl", "0"), 2, "--ttl")


# --- purge-pending ----------------------------------------------------------------
def test_purge_pending(app, imboy, client, users):
    a, b, c = users(3)
    now = now_ms()
    gid = ids.decode(imboy.groups.do_create_group(a.id, "g", [b.id, c.id])["id"])

    def seed(tx):
        messages_repo.insert_c2c(tx, "old-c2c", a.id, b.id, '"old"', now - 10 * DAY_MS, now - 10 * DAY_MS)
        messages_repo.insert_c2c(tx, "new-c2c", a.id, b.id, '"new"', now - DAY_MS, now - DAY_MS)
        messages_repo.insert_c2g(tx, "old-c2g", a.id, gid, '"old"', now - 10 * DAY_MS, now - 10 * DAY_MS,
                                 [b.id, c.id])
        messages_repo.insert_c2g(tx, "new-c2g", a.id, gid, '"new"', now - DAY_MS, now - DAY_MS, [b.id, c.id])

    imboy.db.run("test.seed", seed)
    out = ok(cli(app, "purge-pending", "--days", "7", "--dry-run"))
    assert "would drop: 1 pending C2C message(s), 2 group pending entries" in out
    mine = envelope(client.get("/conversation/mine", headers=b.headers))["payload"]
    assert [m["id"] for m in mine] == ["old-c2c", "new-c2c"]

    out = ok(cli(app, "purge-pending", "--days", "7"))
    assert "dropped: 1 pending C2C message(s), 2 group pending entries" in out
    mine = envelope(client.get("/conversation/mine", headers=b.headers))["payload"]
    assert [m["id"] for m in mine] == ["new-c2c"]
    for member in (b, c):
        pending = imboy.db.run("test.c2g", messages_repo.pending_c2g, member.id)
        assert [m["msg_id"] for m in pending] == ["new-c2g"]
    assert "dropped: 0 pending C2C message(s), 0 group" in ok(cli(app, "purge-pending", "--days", "7"))


def test_purge_pending_errors(app):
    fails(cli(app, "purge-pending", "--days", "0"), 2, "--days")
    fails(cli(app, "purge-pending", "--days", "-3", "--dry-run"), 2, "--days")
    fails(cli(app, "purge-pending", "--days", "week"), 2, "--days")
    fails(cli(app, "purge-pending"), 2, "--days")


# --- rotate-rsa-key -----------------------------------------------------------------
def test_rotate_rsa_key_keeps_the_old_one_and_a_restart_publishes_the_new(make_app, settings, tmp_path):
    path = str(tmp_path / "keys" / "login.pem")
    os.makedirs(os.path.dirname(path))
    shutil.copy(settings["RSA_PRIVATE_KEY"], path)
    app = make_app(RSA_PRIVATE_KEY=path)
    old_public = envelope(app.test_client().get("/init"))["payload"]["login_rsa_pub_key"]
    with open(path, "rb") as fh:
        old_pem = fh.read()

    out = ok(cli(app, "rotate-rsa-key"))
    assert "restart" in out and path + ".bak" in out
    with open(path + ".bak", "rb") as fh:
        assert fh.read() == old_pem
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    # Running servers keep their key; a restarted one publishes the new key.
    assert envelope(app.test_client().get("/init"))["payload"]["login_rsa_pub_key"] == old_public
    restarted = make_app(RSA_PRIVATE_KEY=path)
    new_public = envelope(restarted.test_client().get("/init"))["payload"]["login_rsa_pub_key"]
    assert new_public != old_public
    with open(path, "rb") as fh:
        assert RsaKey.from_pem(fh.read()).public_pem == new_public


def test_rotate_rsa_key_into_a_missing_folder_fails_cleanly(make_app, settings, tmp_path):
    app = make_app()
    app.extensions["imboy"].config["RSA_PRIVATE_KEY"] = str(tmp_path / "no" / "such" / "key.pem")
    fails(cli(app, "rotate-rsa-key"), 1, "cannot write")
    with open(settings["RSA_PRIVATE_KEY"], "rb") as fh:
        RsaKey.from_pem(fh.read())  # the shared key is untouched


# --- bulk-users ---------------------------------------------------------------------
@pytest.mark.parametrize("n,k", [(2, 1), (7, 3), (8, 3), (10, 4), (11, 10), (5, 0)])
def test_ring_pairs_give_everyone_k_friends(n, k):
    pairs = list(ring_pairs(n, k))
    unordered = {frozenset(p) for p in pairs}
    assert len(unordered) == len(pairs) and all(len(p) == 2 for p in unordered)
    degree = [0] * n
    for a, b in pairs:
        degree[a] += 1
        degree[b] += 1
    expected = [k] * n
    if k % 2 and n % 2:
        expected[-1] = k - 1
    assert degree == expected


def test_bulk_users_creates_users_friendships_and_tokens(app, imboy, client, tmp_path):
    tokens_out = tmp_path / "tokens.txt"
    out = ok(cli(app, "bulk-users", "2000", "--friends-per-user", "4", "--prefix", "load-",
                 "--password", "bulk-pw", "--tokens-out", str(tokens_out)))
    assert "created 2000 users" in out and "4000 friendships" in out
    lines = tokens_out.read_text().splitlines()
    assert len(lines) == 2000
    pairs = [line.split(" ") for line in lines]
    uids = [ids.decode(h) for h, _ in pairs]
    assert len(set(uids)) == 2000 and min(uids) > 0
    for hashid, token in pairs[:3] + pairs[-3:]:
        assert imboy.tokens.verify_access(token) == ids.decode(hashid)
    counts = imboy.db.read("test.count", "SELECT COUNT(*) AS n, COUNT(DISTINCT `account`) AS accounts"
                                         " FROM `user` WHERE `email` LIKE %s", ("load-%",))[0]
    assert counts == {"n": 2000, "accounts": 2000}
    for uid in (uids[0], uids[999], uids[-1]):
        friends = imboy.friends.friend_ids(uid)
        assert len(friends) == 4
        assert all(imboy.friends.is_friend(f, uid) for f in friends)
    body = login(client, "load-1234@example.com", "bulk-pw")
    assert body["code"] == 0 and body["payload"]["uid"] == ids.encode(uids[1233])


def test_bulk_users_errors(app, imboy, tmp_path):
    fails(cli(app, "bulk-users", "0"), 2, "N")
    fails(cli(app, "bulk-users", "-5"), 2)
    fails(cli(app, "bulk-users", "many"), 2, "N")
    fails(cli(app, "bulk-users", "5", "--friends-per-user", "5"), 1, "smaller than N")
    fails(cli(app, "bulk-users", "5", "--prefix", "Bad Prefix!"), 1, "--prefix")
    fails(cli(app, "bulk-users", "5", "--tokens-out", str(tmp_path / "no" / "dir" / "t.txt")), 1, "cannot write")
    ok(cli(app, "bulk-users", "3", "--prefix", "same-"))
    # A clash is found before anything is written.
    fails(cli(app, "bulk-users", "10", "--prefix", "same-"), 1, "already exist", "--prefix")
    assert imboy.db.read("test.count", "SELECT COUNT(*) AS n FROM `user`")[0]["n"] == 3


# --- online and send-system, through the running server -------------------------------
@pytest.fixture
def ops_app(make_app):
    return make_app(ADMIN_UIDS=(ADMIN,))


@pytest.fixture
def live(ops_app, make_server):
    return make_server(ops_app)


def connect(live, user, device: str = "web") -> WsClient:
    ws = WsClient(live.ws_url, user.token, device=device)
    ws.send_text("ping")  # answered only once the connection is registered
    ws.expect(lambda f: f == "pong2")
    return ws


def test_online_counts_and_lists_through_the_server(ops_app, live, users):
    a, b, c = users(3)
    assert ok(cli(ops_app, "online", "--url", live.url)).split() == ["0"]
    ws = [connect(live, a), connect(live, a, "ios"), connect(live, b)]
    try:
        assert ok(cli(ops_app, "online", "--url", live.url)).split() == ["2"]
        listed = ok(cli(ops_app, "online", "--list", "--url", live.url)).split()
        assert listed[0] == "2" and sorted(listed[1:]) == sorted([a.hashid, b.hashid])
    finally:
        for w in ws:
            w.close()


def test_online_errors(ops_app, make_app, live, users):
    (a,) = users(1)
    fails(cli(ops_app, "online", "--url", f"http://127.0.0.1:{free_port()}"), 1, "cannot reach")
    fails(cli(ops_app, "online", "--list", "--url", live.url, "--admin", a.hashid), 1, "administrators")
    ops_app.extensions["imboy"].config["ADMIN_UIDS"] = ()
    fails(cli(ops_app, "online", "--list", "--url", live.url), 1, "IMBOY_ADMIN_UIDS")


def test_send_system_to_one_user_and_to_everyone(ops_app, live, users):
    a, b = users(2)
    wa, wb = connect(live, a), connect(live, b)
    try:
        out = ok(cli(ops_app, "send-system", "--to", a.hashid, "Maintenance at 22:00", "--url", live.url))
        assert "1 user(s), 1 connection(s)" in out
        frame = wa.expect_type("S2C")
        assert frame["to"] == a.hashid
        assert frame["payload"] == {"msg_type": "notice", "content": "Maintenance at 22:00"}
        wb.nothing(0.3)

        ok(cli(ops_app, "send-system", "--all", "Back soon", "--url", live.url))
        for ws, user in ((wa, a), (wb, b)):
            frame = ws.expect_type("S2C")
            assert frame["to"] == user.hashid and frame["payload"]["content"] == "Back soon"
    finally:
        wa.close()
        wb.close()


def test_send_system_errors(ops_app, live, users):
    a, offline = users(2)
    url = ("--url", live.url)
    fails(cli(ops_app, "send-system", "hi", *url), 2, "--to UID and --all")
    fails(cli(ops_app, "send-system", "hi", "--all", "--to", a.hashid, *url), 2, "--to UID and --all")
    fails(cli(ops_app, "send-system", " ", "--all", *url), 2, "TEXT")
    fails(cli(ops_app, "send-system", "hi", "--to", "zz", *url), 2, "is not a user id")
    fails(cli(ops_app, "send-system", "hi", "--to", ids.encode(4242), *url), 1, "no such user")
    fails(cli(ops_app, "send-system", "hi", "--to", offline.hashid, *url), 1, "not online")
    fails(cli(ops_app, "send-system", "hi", "--all", "--admin", a.hashid, *url), 1, "administrators")
    fails(cli(ops_app, "send-system", "hi", "--all", "--url", f"http://127.0.0.1:{free_port()}"), 1,
          "cannot reach")


# --- real processes ---------------------------------------------------------------------
def test_real_flask_processes(ops_app, live, settings, client, users):
    """`flask --app wsgi ...` as an operator types it, on the test's database and server."""
    env = subprocess_env(settings, IMBOY_ADMIN_UIDS=ADMIN)
    proc = run_flask(env, "create-user", "--email", "real@example.com", "--password", "pw-real")
    assert proc.returncode == 0, proc.stderr
    uid = field(proc.stdout, "uid")
    assert login(client, "real@example.com", "pw-real")["payload"]["uid"] == uid

    (friend,) = users(1)
    ws = connect(live, friend)
    try:
        proc = run_flask(env, "send-system", "--to", friend.hashid, "from another process", "--url", live.url)
        assert proc.returncode == 0, proc.stderr
        assert ws.expect_type("S2C")["payload"]["content"] == "from another process"
        proc = run_flask(env, "online", "--list", "--url", live.url)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.split() == ["1", friend.hashid]
    finally:
        ws.close()

    proc = run_flask(env, "make-friends", uid, "bad-id")
    assert proc.returncode == 2
    assert "'bad-id' is not a user id" in proc.stderr and "Traceback" not in proc.stderr
