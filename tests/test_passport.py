"""Passport endpoints over HTTP (PROTOCOL section 3): RSA key, codes mailed
through a real SMTP listener, sign-up, login three ways, password reset,
token refresh, legacy password hashes.  Every test runs on SQLite and MariaDB.
"""
from __future__ import annotations

import re
import time

import gevent
import requests

from imboy import ids, passwords
from imboy.repositories import users as users_repo

from .passport_support import (CODE_INVALID, LOGIN_FAILED, PASSWORD, code_from_mail, get, log_in,
                               mail_app, mail_client, mails_to, post, public_key, refused,  # noqa: F401
                               request_code, rsa_encrypt, sign_up, sink, success)

LOGIN_FIELDS = {"token", "refreshtoken", "uid", "nickname", "avatar", "account", "gender", "area",
                "role", "sign"}


def whoami(client, token: str) -> str:
    """The hashid a token stands for, asked of the server."""
    body = get(client, "/user/open_info", headers={"authorization": token},
               query_string={"id": ids.encode(1)})
    return success(body)["id"]


def test_init_publishes_the_key_and_rsa_passwords_sign_up_and_log_in(mail_client, sink):
    init = success(get(mail_client, "/init"))
    assert init["login_pwd_rsa_encrypt"] == "1"
    pem = init["login_rsa_pub_key"]
    assert pem.startswith("-----BEGIN PUBLIC KEY-----") and pem.rstrip().endswith("-----END PUBLIC KEY-----")

    code = request_code(mail_client, sink, "alice@example.com")
    assert re.fullmatch(r"\d{6}", code)
    # rsa_encrypt left out: "1" is the default.
    payload = success(post(mail_client, "/passport/signup", {
        "type": "email", "account": "alice@example.com", "code": code,
        "pwd": rsa_encrypt(pem, PASSWORD)}))
    assert set(payload) == LOGIN_FIELDS
    assert payload["uid"] == "kybqdp"  # the first user of a fresh database
    assert re.fullmatch(r"\d{9}", payload["account"])
    assert type(payload["gender"]) is int
    assert payload["area"] == "" and payload["role"] == 1 and payload["sign"] == ""
    assert payload["nickname"] == "alice"
    assert payload["avatar"].startswith("http")
    assert whoami(mail_client, payload["token"]) == "kybqdp"

    for extra in ({}, {"rsa_encrypt": "1"}):
        body = post(mail_client, "/passport/login", dict(
            {"account": "alice@example.com", "pwd": rsa_encrypt(pem, PASSWORD)}, **extra))
        login = success(body)
        assert set(login) == LOGIN_FIELDS and login["uid"] == "kybqdp"
        assert login["account"] == payload["account"]
        assert whoami(mail_client, login["token"]) == "kybqdp"
    # The same password in plain text with rsa_encrypt=0.
    assert success(log_in(mail_client, "alice@example.com"))["uid"] == "kybqdp"
    # Encrypted, but not the password.
    assert refused(post(mail_client, "/passport/login", {
        "account": "alice@example.com", "pwd": rsa_encrypt(pem, "wrong")})) == LOGIN_FAILED


def test_login_by_email_account_number_and_mobile(mail_app, mail_client, sink):
    imboy = mail_app.extensions["imboy"]
    user = sign_up(mail_client, sink, "bob@example.com")
    uid = ids.decode(user["uid"])
    imboy.db.run("test.mobile", users_repo.set_mobile, uid, "13800138000")

    cases = [("bob@example.com", None), ("BOB@Example.com", None), ("bob@example.com", "email"),
             (user["account"], None), (user["account"], "account"),
             ("13800138000", None), ("13800138000", "mobile")]
    for account, kind in cases:
        extra = {"type": kind} if kind else {}
        login = success(log_in(mail_client, account, **extra))
        assert login["uid"] == user["uid"] and login["account"] == user["account"], (account, kind)
        assert set(login) == LOGIN_FIELDS
        assert whoami(mail_client, login["token"]) == user["uid"]


def test_wrong_password_and_unknown_account_get_the_same_answer(mail_app, mail_client, sink):
    imboy = mail_app.extensions["imboy"]
    user = sign_up(mail_client, sink, "carol@example.com")
    imboy.db.run("test.mobile", users_repo.set_mobile, ids.decode(user["uid"]), "13900139000")
    answers = {
        refused(log_in(mail_client, "carol@example.com", "wrong password")),
        refused(log_in(mail_client, "nobody@example.com")),
        refused(log_in(mail_client, user["account"], "wrong password")),
        refused(log_in(mail_client, "999999999")),
        refused(log_in(mail_client, "13900139000", "wrong password")),
        refused(log_in(mail_client, "13700000000")),
        refused(log_in(mail_client, "carol@example.com", "wrong", type="mobile")),
    }
    assert answers == {LOGIN_FAILED}


def test_signup_with_a_plain_password_and_a_json_body(mail_client, sink):
    code = request_code(mail_client, sink, "dave@example.com")
    payload = success(post(mail_client, "/passport/signup", json={
        "type": "email", "account": "dave@example.com", "pwd": PASSWORD, "rsa_encrypt": "0",
        "code": code}))
    assert payload["uid"] == "kybqdp"
    assert success(post(mail_client, "/passport/login", json={
        "account": "dave@example.com", "pwd": PASSWORD, "rsa_encrypt": 0}))["uid"] == "kybqdp"
    # Taken now, even with a fresh code.
    code = request_code(mail_client, sink, "dave@example.com", count=2)
    assert refused(post(mail_client, "/passport/signup", json={
        "account": "dave@example.com", "pwd": PASSWORD, "rsa_encrypt": "0", "code": code})) \
        == "This email is already registered"


def test_second_getcode_within_the_interval_sends_no_second_mail(mail_client, sink):
    code = request_code(mail_client, sink, "erin@example.com")
    # The mail goes out inside the request, so by now a second one would be there.
    success(post(mail_client, "/passport/getcode", {"account": "erin@example.com", "type": "email"}))
    success(post(mail_client, "/passport/getcode", json={"account": "erin@example.com"}))
    assert len(mails_to(sink, "erin@example.com")) == 1
    # The first code is still the valid one.
    success(post(mail_client, "/passport/signup", {
        "account": "erin@example.com", "pwd": PASSWORD, "rsa_encrypt": "0", "code": code}))


def test_an_expired_code_is_refused(make_app, sink):
    client = make_app(SMTP_HOST="127.0.0.1", SMTP_PORT=sink.port, CODE_TTL=0.2).test_client()
    code = request_code(client, sink, "frank@example.com")
    time.sleep(0.3)
    form = {"account": "frank@example.com", "pwd": PASSWORD, "rsa_encrypt": "0", "code": code}
    assert refused(post(client, "/passport/signup", form)) == CODE_INVALID
    # An expired code does not hold back a new one, inside the resend interval.
    form["code"] = request_code(client, sink, "frank@example.com", count=2)
    success(post(client, "/passport/signup", form))


def test_a_code_is_single_use(mail_client, sink):
    code = request_code(mail_client, sink, "grace@example.com")
    form = {"account": "grace@example.com", "pwd": PASSWORD, "rsa_encrypt": "0", "code": code}
    success(post(mail_client, "/passport/signup", form))
    # Used up: not for a reset, nor for signing up again.
    assert refused(post(mail_client, "/passport/findpassword", form)) == CODE_INVALID
    assert refused(post(mail_client, "/passport/signup", form)) == "This email is already registered"


def test_five_wrong_attempts_kill_the_code(mail_client, sink):
    def attempt(email, code):
        return post(mail_client, "/passport/signup", {
            "account": email, "pwd": PASSWORD, "rsa_encrypt": "0", "code": code})

    code = request_code(mail_client, sink, "heidi@example.com")
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for _ in range(5):
        assert refused(attempt("heidi@example.com", wrong)) == CODE_INVALID
    assert refused(attempt("heidi@example.com", code)) == CODE_INVALID

    # Four wrong guesses leave the right code usable.
    code = request_code(mail_client, sink, "ivan@example.com")
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for guess in (wrong, wrong, "", "１２３４５６"):
        refused(attempt("ivan@example.com", guess or "000000x"))
    success(attempt("ivan@example.com", code))


def test_findpassword_resets_the_password(mail_client, sink):
    sign_up(mail_client, sink, "judy@example.com")
    pem = public_key(mail_client)
    code = request_code(mail_client, sink, "judy@example.com", count=2)
    # A JSON body, as every POST endpoint accepts.
    success(post(mail_client, "/passport/findpassword", json={
        "type": "email", "account": "judy@example.com", "code": code,
        "pwd": rsa_encrypt(pem, "a new password")}))
    assert refused(log_in(mail_client, "judy@example.com")) == LOGIN_FAILED
    assert success(log_in(mail_client, "judy@example.com", "a new password"))["uid"] == "kybqdp"

    # A code mailed to an address with no account resets nothing.
    code = request_code(mail_client, sink, "nobody@example.com")
    assert refused(post(mail_client, "/passport/findpassword", {
        "account": "nobody@example.com", "code": code, "pwd": "x", "rsa_encrypt": "0"})) == CODE_INVALID


def test_refreshtoken(mail_client, sink):
    user = sign_up(mail_client, sink, "ken@example.com")
    for method in ("GET", "POST"):
        resp = mail_client.open("/refreshtoken", method=method,
                                headers={"imboy-refreshtoken": user["refreshtoken"]})
        token = success(resp.get_json())["token"]
        assert whoami(mail_client, token) == user["uid"]
        # The new token is an access token, not another refresh token.
        assert refused(get(mail_client, "/refreshtoken", headers={"imboy-refreshtoken": token}), 706)
    assert refused(get(mail_client, "/refreshtoken", headers={"imboy-refreshtoken": user["token"]}), 706)
    assert refused(get(mail_client, "/refreshtoken"), 706)
    assert refused(get(mail_client, "/refreshtoken", headers={"imboy-refreshtoken": "x.y.z"}), 706)
    # The refresh token is not an access token.
    assert refused(get(mail_client, "/user/open_info", query_string={"id": user["uid"]},
                       headers={"authorization": user["refreshtoken"]})) == "Does not support refreshtoken"


def test_legacy_password_hashes_log_in_and_are_upgraded(app, client):
    imboy = app.extensions["imboy"]
    legacy = {
        "hmac@example.com": passwords.legacy_hmac_sha512_hash("old hmac password", 1650000000),
        "md5@example.com": passwords.legacy_md5_hash("old md5 password"),
    }
    plain = {"hmac@example.com": "old hmac password", "md5@example.com": "old md5 password"}
    for email, stored in legacy.items():
        uid = imboy.accounts.do_create_user(email, "placeholder")
        imboy.db.run("test.legacy", users_repo.set_password, uid, stored)

        def stored_hash(uid=uid):
            return imboy.db.run("test.read", users_repo.credentials_by, "email", email)["password"]

        assert refused(log_in(client, email, "not it")) == LOGIN_FAILED
        assert stored_hash() == stored  # a failed login upgrades nothing
        assert success(log_in(client, email, plain[email]))["uid"] == ids.encode(uid)
        upgraded = stored_hash()
        assert upgraded.startswith("scrypt$") and upgraded != stored
        assert passwords.verify_password(plain[email], upgraded) == (True, False)
        assert success(log_in(client, email, plain[email]))["uid"] == ids.encode(uid)
        assert stored_hash() == upgraded  # a current hash is left alone
        assert refused(log_in(client, email, "not it")) == LOGIN_FAILED


def test_concurrent_getcode_requests_send_one_mail(mail_app, sink, make_server):
    server = make_server(mail_app)

    def ask():
        resp = requests.post(server.url + "/passport/getcode", data={"account": "liz@example.com"},
                             timeout=10)
        return resp.json()

    jobs = [gevent.spawn(ask) for _ in range(6)]
    gevent.joinall(jobs, timeout=15, raise_error=True)
    assert [job.value["code"] for job in jobs] == [0] * 6
    code_from_mail(sink, "liz@example.com")
    assert len(mails_to(sink, "liz@example.com")) == 1


def test_concurrent_signups_with_one_code_make_one_account(mail_app, mail_client, sink, make_server):
    server = make_server(mail_app)
    code = request_code(mail_client, sink, "mia@example.com")
    form = {"account": "mia@example.com", "pwd": PASSWORD, "rsa_encrypt": "0", "code": code}

    def signup():
        return requests.post(server.url + "/passport/signup", data=form, timeout=10).json()

    jobs = [gevent.spawn(signup) for _ in range(4)]
    gevent.joinall(jobs, timeout=15, raise_error=True)
    codes = sorted(job.value["code"] for job in jobs)
    assert codes == [0, 1, 1, 1], [job.value for job in jobs]
    for job in jobs:
        if job.value["code"]:
            assert job.value["msg"] in (CODE_INVALID, "This email is already registered")
    assert success(log_in(mail_client, "mia@example.com"))["uid"] == "kybqdp"
