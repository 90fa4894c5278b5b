"""RFC 6455 framing: a reader with limits and a frame encoder.

gevent-websocket's own WebSocket class reads a declared payload length
without a bound, unmasks byte by byte in Python, answers pings from the
reading greenlet (a second writer on the socket) and closes on bad input in
ways the Autobahn suite flags.  The server therefore reads and writes frames
with this small module and uses gevent-websocket only for its handler.
"""
from __future__ import annotations

import codecs
import struct
from typing import Callable

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_DATA = (OP_TEXT, OP_BINARY)
_CONTROL = (OP_CLOSE, OP_PING, OP_PONG)


class ProtocolViolation(Exception):
    """The peer broke the protocol; close the connection with `close_code`."""

    def __init__(self, close_code: int, reason: str) -> None:
        super().__init__(reason)
        self.close_code = close_code
        self.reason = reason


class ConnectionLost(Exception):
    """The peer went away in the middle of a frame (EOF)."""


def encode_frame(opcode: int, payload: bytes) -> bytes:
    """One unmasked, final frame (servers never mask)."""
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", 0x80 | opcode, n)
    elif n < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 126, n)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 127, n)
    return header + payload


def encode_text(text: str) -> bytes:
    """A text message as one frame."""
    return encode_frame(OP_TEXT, text.encode("utf-8"))


def close_payload(code: int, reason: str = "") -> bytes:
    return struct.pack("!H", code) + reason.encode("utf-8")[:120]


def unmask(data: bytes, mask: bytes) -> bytes:
    """XOR `data` with the 4-byte mask, as one big-integer operation."""
    n = len(data)
    if not n:
        return data
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(key, "little")).to_bytes(n, "little")


def valid_close_code(code: int) -> bool:
    return (1000 <= code <= 1003 or 1007 <= code <= 1011 or 3000 <= code <= 4999)


class FrameReading:
    """How whole messages are read; control frames come back as they arrive.

    `read()` returns `(opcode, payload)`: for text the payload is `str`
    (validated UTF-8), for binary `bytes`, for close/ping/pong the raw bytes.
    A control frame may arrive between the fragments of a message (RFC 6455
    5.4), so the message being assembled lives on the reader, not in `read()`:
    `_frag` is None, or while a fragmented message is being assembled the list
    [opcode, fragments, size so far, UTF-8 decoder or None].

    The state lives in the subclass's slots (`_frag`, `max_message`) and the
    bytes come from its `_exact(n)`: `FrameReader` is a reader of its own, and
    a connection can read its frames with no reader object beside it.
    """

    __slots__ = ()
    _frag: list | None
    max_message: int

    def _exact(self, n: int) -> bytes:
        raise NotImplementedError

    def _frame(self) -> tuple[bool, int, bytes]:
        b0, b1 = self._exact(2)
        fin, opcode, length = bool(b0 & 0x80), b0 & 0x0F, b1 & 0x7F
        if b0 & 0x70:
            raise ProtocolViolation(1002, "reserved bits set")
        if not b1 & 0x80:
            raise ProtocolViolation(1002, "client frames must be masked")
        if opcode >= 0x8:
            if opcode not in _CONTROL:
                raise ProtocolViolation(1002, "unknown opcode")
            if not fin or length > 125:
                raise ProtocolViolation(1002, "invalid control frame")
        elif opcode not in (OP_CONT, OP_TEXT, OP_BINARY):
            raise ProtocolViolation(1002, "unknown opcode")
        if length == 126:
            length = struct.unpack("!H", self._exact(2))[0]
        elif length == 127:
            length = struct.unpack("!Q", self._exact(8))[0]
        # Checked before reading: a declared length is never allocated blindly,
        # and fragments count towards the message they belong to.
        if opcode < 0x8:
            frag = self._frag
            if (frag[2] if frag is not None else 0) + length > self.max_message:
                raise ProtocolViolation(1009, "message too large")
        mask = self._exact(4)
        return fin, opcode, unmask(self._exact(length), mask) if length else b""

    def read(self) -> tuple[int, bytes | str]:
        while True:
            fin, op, payload = self._frame()
            if op in _CONTROL:
                if op == OP_CLOSE:
                    _check_close(payload)
                return op, payload
            frag = self._frag
            if op == OP_CONT:
                if frag is None:
                    raise ProtocolViolation(1002, "continuation without a message")
            else:
                if frag is not None:
                    raise ProtocolViolation(1002, "new message inside a fragmented one")
                if fin:
                    # A message in a single frame (the usual case).
                    if op == OP_TEXT:
                        try:
                            return op, payload.decode("utf-8")
                        except UnicodeDecodeError:
                            raise ProtocolViolation(1007, "invalid UTF-8 in a text message") from None
                    return op, payload
                decoder = codecs.getincrementaldecoder("utf-8")() if op == OP_TEXT else None
                frag = self._frag = [op, [], 0, decoder]
            frag[2] += len(payload)
            decoder = frag[3]
            if decoder is not None:
                try:
                    # Incremental: invalid UTF-8 fails on the fragment that holds it.
                    part: bytes | str = decoder.decode(payload, final=fin)
                except UnicodeDecodeError:
                    raise ProtocolViolation(1007, "invalid UTF-8 in a text message") from None
            else:
                part = payload
            parts = frag[1]
            parts.append(part)
            if fin:
                self._frag = None
                opcode = frag[0]
                return opcode, ("" if opcode == OP_TEXT else b"").join(parts)


class FrameReader(FrameReading):
    """A reader on a byte source: `read(n)` returns n bytes, fewer only at EOF."""

    __slots__ = ("_read", "max_message", "_frag")

    def __init__(self, read: Callable[[int], bytes], max_message: int) -> None:
        self._read = read
        self.max_message = max_message
        self._frag = None

    def _exact(self, n: int) -> bytes:
        data = self._read(n)
        if len(data) != n:
            # A buffered reader returns short only at EOF.
            raise ConnectionLost("connection closed mid-frame")
        return data


#: What a socket reader asks its socket for when it needs a few bytes.
RECV_SIZE = 4096
#: The largest single recv for a large payload.
RECV_CHUNK_MAX = 1 << 20


class SocketFrameReading(FrameReading):
    """Frames straight from a socket's `recv`, with no buffer kept while idle.

    The subclass provides `_recv(n)` (at most n bytes, b"" at EOF) and the
    slots `_buf` and `_pos`.  Small reads ask for RECV_SIZE bytes at once,
    so a burst of frames costs one call; the bytes beyond the current frame
    wait in `_buf`, which is dropped as soon as it is used up, so an idle
    connection holds no read buffer at all.  A large payload is read into one
    buffer of its exact size.
    """

    __slots__ = ()
    _buf: bytes
    _pos: int

    def _recv(self, n: int) -> bytes:
        raise NotImplementedError

    def _exact(self, n: int) -> bytes:
        buf, pos = self._buf, self._pos
        end = pos + n
        if end < len(buf):
            self._pos = end
            return buf[pos:end]
        if end == len(buf):
            self._buf, self._pos = b"", 0
            return buf[pos:] if pos else buf
        have = buf[pos:]
        self._buf, self._pos = b"", 0
        # `self._recv(...)` at each call, not a local: a bound method held
        # on a connection's waiting stack would cost 64 bytes per connection.
        if n > RECV_SIZE:
            # A large payload: one buffer of its size, no read-ahead.
            out = bytearray(n)
            view = memoryview(out)
            got = len(have)
            view[:got] = have
            while got < n:
                chunk = self._recv(min(n - got, RECV_CHUNK_MAX))
                if not chunk:
                    raise ConnectionLost("connection closed mid-frame")
                view[got:got + len(chunk)] = chunk
                got += len(chunk)
            view.release()
            return bytes(out)
        while len(have) < n:
            chunk = self._recv(RECV_SIZE)
            if not chunk:
                raise ConnectionLost("connection closed mid-frame")
            have = have + chunk if have else chunk
        if len(have) > n:
            self._buf, self._pos = have, n
            return have[:n]
        return have


class SocketFrameReader(SocketFrameReading):
    """A reader of its own on `recv`; `pending` is what was read from the socket before."""

    __slots__ = ("_recv", "max_message", "_frag", "_buf", "_pos")

    def __init__(self, recv: Callable[[int], bytes], max_message: int, pending: bytes = b"") -> None:
        self._recv = recv  # type: ignore[method-assign]
        self.max_message = max_message
        self._frag = None
        self._buf = pending
        self._pos = 0


def _check_close(payload: bytes) -> None:
    if not payload:
        return
    if len(payload) < 2:
        raise ProtocolViolation(1002, "close frame with a one-byte body")
    code = struct.unpack("!H", payload[:2])[0]
    if not valid_close_code(code):
        raise ProtocolViolation(1002, "invalid close code")
    try:
        payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolViolation(1007, "invalid UTF-8 in a close reason") from None
