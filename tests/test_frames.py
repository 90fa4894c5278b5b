"""imboy/ws/frames.py on its own: RFC 6455 parsing rules and limits."""
from __future__ import annotations

import io
import os
import struct

import pytest

from imboy.ws.frames import (OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, ConnectionLost,
                             FrameReader, ProtocolViolation, close_payload, encode_frame, unmask,
                             valid_close_code)

from .ws_support import client_frame as frame


class CountingReader:
    """A reader over bytes that records how much was asked for."""

    def __init__(self, data: bytes) -> None:
        self._buf = io.BytesIO(data)
        self.requested = 0

    def read(self, n: int) -> bytes:
        self.requested += n
        return self._buf.read(n)


def reader(data: bytes, limit: int = 1 << 20) -> FrameReader:
    return FrameReader(io.BytesIO(data).read, limit)


def violation(data: bytes, limit: int = 1 << 20) -> ProtocolViolation:
    r = reader(data, limit)
    with pytest.raises(ProtocolViolation) as info:
        while True:
            r.read()
    return info.value


def test_single_frames_of_every_length_encoding():
    for size in (0, 1, 125, 126, 65535, 65536, 70000):
        text = "é" * (size // 2) + "x" * (size % 2)
        assert reader(frame(OP_TEXT, text.encode())).read() == (OP_TEXT, text)
    blob = os.urandom(300)
    assert reader(frame(OP_BINARY, blob)).read() == (OP_BINARY, blob)


def test_messages_follow_each_other_on_one_stream():
    data = frame(OP_TEXT, b"one") + frame(OP_BINARY, b"\x00\x01") + frame(OP_TEXT, b"three")
    r = reader(data)
    assert [r.read(), r.read(), r.read()] == [(OP_TEXT, "one"), (OP_BINARY, b"\x00\x01"), (OP_TEXT, "three")]
    with pytest.raises(ConnectionLost):
        r.read()


def test_fragmented_message_with_control_frames_between_fragments():
    data = (frame(OP_TEXT, b"hel", fin=False) + frame(OP_PING, b"p1") + frame(OP_CONT, b"lo ", fin=False)
            + frame(OP_PONG, b"") + frame(OP_CONT, b"world") + frame(OP_TEXT, b"next"))
    r = reader(data)
    assert r.read() == (OP_PING, b"p1")
    assert r.read() == (OP_PONG, b"")
    assert r.read() == (OP_TEXT, "hello world")
    assert r.read() == (OP_TEXT, "next")


def test_fragmented_binary_message():
    r = reader(frame(OP_BINARY, b"ab", fin=False) + frame(OP_CONT, b"", fin=False) + frame(OP_CONT, b"cd"))
    assert r.read() == (OP_BINARY, b"abcd")


def test_utf8_character_split_across_fragments():
    raw = "日本€".encode()
    # Cut inside the first character and inside the euro sign.
    data = frame(OP_TEXT, raw[:1], fin=False) + frame(OP_CONT, raw[1:7], fin=False) + frame(OP_CONT, raw[7:])
    assert reader(data).read() == (OP_TEXT, "日本€")


@pytest.mark.parametrize("data", [
    frame(OP_TEXT, b"\xff"),
    frame(OP_TEXT, b"ok\xc3"),                                        # truncated at the end
    frame(OP_TEXT, b"a", fin=False) + frame(OP_CONT, b"\xed\xa0\x80"),  # a UTF-16 surrogate
    frame(OP_TEXT, "é".encode()[:1], fin=False) + frame(OP_CONT, b"x"),
])
def test_invalid_utf8_is_1007(data):
    assert violation(data).close_code == 1007


def test_invalid_utf8_fails_on_the_fragment_that_holds_it():
    # The second fragment is never sent: the reader must not wait for it.
    r = reader(frame(OP_TEXT, b"\xc0\xaf", fin=False))
    with pytest.raises(ProtocolViolation) as info:
        r.read()
    assert info.value.close_code == 1007


@pytest.mark.parametrize("data, why", [
    (frame(OP_TEXT, b"hi", mask=False), "unmasked"),
    (frame(OP_TEXT, b"hi", rsv=4), "rsv1"),
    (frame(OP_TEXT, b"hi", rsv=1), "rsv3"),
    (frame(0x3, b"hi"), "reserved data opcode"),
    (frame(0xB, b"hi"), "reserved control opcode"),
    (frame(OP_PING, b"x", fin=False), "fragmented control frame"),
    (frame(OP_PING, b"x" * 126), "control frame over 125 bytes"),
    (frame(OP_CONT, b"x"), "continuation without a message"),
    (frame(OP_TEXT, b"a", fin=False) + frame(OP_TEXT, b"b"), "new message inside a fragmented one"),
    (frame(OP_CLOSE, b"\x03"), "one-byte close body"),
    (frame(OP_CLOSE, struct.pack("!H", 1005)), "reserved close code"),
    (frame(OP_CLOSE, struct.pack("!H", 999)), "close code below 1000"),
])
def test_rfc_violations_are_1002(data, why):
    assert violation(data).close_code == 1002, why


def test_close_frames():
    assert reader(frame(OP_CLOSE, b"")).read() == (OP_CLOSE, b"")
    body = close_payload(4000, "bye")
    assert reader(frame(OP_CLOSE, body)).read() == (OP_CLOSE, body)
    assert violation(frame(OP_CLOSE, struct.pack("!H", 1000) + b"\xff")).close_code == 1007
    assert [c for c in (1000, 1001, 1002, 1003, 1007, 1011, 3000, 4999) if not valid_close_code(c)] == []
    assert [c for c in (0, 999, 1004, 1005, 1006, 1012, 1016, 2999, 5000) if valid_close_code(c)] == []


def test_declared_length_over_the_limit_is_refused_before_reading_it():
    # Header claims 2^62 bytes; nothing of the payload follows.
    src = CountingReader(struct.pack("!BBQ", 0x81, 0x80 | 127, 1 << 62) + b"\0\0\0\0")
    with pytest.raises(ProtocolViolation) as info:
        FrameReader(src.read, 1024).read()
    assert info.value.close_code == 1009
    assert src.requested <= 2 + 8 + 4


def test_limit_counts_the_whole_fragmented_message():
    ok = frame(OP_TEXT, b"a" * 600, fin=False) + frame(OP_CONT, b"b" * 424)
    assert reader(ok, 1024).read() == (OP_TEXT, "a" * 600 + "b" * 424)
    too_big = frame(OP_TEXT, b"a" * 600, fin=False) + frame(OP_CONT, b"b" * 425)
    assert violation(too_big, 1024).close_code == 1009
    # Control frames do not count towards it.
    with_ping = frame(OP_TEXT, b"a" * 1000, fin=False) + frame(OP_PING, b"p" * 100) + frame(OP_CONT, b"b" * 24)
    r = reader(with_ping, 1024)
    assert r.read() == (OP_PING, b"p" * 100)
    assert r.read() == (OP_TEXT, "a" * 1000 + "b" * 24)


def test_eof_mid_frame_is_connection_lost():
    whole = frame(OP_TEXT, b"hello")
    for cut in (0, 1, 2, 5, len(whole) - 1):
        with pytest.raises(ConnectionLost):
            reader(whole[:cut]).read()


def test_masks_are_applied_per_frame():
    key = b"\x01\x02\x03\x04"
    data = bytes(range(256)) * 3 + b"\x07"
    expected = bytes(b ^ key[i % 4] for i, b in enumerate(data))
    assert unmask(data, key) == expected
    assert unmask(b"", key) == b""
    # Each fragment has its own key.
    text = "fragments with their own keys"
    chunks = [text[:7], text[7:20], text[20:]]
    data = b"".join(frame(OP_TEXT if i == 0 else OP_CONT, c.encode(), fin=i == 2) for i, c in enumerate(chunks))
    assert reader(data).read() == (OP_TEXT, text)


def test_encode_frame_is_unmasked_final_and_sized():
    for size, header_len in ((0, 2), (125, 2), (126, 4), (65535, 4), (65536, 10)):
        out = encode_frame(OP_TEXT, b"x" * size)
        assert out[0] == 0x81 and not out[1] & 0x80
        assert len(out) == header_len + size
    assert encode_frame(OP_CLOSE, close_payload(1009, "too big"))[:4] == b"\x88\x09\x03\xf1"
