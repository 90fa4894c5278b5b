"""Faults: the database goes away and comes back; the pool is full of slow queries.

The outage test runs a MariaDB server of its own (tests/hardening_support.py
PrivateMariaDB) and kills it, so the shared server other tests use is never
touched.  A client that stops reading is covered by
tests/test_ws_connection.py::test_a_client_that_stops_reading_is_dropped_and_gets_everything_later
and tests/test_hardening_ws.py::test_the_send_queue_is_bounded_in_bytes; a worker killed with
-9 under load by tests/test_multinode.py.
"""
from __future__ import annotations

import shutil
import signal
import time

import gevent
import pytest
import requests

from imboy import create_app

from .conftest import TEST_SETTINGS
from .hardening_support import PrivateMariaDB, is_frame
from .helpers import wait_for as wait_until
from .helpers import make_user
from .ws_support import befriend, connect, fast_passwords, raw_handshake  # noqa: F401


@pytest.fixture
def private_mariadb(tmp_path):
    workdir = tmp_path / "mariadb"
    server = PrivateMariaDB(str(workdir))
    server.start()
    yield server
    server.stop(signal.SIGKILL)
    shutil.rmtree(workdir, ignore_errors=True)  # ~100 MB of data files


@pytest.fixture
def outage_app(private_mariadb, tmp_path, rsa_key_path):
    url = private_mariadb.create_database("imboy_faults")
    app = create_app(dict(TEST_SETTINGS, DATABASE_URL=url, INSTANCE_PATH=str(tmp_path / "instance"),
                          RSA_PRIVATE_KEY=rsa_key_path, DB_CONNECT_TIMEOUT=1.0, DB_POOL_TIMEOUT=2.0,
                          DB_QUERY_TIMEOUT=5.0, ACK_RETRY_SCHEDULE=(30.0,)))
    yield app
    app.extensions["imboy"].close()


def test_a_database_outage_gives_error_frames_and_loses_nothing_acked(outage_app, private_mariadb, make_server):
    imboy = outage_app.extensions["imboy"]
    server = make_server(outage_app)
    a = make_user(imboy, "a@example.com")
    b = make_user(imboy, "b@example.com")
    befriend(imboy, a, b)
    ca = connect(server, a)
    acked: list[str] = []
    refused: list[str] = []
    sent: list[str] = []

    def send(n: int) -> None:
        msg_id = f"m-{n}"
        sent.append(msg_id)
        ca.send_json({"id": msg_id, "type": "C2C", "to": b.hashid, "payload": {"n": n}})
        answer = ca.expect(lambda f: isinstance(f, dict) and f.get("id") == msg_id, timeout=15)
        if answer["type"] == "C2C_SERVER_ACK":
            acked.append(msg_id)
        else:
            assert answer["type"] == "error" and answer["code"] == 1, answer
            assert answer["msg"] in ("Database unavailable", "Database busy, try again"), answer
            refused.append(msg_id)

    def traffic() -> None:
        """A sender that never stops: one message after the other, each answered."""
        for n in range(100000):
            send(n)
            gevent.sleep(0.005)

    sender = gevent.spawn(traffic)
    wait_until(lambda: len(acked) >= 10, what="traffic")
    assert not refused
    # The database dies under traffic (SIGKILL: no goodbye to its clients).
    private_mariadb.stop(signal.SIGKILL)
    outage_from = len(sent)
    wait_until(lambda: len(refused) >= 5, timeout=15, what="refusals during the outage")
    # The server itself is fine: probes, handshakes and HTTP refuse with a reason.
    assert requests.get(server.url + "/healthz", timeout=5).status_code == 200
    assert requests.get(server.url + "/readyz", timeout=10).status_code == 503
    resp = raw_handshake(server.port, headers={"Sec-WebSocket-Protocol": "text", "authorization": b.token})
    assert resp.status == 503
    resp.sock.close()
    body = requests.get(server.url + "/user/open_info", params={"id": a.hashid}, headers=b.headers,
                        timeout=10).json()
    assert body["code"] == 1 and body["msg"] in ("Database unavailable", "Database busy, try again")
    # It comes back on the same data directory and port: the server reconnects by itself.
    private_mariadb.start()
    acked_before = len(acked)
    wait_until(lambda: len(acked) >= acked_before + 5, timeout=20, what="acks after the database returned")
    sender.kill()
    assert all(m in acked for m in sent[:10]) and len(sent) > outage_from + 5
    assert refused and set(refused).isdisjoint(acked)
    ca.send_text("ping")
    assert ca.expect(lambda f: f == "pong2") == "pong2"
    # Every acked message reaches the recipient, oldest first; nothing was acked twice.
    cb = connect(server, b, timeout=10)
    delivered = []
    while not set(acked) <= set(delivered):
        frame = cb.expect(is_frame("C2C"), timeout=10)
        delivered.append(frame["id"])
    assert len(delivered) == len(set(delivered))
    assert set(delivered) <= set(sent)
    assert [m for m in delivered if m in acked] == acked
    assert requests.get(server.url + "/readyz", timeout=10).status_code == 200
    ca.close()
    cb.close()


def test_a_full_pool_fails_fast_with_a_clear_error(make_app, make_server, users, backend):
    app = make_app(DB_POOL_SIZE=2, DB_POOL_TIMEOUT=0.5)
    imboy = app.extensions["imboy"]
    server = make_server(app)
    a, b = users(2)
    befriend(imboy, a, b)
    ca = connect(server, a)
    hold_for = 2.0

    holding = []

    def slow(tx):
        holding.append(tx)
        if tx.dialect == "mysql":
            return tx.scalar("SELECT SLEEP(%s)", (hold_for,))
        tx.scalar("SELECT 1")
        gevent.sleep(hold_for)  # SQLite has no SLEEP(): hold the (single) connection instead

    def hold() -> None:
        try:
            imboy.db.run("test.slow", slow)
        except Exception:
            pass  # SQLite's pool is one connection: a second holder times out

    holders = [gevent.spawn(hold) for _ in range(2)]
    # The holders themselves fill the pool (not a transaction of the handshake's, about to end).
    wait_until(lambda: len(holding) == imboy.db.pool_size == imboy.db.pool_in_use, what="the pool to fill")
    started = time.monotonic()

    def timed_request() -> tuple[float, dict]:
        t0 = time.monotonic()
        body = requests.get(server.url + "/user/open_info", params={"id": a.hashid}, headers=b.headers,
                            timeout=10).json()
        return time.monotonic() - t0, body

    jobs = [gevent.spawn(timed_request) for _ in range(10)]
    ca.send_json({"id": "busy-1", "type": "C2C", "to": b.hashid, "payload": "x"})
    err = ca.expect(is_frame("error"))
    assert err["id"] == "busy-1" and err["code"] == 1 and err["msg"] == "Database busy, try again"
    for job in jobs:
        took, body = job.get(timeout=10)
        assert body == {"code": 1, "msg": "Database busy, try again", "payload": []}
        # Failing fast means: long before the slow queries end, not queued behind them.
        assert took < hold_for * 0.75, took
    assert time.monotonic() - started < hold_for, "every refusal came while the pool was still full"
    gevent.joinall(holders, timeout=10)
    # Nothing piled up: the pool is free and service is back.
    assert imboy.db.pool_in_use == 0
    ca.send_json({"id": "busy-2", "type": "C2C", "to": b.hashid, "payload": "x"})
    assert ca.expect(lambda f: isinstance(f, dict) and f.get("id") == "busy-2")["type"] == "C2C_SERVER_ACK"
    ca.close()
