"""Logs as an operator reads them on stderr: one line per event, text or
JSON, a request id on every HTTP line, connection id and uid on WebSocket
lines, and no token, password or verification code.
"""
from __future__ import annotations

import json
import logging
import re

import pytest

from imboy import ids, logs

from .ops_support import ADMIN, envelope

try:
    from tests.smtp_sink import SmtpSink
except ImportError:  # tests/ run as rootdir-less modules
    from smtp_sink import SmtpSink

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJ1aWQiOiJreWJxZHAifQ.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
PASSWORD = "Tr0ub4dor&3-secret"


def stderr_lines(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def json_lines(capsys) -> list[dict]:
    """Every line on stderr, each of which must be one JSON object."""
    return [json.loads(line) for line in stderr_lines(capsys)]


# --- redaction ------------------------------------------------------------------------
@pytest.mark.parametrize("line,secret", [
    (f"authorization: {JWT}", JWT),
    (f"Bearer {JWT} refused", JWT),
    ("POST /passport/login?account=a&pwd=hunter2&x=1", "hunter2"),
    ("password=hunter2", "hunter2"),
    ("password: hunter2", "hunter2"),
    ('{"account": "a@b.c", "pwd": "hunter2"}', "hunter2"),
    ("{'password': 'hunter2'}", "hunter2"),
    ("signup code=483920 for a@b.c", "483920"),
    ('{"code": "483920"}', "483920"),
    ('{"code":483920}', "483920"),
    ("refreshtoken=abc.def.ghi", "abc.def.ghi"),
])
def test_redact_masks_secrets(line, secret):
    cleaned = logs.redact(line)
    assert secret not in cleaned
    assert logs.MASK in cleaned or "<token>" in cleaned


def test_redact_keeps_protocol_and_close_codes_and_stays_json():
    assert logs.redact("error frame code=706 sent") == "error frame code=706 sent"
    assert logs.redact("closed with code=1009") == "closed with code=1009"
    assert json.loads(logs.redact('{"code":706,"msg":"Token invalid"}')) == {"code": 706, "msg": "Token invalid"}
    assert json.loads(logs.redact('{"msg":"x","code":123456}')) == {"msg": "x", "code": logs.MASK}


# --- HTTP lines -------------------------------------------------------------------------
def test_json_lines_carry_the_request_id(make_app, capsys):
    app = make_app(LOG_FORMAT="json", LOG_LEVEL="INFO", ADMIN_UIDS=(ADMIN,))
    client = app.test_client()
    capsys.readouterr()
    resp = client.get("/init?pwd=hunter2&x=1", headers={"X-Request-ID": "lb-7f3a.42"})
    assert resp.headers["X-Request-ID"] == "lb-7f3a.42"
    lines = json_lines(capsys)
    access = [e for e in lines if e["logger"] == "imboy.access"]
    assert len(access) == 1
    assert access[0]["request_id"] == "lb-7f3a.42"
    assert access[0]["method"] == "GET" and access[0]["path"] == "/init" and access[0]["status"] == 200
    assert isinstance(access[0]["duration_ms"], (int, float)) and access[0]["level"] == "INFO"
    assert "hunter2" not in json.dumps(lines)

    # A request that logs more than its access line: all lines share one new id.
    token = app.extensions["imboy"].tokens.access_token(ids.decode(ADMIN))
    resp = client.post("/admin/notice", data={"text": "hi"}, headers={"authorization": token,
                                                                      "X-Request-ID": "bad id!\x01"})
    assert envelope(resp)["code"] == 0
    rid = resp.headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", rid)
    lines = json_lines(capsys)
    assert [e["logger"] for e in lines] == ["imboy.health", "imboy.access"]
    assert {e["request_id"] for e in lines} == {rid}
    assert token not in json.dumps(lines)
    # Each request gets its own id; a 404 and an envelope refusal are logged too.
    r1, r2 = client.get("/no/such/path"), client.post("/user/change_sign", data={"sign": "x"})
    assert r1.status_code == 404 and envelope(r2)["code"] == 706
    lines = json_lines(capsys)
    assert [(e["path"], e["status"]) for e in lines] == [("/no/such/path", 404), ("/user/change_sign", 200)]
    assert lines[0]["request_id"] == r1.headers["X-Request-ID"] != r2.headers["X-Request-ID"]


def test_text_lines(make_app, capsys):
    client = make_app(LOG_FORMAT="text", LOG_LEVEL="INFO").test_client()
    capsys.readouterr()
    resp = client.get("/init", headers={"X-Request-ID": "abc-123"})
    (line,) = stderr_lines(capsys)
    assert re.search(r" INFO imboy\.access: GET /init 200 \d+\.\dms request_id=abc-123$", line), line
    assert resp.headers["X-Request-ID"] == "abc-123"
    # One event, one line: newlines in a message or a traceback are escaped.
    log = logging.getLogger("imboy.test")
    log.warning("forged?\n2026-01-01 00:00:00,000 INFO imboy.access: GET / 200")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed")
    forged, failed = stderr_lines(capsys)
    assert forged.endswith(r"forged?\n2026-01-01 00:00:00,000 INFO imboy.access: GET / 200")
    assert r" ERROR imboy.test: failed exc=Traceback (most recent call last):\n" in failed
    assert failed.endswith("ValueError: boom")


def test_probes_are_logged_at_debug_only(make_app, capsys):
    client = make_app(LOG_LEVEL="INFO").test_client()
    capsys.readouterr()
    assert client.get("/healthz").status_code == 200
    assert stderr_lines(capsys) == []


# --- WebSocket lines ----------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["json", "text"])
def test_connection_logger_puts_conn_id_and_uid_on_every_line(fmt, capsys):
    logs.configure({"LOG_FORMAT": fmt, "LOG_LEVEL": "INFO"})
    log = logs.connection_logger(logging.getLogger("imboy.ws"), 17, 108)
    capsys.readouterr()
    log.warning("send queue full, closing")
    log.info("closed with %s", 1009, extra={"close_code": 1009})
    lines = stderr_lines(capsys)
    assert len(lines) == 2
    if fmt == "json":
        first, second = (json.loads(line) for line in lines)
        assert (first["conn_id"], first["uid"], first["msg"]) == (17, "7b4v1b", "send queue full, closing")
        assert (second["conn_id"], second["uid"], second["close_code"]) == (17, "7b4v1b", 1009)
    else:
        assert lines[0].endswith("imboy.ws: send queue full, closing conn_id=17 uid=7b4v1b")
        assert lines[1].endswith("closed with 1009 conn_id=17 uid=7b4v1b close_code=1009")


# --- no secrets -----------------------------------------------------------------------------
@pytest.fixture
def sink():
    server = SmtpSink().start()
    yield server
    server.stop()


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_no_secret_reaches_the_logs(fmt, make_app, sink, capsys, caplog):
    """Sign-up, login and refresh with SMTP configured, logged at DEBUG."""
    caplog.set_level(logging.DEBUG, logger="imboy")
    app = make_app(LOG_FORMAT=fmt, LOG_LEVEL="DEBUG", SMTP_HOST="127.0.0.1", SMTP_PORT=sink.port)
    client = app.test_client()
    email = "secretive@example.com"
    assert envelope(client.post("/passport/getcode", data={"account": email}))["code"] == 0
    assert sink.wait_for(lambda s: len(s.messages) == 1)
    code = re.search(r"\b(\d{6})\b", sink.messages[0].get_body(("plain",)).get_content()).group(1)
    signed = envelope(client.post("/passport/signup", data={"account": email, "pwd": PASSWORD,
                                                            "rsa_encrypt": "0", "code": code}))
    assert signed["code"] == 0, signed
    logged = envelope(client.post("/passport/login", json={"account": email, "pwd": PASSWORD,
                                                           "rsa_encrypt": "0"}))["payload"]
    assert envelope(client.post("/passport/login", data={"account": email, "pwd": PASSWORD + "x",
                                                         "rsa_encrypt": "0"}))["code"] == 1
    refreshed = envelope(client.get("/refreshtoken", headers={"imboy-refreshtoken": logged["refreshtoken"]}))
    secrets = [PASSWORD, code, signed["payload"]["token"], signed["payload"]["refreshtoken"],
               logged["token"], logged["refreshtoken"], refreshed["payload"]["token"]]
    # A careless line and a careless exception: the safety net masks them.
    careless = logging.getLogger("imboy.passport")
    careless.warning("login pwd=%s token %s", PASSWORD, logged["token"])
    try:
        raise ValueError(f"bad token {logged['refreshtoken']}")
    except ValueError:
        careless.exception("refresh failed")

    out = capsys.readouterr().err
    assert "POST /passport/signup 200" in out or '"path":"/passport/signup"' in out
    assert "login pwd=***" in out and "refresh failed" in out and "ValueError: bad token <token>" in out
    for secret in secrets:
        assert secret not in out
        assert secret not in caplog.text
    if fmt == "json":
        assert all(json.loads(line) for line in out.splitlines() if line.startswith("{"))


def test_console_mail_logs_the_code_as_the_one_development_exception(make_app, capsys):
    client = make_app(SMTP_HOST=None).test_client()
    capsys.readouterr()
    assert envelope(client.post("/passport/getcode", data={"account": "dev@example.com"}))["code"] == 0
    lines = [line for line in stderr_lines(capsys) if "verification code" in line]
    assert len(lines) == 1 and " imboy.mail: " in lines[0]
    code = re.search(r"dev@example\.com: (\d{6}) \(no SMTP host configured\)", lines[0]).group(1)
    body = envelope(client.post("/passport/signup", data={"account": "dev@example.com", "pwd": PASSWORD,
                                                          "rsa_encrypt": "0", "code": code}))
    assert body["code"] == 0
