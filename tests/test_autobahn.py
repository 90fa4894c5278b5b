"""WebSocket conformance: close codes checked by hand, the test-only echo
mode, and a fast subset of the Autobahn fuzzing-client suite against a real
`python wsgi.py` (docs/AUTOBAHN.md has the full run and its results).

wstest is installed by ../shared/tools/autobahn/setup.sh when it is missing;
without it the Autobahn test is skipped, except under CI=true, where a
failed install is a failure.
"""
from __future__ import annotations

import json
import os
import struct
import subprocess

import pytest

from imboy import create_app
from imboy.config import SETTINGS
from imboy.ws.frames import OP_BINARY, OP_CLOSE, OP_CONT, OP_TEXT

from .conftest import IN_CI, TEST_SETTINGS
from .hardening_support import ImboyProcess, eof_within
from .helpers import ROOT
from .helpers import make_user
from .ws_support import client_frame, connect, expect_close, fast_passwords  # noqa: F401

TOOLS = os.environ.get("IMBOY_AUTOBAHN_TOOLS", os.path.join(ROOT, "..", "shared", "tools", "autobahn"))
WSTEST_HOME = os.environ.get("WSTEST_HOME", os.path.join(os.environ.get("XDG_CACHE_HOME")
                                                         or os.path.expanduser("~/.cache"), "imboy-wstest"))
WSTEST = os.path.join(WSTEST_HOME, "bin", "wstest")
# A few dozen cases from every section of 1-7 and 10: framing, pings and pongs,
# reserved bits and opcodes, fragmentation, UTF-8, closing, limits.
FAST_CASES = ["1.1.1", "1.1.6", "1.2.1", "1.2.6", "2.1", "2.3", "2.4", "2.5", "2.6", "2.10", "3.1", "3.2", "3.4",
              "3.7", "4.1.1", "4.1.5", "4.2.1", "4.2.5", "5.1", "5.2", "5.3", "5.6", "5.8", "5.9", "5.15", "5.19",
              "5.20", "6.1.1", "6.2.3", "6.3.1", "6.3.2", "6.4.1", "6.5.1", "6.6.1", "6.6.11", "6.8.1", "6.12.1",
              "6.21.1", "6.22.1", "6.23.1", "7.1.1", "7.1.6", "7.3.1", "7.3.2", "7.3.4", "7.3.6", "7.5.1",
              "7.7.1", "7.7.13", "7.9.1", "7.9.5", "7.13.1", "10.1.1"]
PASSING = ("OK", "NON-STRICT", "INFORMATIONAL")


def _close_frame(code: int | None, reason: bytes = b"") -> bytes:
    return client_frame(OP_CLOSE, (struct.pack("!H", code) if code is not None else b"") + reason)


def _server_close_reply(server, user, frame: bytes) -> tuple[int | None, bool]:
    """Send `frame` as a client close; the code of the server's reply, and whether TCP ended after it."""
    c = connect(server, user)
    c.ws.sock.sendall(frame)
    code = expect_close(c)
    ended = eof_within(c.ws.sock, 3)
    c.close()
    return code, ended


def test_client_close_codes_are_echoed_and_bad_ones_are_1002_or_1007(server, users):
    (a,) = users(1)
    for code in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999):
        assert _server_close_reply(server, a, _close_frame(code, b"bye")) == (code, True), code
    for code in (0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535):
        assert _server_close_reply(server, a, _close_frame(code)) == (1002, True), code
    # An empty close is answered with a normal close; a one-byte body is an error;
    # the reason must be UTF-8 and fit a control frame (123 bytes after the code).
    assert _server_close_reply(server, a, _close_frame(None)) == (1000, True)
    assert _server_close_reply(server, a, client_frame(OP_CLOSE, b"\x03")) == (1002, True)
    assert _server_close_reply(server, a, _close_frame(1000, b"\xce\xbd\xff")) == (1007, True)
    assert _server_close_reply(server, a, _close_frame(1000, b"r" * 123)) == (1000, True)
    assert _server_close_reply(server, a, _close_frame(1000, b"r" * 124)) == (1002, True)


def test_after_a_protocol_error_the_server_closes_tcp_without_waiting(server, users):
    """RFC 6455 7.1.1: the server closes the TCP connection first, and at once when
    the stream broke the framing (its close frame comes first)."""
    (a,) = users(1)
    for frame, code in ((client_frame(OP_TEXT, b"x", rsv=4), 1002),
                        (client_frame(OP_TEXT, b"\xff"), 1007),
                        (client_frame(OP_CONT, b"x"), 1002),
                        (client_frame(0x3, b""), 1002),
                        (client_frame(OP_TEXT, b"x", mask=False), 1002)):
        c = connect(server, a)
        c.ws.sock.sendall(frame)
        assert expect_close(c) == code
        # We never answer the close: the server must end the connection anyway, well
        # before its closing grace period (2 s).
        assert eof_within(c.ws.sock, 1.0), frame
        c.close()


def test_echo_mode_is_off_by_default_and_echoes_verbatim_when_on(make_app, make_server, users):
    assert SETTINGS["WS_ECHO"][0] is False
    server = make_server(make_app())
    (a,) = users(1)
    c = connect(server, a)
    c.send_text("hello")
    assert c.expect_type("error")["msg"] == "Malformed JSON"
    c.close()
    echo = make_server(make_app(WS_ECHO=True))
    c = connect(echo, a)
    for text in ("hello", '{"id": "x", "type": "C2C"}', "ping", "é😀" * 1000):
        c.send_text(text)
        assert c.recv_raw() == (OP_TEXT, text.encode())
    c.ws.sock.sendall(client_frame(OP_BINARY, b"\x00\xff", fin=False) + client_frame(OP_CONT, b"\x01"))
    assert c.recv_raw() == (OP_BINARY, b"\x00\xff\x01")
    assert not echo.imboy.registry.is_online(a.id), "echo connections are nobody's presence"
    c.close()


# -- Autobahn ---------------------------------------------------------------------------
def _unavailable(why: str) -> None:
    if IN_CI:
        pytest.fail(f"Autobahn wstest is required under CI=true: {why}")
    pytest.skip(why)


@pytest.fixture(scope="session")
def wstest() -> str:
    """The wstest wrapper, installed by the shared setup.sh when missing."""
    if not os.path.isfile(os.path.join(TOOLS, "run-autobahn.sh")):
        _unavailable(f"no Autobahn scripts at {TOOLS}")
    if not os.access(WSTEST, os.X_OK):
        result = subprocess.run(["bash", os.path.join(TOOLS, "setup.sh")], capture_output=True, timeout=1500,
                                env=dict(os.environ, WSTEST_HOME=WSTEST_HOME))
        if result.returncode != 0 or not os.access(WSTEST, os.X_OK):
            _unavailable("setup.sh failed: " + result.stdout.decode(errors="replace")[-1500:]
                         + result.stderr.decode(errors="replace")[-1500:])
    return WSTEST


def test_autobahn_fast_subset(wstest, tmp_path, rsa_key_path):
    db_url = f"sqlite:///{tmp_path}/autobahn.sqlite3"
    secret = "autobahn-test-secret"
    app = create_app(dict(TEST_SETTINGS, DATABASE_URL=db_url, SECRET_KEY=secret, RSA_PRIVATE_KEY=rsa_key_path,
                          INSTANCE_PATH=str(tmp_path / "instance")))
    imboy = app.extensions["imboy"]
    token = make_user(imboy, "autobahn@example.com").token
    imboy.close()
    # Echo mode is what the suite talks to; the limits stay out of its way
    # (the 1.x cases send up to 64 KiB, at full speed).
    server = ImboyProcess({"IMBOY_DATABASE_URL": db_url, "IMBOY_SECRET_KEY": secret,
                           "IMBOY_INSTANCE_PATH": str(tmp_path / "instance"), "IMBOY_RSA_PRIVATE_KEY": rsa_key_path,
                           "IMBOY_WS_ECHO": "1", "IMBOY_WS_RATE": "100000", "IMBOY_WS_BURST": "100000"},
                          str(tmp_path / "server.log"))
    server.start()
    try:
        out = tmp_path / "autobahn"
        result = subprocess.run(
            ["bash", os.path.join(TOOLS, "run-autobahn.sh"), "--protocols", "text", "--timeout", "120",
             "--cases", ",".join(FAST_CASES), f"{server.ws_url}?authorization={token}", str(out)],
            capture_output=True, timeout=180, env=dict(os.environ, WSTEST_HOME=WSTEST_HOME))
    finally:
        server.stop()
    report = result.stdout.decode(errors="replace")[-4000:] + result.stderr.decode(errors="replace")[-2000:]
    index = out / "reports" / "servers" / "index.json"
    assert index.is_file(), report
    cases = json.loads(index.read_text())["testee"]
    assert set(cases) == set(FAST_CASES), report
    bad = {cid: (c["behavior"], c["behaviorClose"]) for cid, c in cases.items()
           if c["behavior"] not in PASSING or c["behaviorClose"] not in ("OK", "INFORMATIONAL")}
    assert bad == {}, report
    assert result.returncode == 0, report
