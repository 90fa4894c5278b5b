"""A real server process stopped and started between send and connect loses nothing acked."""
from __future__ import annotations

import signal

import pytest

from .helpers import ServerProcess, WsClient
from .ws_support import befriend, expect_close, fast_passwords, take  # noqa: F401

def _process(settings: dict, log_path: str) -> ServerProcess:
    """`python wsgi.py` on the test's database, as production starts it."""
    return ServerProcess({"IMBOY_DATABASE_URL": settings["DATABASE_URL"],
                          "IMBOY_SECRET_KEY": settings["SECRET_KEY"],
                          "IMBOY_INSTANCE_PATH": settings["INSTANCE_PATH"],
                          "IMBOY_RSA_PRIVATE_KEY": settings["RSA_PRIVATE_KEY"],
                          "IMBOY_ACK_RETRY_SCHEDULE": "0.4,0.6"}, log_path)


@pytest.fixture
def server_process(settings, tmp_path):
    proc = _process(settings, str(tmp_path / "server.log"))
    yield proc
    proc.kill()


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_acked_messages_survive_a_restart(how, imboy, users, server_process):
    a, b = users(2)  # made in-process, on the same database as the server process
    befriend(imboy, a, b)
    server_process.start()
    ca = WsClient(server_process.ws_url, a.token)
    sent = [f"restart-{n}" for n in range(3)]
    for n, msg_id in enumerate(sent):
        ca.send_json({"id": msg_id, "type": "C2C", "to": b.hashid, "payload": {"n": n}})
        assert ca.expect_type("C2C_SERVER_ACK")["id"] == msg_id
    if how == "SIGTERM":
        server_process.proc.send_signal(signal.SIGTERM)
        # A graceful stop tells clients to go elsewhere, then exits cleanly.
        assert expect_close(ca) == 1001
        assert server_process.proc.wait(10) == 0, server_process.log()
    else:
        assert server_process.stop(signal.SIGKILL) == -signal.SIGKILL
    ca.close()
    server_process.start()
    cb = WsClient(server_process.ws_url, b.token)
    got = take(cb, 3, "C2C")
    assert [f["id"] for f in got] == sent
    assert [f["payload"] for f in got] == [{"n": 0}, {"n": 1}, {"n": 2}]
    cb.close()
    server_process.stop(signal.SIGTERM)
