"""Bad input on /ws: an error frame and the connection stays open, or an RFC close code."""
from __future__ import annotations

import json
import struct

from imboy import ids
from imboy.ws.frames import OP_BINARY, OP_CONT, OP_TEXT

from .ws_support import (assert_open, befriend, client_frame, collect, connect, expect_close,  # noqa: F401
                         fast_passwords, make_group)


def test_each_bad_frame_gets_an_error_frame_and_the_connection_stays_open(imboy, server, users):
    a, b, stranger, owner = users(4)
    befriend(imboy, a, b)
    gid = make_group(imboy, owner, b)
    ca, cb = connect(server, a), connect(server, b)
    to_b = b.hashid
    long_id = "x" * 41
    # (what is sent, the id the error frame must carry)
    cases = [
        ("{not json", ""),
        ('{"id": "j1", "type": "C2C"', ""),
        ('{"id": "j2"} trailing', ""),
        ("[1, 2, 3]", ""),
        ("42", ""),
        ('"a string"', ""),
        ("null", ""),
        ("", ""),
        ("[" * 5000, ""),
        ({"id": "t1", "type": "NOPE", "to": to_b, "payload": "x"}, "t1"),
        ({"id": "t2", "to": to_b, "payload": "x"}, "t2"),
        ({"id": "t3", "type": 7, "to": to_b, "payload": "x"}, "t3"),
        ({"type": "C2C", "to": to_b, "payload": "x"}, ""),
        ({"id": "", "type": "C2C", "to": to_b, "payload": "x"}, ""),
        ({"id": long_id, "type": "C2C", "to": to_b, "payload": "x"}, long_id),
        ({"id": 12345, "type": "C2C", "to": to_b, "payload": "x"}, ""),
        ({"id": ["a"], "type": "C2C", "to": to_b, "payload": "x"}, ""),
        ({"id": "r1", "type": "C2C", "payload": "x"}, "r1"),
        ({"id": "r2", "type": "C2C", "to": "not-a-hashid!", "payload": "x"}, "r2"),
        ({"id": "r3", "type": "C2C", "to": 42, "payload": "x"}, "r3"),
        ({"id": "r4", "type": "C2C", "to": ids.encode(999999), "payload": "x"}, "r4"),  # nobody
        ({"id": "r5", "type": "C2C", "to": stranger.hashid, "payload": "x"}, "r5"),   # not a friend
        ({"id": "g1", "type": "C2G", "to": gid, "payload": "x"}, "g1"),              # not a member
        ({"id": "g2", "type": "C2G", "to": "zz", "payload": "x"}, "g2"),
        ({"id": "p1", "type": "C2C", "to": to_b}, "p1"),
        ({"id": "p2", "type": "C2C", "to": to_b, "payload": 42}, "p2"),
        ({"id": "p3", "type": "C2C", "to": to_b, "payload": [1, 2]}, "p3"),
        ({"id": "p4", "type": "C2C", "to": to_b, "payload": None}, "p4"),
        ({"id": "p5", "type": "C2G", "to": gid, "payload": True}, "p5"),
        ('{"id": "p6", "type": "C2C", "to": "%s", "payload": {"n": NaN}}' % to_b, "p6"),
        ('{"id": "p7", "type": "C2C", "to": "%s", "payload": {"n": 1e999}}' % to_b, "p7"),
        ('{"id": "p8", "type": "C2C", "to": "%s", "payload": "\\ud800"}' % to_b, "p8"),
        ('{"id": "\\udfff", "type": "C2C", "to": "%s", "payload": "x"}' % to_b, ""),
        ({"id": "k1", "type": "C2C_CLIENT_ACK"}, "k1"),                              # unknown message
        ({"id": "v1", "type": "C2C_REVOKE"}, "v1"),
        ({"id": "v2", "type": "C2C_REVOKE_ACK", "to": to_b}, "v2"),
    ]
    for sent, error_id in cases:
        text = sent if isinstance(sent, str) else json.dumps(sent)
        ca.send_text(text)
        err = ca.expect(lambda f: isinstance(f, dict) and f.get("type") in ("error", "C2C_SERVER_ACK"))
        assert err["type"] == "error", sent
        assert err["id"] == error_id and err["code"] in (1, 2), (sent, err)
        assert isinstance(err["msg"], str) and err["msg"] and isinstance(err["timestamp"], int)
        assert err["msg"] != "Internal error", (sent, "an expected refusal, not a crash")
        assert_open(ca)
    # Binary frames are not part of the protocol, whole or fragmented.
    ca.ws.send_binary(b"\x00\x01binary")
    assert ca.expect_type("error")["id"] == ""
    ca.ws.sock.sendall(client_frame(OP_BINARY, b"ab", fin=False) + client_frame(OP_CONT, b"cd"))
    assert ca.expect_type("error")["id"] == ""
    assert_open(ca)
    # Nothing of it reached B, and a good frame still works.
    assert collect(cb, 0.05, "C2C") == []
    ca.send_json({"id": "good", "type": "C2C", "to": to_b, "payload": {"ok": True}})
    assert ca.expect_type("C2C_SERVER_ACK")["id"] == "good"
    assert [f["id"] for _, f in collect(cb, 0.2, "C2C")] == ["good"]
    ca.close()
    cb.close()


def test_protocol_violations_close_with_their_code(make_app, make_server, users):
    server = make_server(make_app(MAX_FRAME_BYTES=1024))
    (a,) = users(1)
    ok_text = json.dumps({"pad": "p" * 990})
    cases = [
        ("invalid UTF-8", client_frame(OP_TEXT, b'{"id": "\xff\xfe"}'), 1007),
        ("invalid UTF-8 across fragments", client_frame(OP_TEXT, "é".encode()[:1], fin=False)
         + client_frame(OP_CONT, b"A"), 1007),
        ("frame over the limit", client_frame(OP_TEXT, b"x" * 1025), 1009),
        ("huge declared length", struct.pack("!BBQ", 0x81, 0xFF, 1 << 40) + b"mask" + b"x" * 100, 1009),
        ("fragments over the limit", client_frame(OP_TEXT, b"x" * 600, fin=False)
         + client_frame(OP_CONT, b"x" * 600), 1009),
        ("binary over the limit", client_frame(OP_BINARY, b"\0" * 2000), 1009),
        ("unmasked frame", client_frame(OP_TEXT, b"ping", mask=False), 1002),
        ("reserved bit", client_frame(OP_TEXT, b"ping", rsv=2), 1002),
        ("reserved opcode", client_frame(0x5, b"ping"), 1002),
        ("continuation first", client_frame(OP_CONT, b"ping"), 1002),
    ]
    for name, data, code in cases:
        c = connect(server, a)
        # Up to the limit is fine.
        c.send_text(ok_text)
        c.expect_type("error")
        c.ws.sock.sendall(data)
        assert expect_close(c) == code, name
        c.close()
    # The server is fine afterwards.
    c = connect(server, a)
    assert_open(c)
    c.close()
