"""Helpers for the HTTP tests of the passport and user endpoints.

Calls go through the Flask test client (or `requests` against the live
server) and always check the envelope contract first: HTTP 200, JSON with
`code`, `msg`, `payload`.  Verification codes are read from mail received
by a real SMTP listener (`SmtpSink`).
"""
from __future__ import annotations

import base64
import re
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding

try:
    from tests.smtp_sink import SmtpSink
except ImportError:  # tests/ run as rootdir-less modules
    from smtp_sink import SmtpSink

JSON_TYPE = "application/json; charset=utf-8"
PASSWORD = "s3cret-Pässword"
CODE_INVALID = "The verification code is invalid or has expired"
LOGIN_FAILED = "Incorrect account or password"


def check_envelope(status: int, content_type: str, body: Any) -> dict[str, Any]:
    assert status == 200, (status, body)
    assert content_type == JSON_TYPE
    assert isinstance(body, dict) and set(body) == {"code", "msg", "payload"}, body
    assert isinstance(body["code"], int) and isinstance(body["msg"], str)
    return body


def call(client, method: str, path: str, **kwargs) -> dict[str, Any]:
    """One request through the test client; the parsed envelope."""
    resp = client.open(path, method=method, **kwargs)
    return check_envelope(resp.status_code, resp.content_type, resp.get_json(silent=True))


def post(client, path: str, data: Any = None, **kwargs) -> dict[str, Any]:
    return call(client, "POST", path, data=data, **kwargs)


def get(client, path: str, **kwargs) -> dict[str, Any]:
    return call(client, "GET", path, **kwargs)


def success(body: dict[str, Any]) -> Any:
    assert body["code"] == 0, body
    return body["payload"]


def refused(body: dict[str, Any], code: int = 1) -> str:
    """The msg of a refusal with `code`; it must be readable text."""
    assert body["code"] == code, body
    assert body["msg"].strip() and body["msg"] != "Internal error, try again", body
    return body["msg"]


def rsa_encrypt(public_pem: str, text: str) -> str:
    """What a client sends with rsa_encrypt=1: base64(RSA-PKCS1v15(text))."""
    key = serialization.load_pem_public_key(public_pem.encode("ascii"))
    return base64.b64encode(key.encrypt(text.encode("utf-8"), padding.PKCS1v15())).decode("ascii")


def public_key(client) -> str:
    return success(get(client, "/init"))["login_rsa_pub_key"]


@pytest.fixture
def sink():
    server = SmtpSink().start()
    yield server
    server.stop()


@pytest.fixture
def mail_app(make_app, sink):
    """The app with real SMTP delivery to the sink."""
    return make_app(SMTP_HOST="127.0.0.1", SMTP_PORT=sink.port)


@pytest.fixture
def mail_client(mail_app):
    return mail_app.test_client()


def mails_to(sink: SmtpSink, email: str) -> list[str]:
    with sink._lock:
        return [m.get_body(preferencelist=("plain",)).get_content()
                for m in sink.messages if m["To"] == email]


def code_from_mail(sink: SmtpSink, email: str, count: int = 1) -> str:
    """The code in the `count`-th mail to `email` (waits for it)."""
    assert sink.wait_for(lambda s: len(mails_to(s, email)) >= count, timeout=5), \
        f"no mail #{count} to {email}"
    body = mails_to(sink, email)[count - 1]
    found = re.findall(r"\b\d{6}\b", body)
    assert len(found) == 1, body
    return found[0]


def request_code(client, sink: SmtpSink, email: str, count: int = 1) -> str:
    success(post(client, "/passport/getcode", {"account": email}))
    return code_from_mail(sink, email, count)


def sign_up(client, sink: SmtpSink, email: str, password: str = PASSWORD,
            count: int = 1) -> dict[str, Any]:
    """getcode, then signup with the mailed code and a plain password."""
    code = request_code(client, sink, email, count)
    return success(post(client, "/passport/signup", {
        "type": "email", "account": email, "pwd": password, "rsa_encrypt": "0", "code": code}))


def log_in(client, account: str, password: str = PASSWORD, **extra: str) -> dict[str, Any]:
    """The envelope of a plain-password login."""
    return post(client, "/passport/login", dict({"account": account, "pwd": password,
                                                 "rsa_encrypt": "0"}, **extra))
