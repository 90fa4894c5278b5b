"""Verification-code mail through a real SMTP conversation."""
from __future__ import annotations

import logging
import socket
import threading
import time

import pytest

from imboy.errors import BadRequest, ServiceUnavailable
from imboy.mail import Mailer

try:
    from tests.smtp_sink import SmtpSink
except ImportError:  # tests/ run as rootdir-less modules
    from smtp_sink import SmtpSink


@pytest.fixture
def sink():
    server = SmtpSink().start()
    yield server
    server.stop()


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def body_of(message) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def test_code_is_delivered_by_smtp(sink: SmtpSink) -> None:
    mailer = Mailer("127.0.0.1", sink.port, mail_from="noreply@imboy.test", timeout=5)
    mailer.send_code("alice@example.com", "483920")
    assert sink.wait_for(lambda s: len(s.messages) == 1, timeout=5)
    msg = sink.messages[0]
    assert msg["To"] == "alice@example.com"
    assert msg["From"] == "noreply@imboy.test"
    assert msg["Subject"] == "Your imboy verification code"
    body = body_of(msg)
    assert "483920" in body
    assert "10 minutes" in body
    assert sink.envelopes[0] == ("noreply@imboy.test", ["alice@example.com"])
    assert sink.auth_users == []  # no user configured, no AUTH


def test_login_when_a_user_is_configured(sink: SmtpSink, caplog) -> None:
    mailer = Mailer("127.0.0.1", sink.port, user="mailbot", password="pa55-word", timeout=5)
    mailer.send_code("bob@example.com", "000123")
    assert sink.wait_for(lambda s: len(s.messages) == 1, timeout=5)
    assert sink.auth_users == ["mailbot"]
    assert "000123" in body_of(sink.messages[0])
    assert sink.messages[0]["To"] == "bob@example.com"
    assert "pa55-word" not in caplog.text
    assert "pa55-word" not in repr(mailer)


def test_several_codes_in_a_row(sink: SmtpSink) -> None:
    mailer = Mailer("127.0.0.1", sink.port, timeout=5)
    for i, addr in enumerate(["a@x.test", "b@x.test", "c@x.test"]):
        mailer.send_code(addr, f"{i:06d}")
    assert sink.wait_for(lambda s: len(s.messages) == 3, timeout=5)
    assert [m["To"] for m in sink.messages] == ["a@x.test", "b@x.test", "c@x.test"]
    assert "000002" in body_of(sink.messages[2])


def test_no_host_logs_the_code(caplog) -> None:
    mailer = Mailer(None)
    with caplog.at_level(logging.WARNING, logger="imboy.mail"):
        mailer.send_code("dev@example.com", "654321")
    records = [r for r in caplog.records if r.name == "imboy.mail"]
    assert len(records) == 1
    assert records[0].levelno == logging.WARNING
    assert records[0].getMessage() == (
        "verification code for dev@example.com: 654321 (no SMTP host configured)"
    )


def test_unreachable_server_is_service_unavailable(caplog) -> None:
    mailer = Mailer("127.0.0.1", free_port(), user="u", password="top-secret-pw", timeout=3)
    start = time.monotonic()
    with caplog.at_level(logging.DEBUG, logger="imboy.mail"):
        with pytest.raises(ServiceUnavailable) as err:
            mailer.send_code("carol@example.com", "111111")
    assert time.monotonic() - start < 2.5
    assert err.value.msg == "Could not send the verification code"
    assert "top-secret-pw" not in caplog.text
    assert "ConnectionRefusedError" in caplog.text


def test_server_that_hangs_up_is_service_unavailable() -> None:
    """A listener that accepts and closes at once: smtplib sees a dead server."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(5)
    port = listener.getsockname()[1]

    def hang_up() -> None:
        try:
            conn, _ = listener.accept()
            conn.close()
        except OSError:
            pass

    t = threading.Thread(target=hang_up, daemon=True)
    t.start()
    try:
        with pytest.raises(ServiceUnavailable):
            Mailer("127.0.0.1", port, timeout=3).send_code("dan@example.com", "222222")
    finally:
        t.join(timeout=5)
        listener.close()


def test_header_injection_is_refused(sink: SmtpSink) -> None:
    with pytest.raises(BadRequest):
        Mailer("127.0.0.1", sink.port, timeout=5).send_code("a@x.test\r\nBcc: evil@x.test", "1")
    assert sink.messages == []


def test_invalid_tls_mode_is_a_configuration_error() -> None:
    with pytest.raises(ValueError):
        Mailer("localhost", tls="tls1.3")
