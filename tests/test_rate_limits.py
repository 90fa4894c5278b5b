"""Brute force and mail flooding: passport endpoints limited per IP and per account."""
from __future__ import annotations

import uuid

import pytest
import redis

from imboy.config import load_config
from imboy.errors import RateLimited
from imboy.ratelimit import RateLimiter

from .conftest import require_service


def _login(client, account, ip="10.0.0.1", pwd="wrong"):
    return client.post("/passport/login", data={"account": account, "pwd": pwd, "rsa_encrypt": "0"},
                       environ_base={"REMOTE_ADDR": ip})


def test_login_is_limited_per_account_with_429_and_the_envelope(make_app):
    app = make_app(RATE_LIMITS={"login_account": "3/300"})
    client = app.test_client()
    for _ in range(3):
        r = _login(client, "victim@example.com")
        assert r.status_code == 200 and r.get_json()["code"] == 1
    r = _login(client, "victim@example.com", ip="10.0.0.2")
    assert r.status_code == 429
    body = r.get_json()
    assert body["code"] == 1 and "Too many" in body["msg"] and body["payload"] == []
    # The same account with other letter case counts as the same account.
    assert _login(client, "VICTIM@example.com", ip="10.0.0.3").status_code == 429
    # Another account from the same address is not affected.
    assert _login(client, "other@example.com").status_code == 200


def test_login_is_limited_per_address(make_app):
    app = make_app(RATE_LIMITS={"login_ip": "4/300", "login_account": "0"})
    client = app.test_client()
    for i in range(4):
        assert _login(client, f"u{i}@example.com").status_code == 200
    assert _login(client, "u9@example.com").status_code == 429
    assert _login(client, "u9@example.com", ip="10.9.9.9").status_code == 200


def test_a_correct_password_is_refused_too_once_limited(make_app):
    """The point of the limit: guessing stops even when a guess would be right."""
    app = make_app(RATE_LIMITS={"login_account": "2/300"})
    imboy = app.extensions["imboy"]
    imboy.accounts.do_create_user("owner@example.com", "right-password")
    client = app.test_client()
    assert _login(client, "owner@example.com").get_json()["code"] == 1
    assert _login(client, "owner@example.com").get_json()["code"] == 1
    r = _login(client, "owner@example.com", pwd="right-password")
    assert r.status_code == 429


def test_getcode_flooding_one_address_is_limited(make_app):
    app = make_app(RATE_LIMITS={"getcode_account": "2/3600"}, CODE_RESEND_INTERVAL=0.001)
    client = app.test_client()
    for _ in range(2):
        r = client.post("/passport/getcode", data={"account": "flood@example.com"})
        assert r.get_json()["code"] == 0
    r = client.post("/passport/getcode", data={"account": "flood@example.com"})
    assert r.status_code == 429 and r.get_json()["code"] == 1


def test_findpassword_is_limited(make_app):
    app = make_app(RATE_LIMITS={"findpassword_account": "2/3600"})
    client = app.test_client()
    data = {"account": "x@example.com", "code": "000000", "pwd": "new", "rsa_encrypt": "0"}
    assert [client.post("/passport/findpassword", data=data).status_code for _ in range(3)] == [200, 200, 429]


def test_windows_are_shared_through_redis():
    """With Redis the limit holds across workers: two limiters share one window."""
    client = redis.Redis(socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        require_service("Redis", exc)
    rule = {"login_account": "3/60"}
    first, second = RateLimiter(rule, client), RateLimiter(rule, client)
    account = f"account:{uuid.uuid4().hex}@example.com"
    first.check("login", [account])
    second.check("login", [account])
    first.check("login", [account])
    with pytest.raises(RateLimited):
        second.check("login", [account])


def test_limits_are_configurable_and_validated():
    config = load_config({"IMBOY_RATE_LIMITS": "login_ip=60/300, getcode_account=0"})
    assert config["RATE_LIMITS"] == {"login_ip": "60/300", "getcode_account": "0"}
    with pytest.raises(SystemExit):
        load_config({"IMBOY_RATE_LIMITS": "nonsense=1/2"})
