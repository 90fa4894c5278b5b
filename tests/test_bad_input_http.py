"""Bad input to the passport and user endpoints: always the envelope with
code 1 and a readable msg (never a 500 or "Internal error"), and nothing
stored is damaged.  On SQLite and MariaDB.
"""
from __future__ import annotations

import base64
import os

import gevent
import pytest
import requests

from imboy.repositories import codes as codes_repo
from imboy.repositories import users as users_repo

from .passport_support import (LOGIN_FAILED, PASSWORD, call, check_envelope, get, log_in,
                               mail_app, mail_client, post, public_key, refused,  # noqa: F401
                               request_code, rsa_encrypt, sign_up, sink, success)

# endpoint -> (method, a complete valid set of parameters, required names)
ENDPOINTS = {
    "/passport/getcode": ("POST", {"type": "email", "account": "new@example.com"}, ["account"]),
    "/passport/signup": ("POST", {"type": "email", "account": "new@example.com", "pwd": PASSWORD,
                                  "rsa_encrypt": "0", "code": "123456", "ref_uid": "kybqdp",
                                  "cosv": "test"}, ["account", "pwd", "code"]),
    "/passport/login": ("POST", {"type": "email", "account": "user1@example.com", "pwd": PASSWORD,
                                 "rsa_encrypt": "0"}, ["account", "pwd"]),
    "/passport/findpassword": ("POST", {"type": "email", "account": "user1@example.com",
                                        "code": "123456", "pwd": PASSWORD, "rsa_encrypt": "0"},
                               ["account", "code", "pwd"]),
    "/user/change_sign": ("POST", {"sign": "a sign"}, ["sign"]),
    "/user/change_state": ("POST", {"state": "hide"}, ["state"]),
    "/user/open_info": ("GET", {"id": "kybqdp"}, ["id"]),
}
NOT_STRINGS = [[], ["a"], {}, {"a": "b"}, True, False, 1.5, 10**30, -(10**30)]
SQL_NASTIES = ["'; DROP TABLE user; --", "' OR '1'='1", "\" OR \"\"=\"", "\\", "\\'", "'", '"',
               "%", "_", "%_%", "a%b_c", "`user`", "1; SELECT SLEEP(3)", "' UNION SELECT password FROM user --",
               "\\0\\n\\r\\Z", "😀'"]


def send(client, path: str, params: dict, user, as_json: bool) -> dict:
    method = ENDPOINTS[path][0]
    headers = user.headers if path.startswith("/user/") else {}
    if method == "GET":
        return call(client, method, path, query_string=params, headers=headers)
    if as_json:
        return call(client, method, path, json=params, headers=headers)
    return call(client, method, path, data=params, headers=headers)


def nothing_damaged(imboy, client, user) -> None:
    """The user's row is intact, they can log in, and no code was stored."""
    row = imboy.db.run("test.read", users_repo.credentials_by, "email", user.email)
    assert row["id"] == user.id and row["status"] == 1
    assert success(log_in(client, user.email))["uid"] == user.hashid
    assert imboy.db.run("test.code", codes_repo.get, "email:new@example.com") is None


@pytest.fixture
def user(users):
    (u,) = users(1, password=PASSWORD)
    return u


def test_missing_parameters(client, imboy, user):
    for path, (_, valid, required) in ENDPOINTS.items():
        for name in required:
            for as_json in (False, True):
                params = {k: v for k, v in valid.items() if k != name}
                assert refused(send(client, path, params, user, as_json)) == f"Missing parameter: {name}"
                params[name] = None if as_json else ""
                if name == "sign" and not as_json:
                    continue  # an empty sign is a value: it clears the signature
                assert refused(send(client, path, params, user, as_json)) == f"Missing parameter: {name}"
    nothing_damaged(imboy, client, user)


def test_wrong_types_in_json_bodies(client, imboy, user):
    for path, (method, valid, _) in ENDPOINTS.items():
        if method != "POST":
            continue
        for name in valid:
            for value in NOT_STRINGS:
                body = send(client, path, dict(valid, **{name: value}), user, as_json=True)
                assert refused(body) == f"Invalid parameter: {name} must be a string", (path, name, value)
    # Numbers are read as their decimal text: here none makes a valid value.
    assert refused(send(client, "/passport/getcode", {"account": 12345}, user, True)) == "Invalid email address"
    assert refused(send(client, "/user/change_state", {"state": 1}, user, True))
    assert refused(send(client, "/passport/login", {"account": 123456789, "pwd": 1, "rsa_encrypt": 0},
                        user, True)) == LOGIN_FAILED
    assert refused(send(client, "/passport/login", {"account": user.email, "pwd": PASSWORD, "rsa_encrypt": 2},
                        user, True)) == "Invalid rsa_encrypt"
    assert success(send(client, "/user/change_sign", {"sign": 42}, user, True)) == []
    assert success(get(client, "/user/open_info", query_string={"id": user.hashid},
                       headers=user.headers))["sign"] == "42"
    nothing_damaged(imboy, client, user)


def test_body_over_the_limit(client, imboy, user, make_server, app):
    big = "x" * (1024 * 1024 + 1)
    for path in ("/passport/login", "/user/change_sign", "/passport/getcode"):
        for body in (post(client, path, {"sign": big, "account": big}, headers=user.headers),
                     post(client, path, json={"sign": big, "account": big}, headers=user.headers)):
            assert refused(body) == "Request body too large"
    # Through real sockets, with a length and chunked without one.
    server = make_server(app)
    url = server.url + "/user/change_sign"
    resp = requests.post(url, data={"sign": big}, headers=user.headers, timeout=10)
    check_envelope(resp.status_code, resp.headers["content-type"], resp.json())
    assert resp.json()["msg"] == "Request body too large"

    def chunks():
        yield b"sign="
        for _ in range(17):
            yield b"y" * 65536

    resp = requests.post(url, data=chunks(), timeout=10,
                         headers=dict(user.headers, **{"content-type": "application/x-www-form-urlencoded"}))
    check_envelope(resp.status_code, resp.headers["content-type"], resp.json())
    assert refused(resp.json()) == "Request body too large"
    # The server still answers, and the sign is untouched.
    info = requests.get(server.url + "/user/open_info", params={"id": user.hashid}, headers=user.headers,
                        timeout=10).json()
    assert info["payload"]["sign"] == ""
    # A chunked body within the limit is read whole.
    resp = requests.post(url, data=iter([b"sign=chunked", b"%20body"]), timeout=10,
                         headers=dict(user.headers, **{"content-type": "application/x-www-form-urlencoded"}))
    assert success(resp.json()) == []
    info = requests.get(server.url + "/user/open_info", params={"id": user.hashid}, headers=user.headers,
                        timeout=10).json()
    assert info["payload"]["sign"] == "chunked body"
    success(requests.post(url, data={"sign": ""}, headers=user.headers, timeout=10).json())
    nothing_damaged(imboy, client, user)


BAD_EMAILS = ["plain", "a@b", "a@@example.com", "a b@example.com", "a@example..com", "a@-example.com",
              "x" * 70 + "@example.com", "<a@example.com>", "a@example.com\r\nBcc: b@example.com",
              "a'b@example.com", "ä@example.com", "a@example.com,b@example.com", ".@", "@example.com"]


def test_invalid_email(client, imboy, user):
    for email in BAD_EMAILS:
        for path in ("/passport/getcode", "/passport/signup", "/passport/findpassword"):
            params = dict(ENDPOINTS[path][1], account=email)
            assert refused(send(client, path, params, user, False)) == "Invalid email address", (path, email)
    for email in BAD_EMAILS[:3]:
        assert refused(log_in(client, email)) == LOGIN_FAILED
    nothing_damaged(imboy, client, user)


def test_garbage_rsa_ciphertext(mail_app, mail_client, sink):
    imboy = mail_app.extensions["imboy"]
    pem = public_key(mail_client)
    sign_up(mail_client, sink, "rsa@example.com")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import padding
    key = serialization.load_pem_public_key(pem.encode())
    not_utf8 = base64.b64encode(key.encrypt(b"\xff\xfe\xfd", padding.PKCS1v15())).decode()
    garbage = ["not base64 !!", base64.b64encode(b"short").decode(), base64.b64encode(os.urandom(256)).decode(),
               "A" * 3000, "====", "\u00e9" * 10, not_utf8, rsa_encrypt(pem, "")]
    code = request_code(mail_client, sink, "rsa2@example.com")
    for pwd in garbage:
        for path, params in (("/passport/login", {"account": "rsa@example.com"}),
                             ("/passport/signup", {"account": "rsa2@example.com", "code": code}),
                             ("/passport/findpassword", {"account": "rsa@example.com", "code": code})):
            for explicit in (True, False):
                form = dict(params, pwd=pwd, **({"rsa_encrypt": "1"} if explicit else {}))
                msg = refused(post(mail_client, path, form))
                assert msg in ("Invalid password encryption", "Invalid password"), (path, pwd, msg)
    for flag in ("2", "yes", "-1", "true"):
        assert refused(log_in(mail_client, "rsa@example.com", rsa_encrypt=flag)) == "Invalid rsa_encrypt"
    # None of it spent the code or changed the password.
    success(post(mail_client, "/passport/signup", {"account": "rsa2@example.com", "code": code,
                                                   "pwd": rsa_encrypt(pem, PASSWORD)}))
    assert success(log_in(mail_client, "rsa@example.com"))["uid"] == "kybqdp"
    assert imboy.db.run("test.count", lambda tx: tx.scalar("SELECT COUNT(*) FROM `user`")) == 2


def test_non_utf8_bytes(client, imboy, user):
    form_type = "application/x-www-form-urlencoded"
    for raw in (b"account=\xff\xfe%40example.com&pwd=x&rsa_encrypt=0", b"account=%FF%FE&pwd=x&rsa_encrypt=0",
                b"account=a%C0%80b&pwd=x&rsa_encrypt=0"):
        assert refused(post(client, "/passport/login", raw, content_type=form_type)) \
            == "The request body is not valid UTF-8"
    for raw in (b"sign=caf\xe9", b"sign=caf%E9"):
        assert refused(post(client, "/user/change_sign", raw, content_type=form_type,
                            headers=user.headers)) == "The request body is not valid UTF-8"
    assert refused(post(client, "/user/change_sign", b'{"sign": "caf\xe9"}', content_type="application/json",
                        headers=user.headers)) == "Malformed JSON body"
    assert refused(get(client, "/user/open_info?id=%ff%fe", headers=user.headers)) \
        == "The query string is not valid UTF-8"
    # NUL and lone surrogates (valid JSON escapes, not valid text).
    for sign in ("a\x00b", "\ud800", "x\udfff"):
        assert refused(post(client, "/user/change_sign", json={"sign": sign}, headers=user.headers)) \
            == "Invalid characters in parameter: sign"
    assert success(get(client, "/user/open_info", query_string={"id": user.hashid},
                       headers=user.headers))["sign"] == ""
    nothing_damaged(imboy, client, user)


def test_malformed_and_non_object_json_bodies(client, imboy, user):
    cases = {b'{"sign": ': "Malformed JSON body", b"{sign: 1}": "Malformed JSON body",
             b'{"sign": "a"} trailing': "Malformed JSON body", b"\xff": "Malformed JSON body",
             b'["sign", "a"]': "The JSON body must be an object", b'"a sign"': "The JSON body must be an object",
             b"null": "The JSON body must be an object", b"42": "The JSON body must be an object",
             b"[" * 100000: "Malformed JSON body"}
    for raw, msg in cases.items():
        for path in ("/user/change_sign", "/passport/login", "/passport/getcode"):
            for ctype in ("application/json", "application/json; charset=utf-8"):
                body = post(client, path, raw, content_type=ctype, headers=user.headers)
                assert refused(body) == msg, (path, raw[:20])
    nothing_damaged(imboy, client, user)


def test_sql_metacharacters_are_data(client, imboy, user, users):
    (other,) = users(1)
    for path, (method, valid, _) in ENDPOINTS.items():
        for name in valid:
            if path == "/passport/login" and name in ("account", "pwd"):
                continue  # below, with fewer KDF runs
            for nasty in SQL_NASTIES:
                body = send(client, path, dict(valid, **{name: nasty}), user, as_json=False)
                if body["code"] != 0:
                    refused(body)
    # A signature holding any of them comes back byte for byte.
    for nasty in SQL_NASTIES + ["\n".join(SQL_NASTIES)]:
        success(post(client, "/user/change_sign", {"sign": nasty}, headers=user.headers))
        assert success(get(client, "/user/open_info", query_string={"id": user.hashid},
                           headers=other.headers))["sign"] == nasty
    for nasty in SQL_NASTIES[:6]:
        assert refused(log_in(client, nasty)) == LOGIN_FAILED
        assert refused(log_in(client, user.email, nasty)) == LOGIN_FAILED
    # Every table is still there, with its rows.
    count = imboy.db.run("test.count", lambda tx: tx.scalar("SELECT COUNT(*) FROM `user`"))
    assert count == 2
    for table in ("user", "verification_code", "user_friend", "msg_c2c", "imboy_schema_version"):
        imboy.db.run("test.table", lambda tx: tx.all(f"SELECT * FROM `{table}` LIMIT 1"))
    nothing_damaged(imboy, client, user)


def test_sql_metacharacters_in_credentials_and_emails(mail_app, mail_client, sink):
    imboy = mail_app.extensions["imboy"]
    nasty_pwd = "'; DROP TABLE user; -- \\ % _ \""
    cosv = "'; DROP TABLE user; --\\%_"
    code = request_code(mail_client, sink, "a%b_c@example.com")
    created = success(post(mail_client, "/passport/signup", {
        "account": "a%b_c@example.com", "pwd": nasty_pwd, "rsa_encrypt": "0", "code": code, "cosv": cosv}))
    assert created["nickname"] == "a%b_c"
    assert success(log_in(mail_client, "a%b_c@example.com", nasty_pwd))["uid"] == created["uid"]
    # % and _ are not wildcards anywhere.
    for lookalike in ("a_b%c@example.com", "a%b%c@example.com", "a_b_c@example.com", "%@example.com"):
        assert refused(log_in(mail_client, lookalike, nasty_pwd)) == LOGIN_FAILED
    assert refused(log_in(mail_client, "%", nasty_pwd)) == LOGIN_FAILED
    row = imboy.db.run("test.read", lambda tx: tx.one("SELECT `reg_cosv` FROM `user` WHERE `id` = 1"))
    assert row["reg_cosv"] == cosv


def test_concurrent_bad_requests_leave_the_server_healthy(app, user, make_server):
    server = make_server(app)

    def bad(i):
        return requests.post(server.url + "/passport/login", data=b"account=\xff&pwd=" + b"%" * i,
                             headers={"content-type": "application/x-www-form-urlencoded"}, timeout=10)

    jobs = [gevent.spawn(bad, i) for i in range(20)]
    gevent.joinall(jobs, timeout=15, raise_error=True)
    for job in jobs:
        check_envelope(job.value.status_code, job.value.headers["content-type"], job.value.json())
        assert job.value.json()["code"] == 1
    assert app.extensions["imboy"].db.pool_in_use == 0
