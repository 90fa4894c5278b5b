"""Probes (/healthz, /readyz) and the admin notice endpoint.

The probes answer plain JSON with HTTP 200 or 503, not the envelope.  A
database that is down is a second app pointed at a MariaDB port where
nothing listens; Redis is checked against the local server and a dead port.
"""
from __future__ import annotations

import os

import pytest
import redis

from imboy import create_app, ids

from .helpers import WsClient
from .ops_support import ADMIN, envelope, free_port

IN_CI = os.environ.get("CI", "").lower() == "true"
REDIS_URL = os.environ.get("IMBOY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def probe(client, path: str) -> tuple[int, dict]:
    resp = client.get(path)
    assert resp.content_type == "application/json; charset=utf-8"
    assert resp.headers["Cache-Control"] == "no-store"
    return resp.status_code, resp.get_json()


def test_healthz_and_readyz_when_all_is_well(client):
    assert probe(client, "/healthz") == (200, {"status": "ok"})
    assert probe(client, "/readyz") == (200, {"status": "ok", "checks": {"database": "ok"}})


@pytest.fixture
def app_without_database(tmp_path, rsa_key_path):
    """An app whose MariaDB does not answer (nothing listens on its port)."""
    app = create_app({
        "DATABASE_URL": f"mysql://root@127.0.0.1:{free_port()}/imboy",
        "MIGRATE_ON_START": False, "SECRET_KEY": "test-secret", "LOG_LEVEL": "WARNING",
        "INSTANCE_PATH": str(tmp_path / "instance"), "RSA_PRIVATE_KEY": rsa_key_path,
        "DB_CONNECT_TIMEOUT": 1.0, "DB_POOL_TIMEOUT": 1.0,
    })
    yield app
    app.extensions["imboy"].close()


def test_database_down_is_not_ready_but_alive(app_without_database):
    client = app_without_database.test_client()
    assert probe(client, "/healthz") == (200, {"status": "ok"})
    status, body = probe(client, "/readyz")
    assert status == 503
    assert body["status"] == "unavailable" and body["failed"] == ["database"]
    assert body["checks"]["database"] != "ok"
    # The API itself answers with the envelope, not a 500.
    resp = client.post("/passport/login", data={"account": "a@example.com", "pwd": "x", "rsa_encrypt": "0"})
    assert envelope(resp)["code"] == 1


def _redis_or_skip() -> None:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError as exc:
        if IN_CI:
            pytest.fail(f"Redis is required under CI=true: {exc}")
        pytest.skip(f"Redis not reachable: {exc}")


def test_readyz_checks_redis_when_configured(app, client):
    """REDIS_URL is set on the built app's settings, which the probe reads on
    each call, so the test does not start the Redis registry itself."""
    _redis_or_skip()
    config = app.extensions["imboy"].config
    config["REDIS_URL"] = REDIS_URL
    assert probe(client, "/readyz") == (200, {"status": "ok", "checks": {"database": "ok", "redis": "ok"}})
    config["REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/0"
    status, body = probe(client, "/readyz")
    assert status == 503
    assert body["failed"] == ["redis"]
    assert body["checks"]["database"] == "ok" and body["checks"]["redis"] != "ok"


# --- POST /admin/notice ------------------------------------------------------------
@pytest.fixture
def admin_app(make_app):
    return make_app(ADMIN_UIDS=(ADMIN,))


def admin_headers(app) -> dict[str, str]:
    return {"authorization": app.extensions["imboy"].tokens.access_token(ids.decode(ADMIN))}


def test_admin_notice_reaches_the_user_online(admin_app, make_server, users):
    a, b = users(2)
    live = make_server(admin_app)
    ws = WsClient(live.ws_url, a.token)
    try:
        ws.send_text("ping")
        ws.expect(lambda f: f == "pong2")
        client = admin_app.test_client()
        body = envelope(client.post("/admin/notice", data={"uid": a.hashid, "text": "hello"},
                                    headers=admin_headers(admin_app)))
        assert body["code"] == 0 and body["payload"] == {"users": 1, "connections": 1}
        frame = ws.expect_type("S2C")
        assert frame["payload"] == {"msg_type": "notice", "content": "hello"}
        assert frame["from"] == "" and frame["to"] == a.hashid
        body = envelope(client.post("/admin/notice", json={"uid": b.hashid, "text": "hello"},
                                    headers=admin_headers(admin_app)))
        assert body["payload"] == {"users": 0, "connections": 0}
        body = envelope(client.post("/admin/notice", json={"text": "all"}, headers=admin_headers(admin_app)))
        assert body["payload"] == {"users": 1, "connections": 1}
        assert ws.expect_type("S2C")["payload"]["content"] == "all"
    finally:
        ws.close()


def test_admin_notice_refusals(admin_app, users):
    (a,) = users(1)
    client = admin_app.test_client()
    admin = admin_headers(admin_app)
    assert envelope(client.post("/admin/notice", data={"text": "x"}))["code"] == 706
    body = envelope(client.post("/admin/notice", data={"text": "x"}, headers=a.headers))
    assert body["code"] == 1 and "administrators" in body["msg"]
    assert envelope(client.post("/admin/notice", data={"uid": "bad!", "text": "x"}, headers=admin))["code"] == 1
    assert "text" in envelope(client.post("/admin/notice", data={}, headers=admin))["msg"]
    body = envelope(client.post("/admin/notice", data={"text": "x" * 4001}, headers=admin))
    assert body["code"] == 1 and "4000" in body["msg"]
    assert envelope(client.post("/admin/notice", data={"text": "   "}, headers=admin))["code"] == 1
