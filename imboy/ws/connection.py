"""One WebSocket connection: a reading loop, one writer, retry timers.

The greenlet that accepted the connection reads it; every write goes
through `_out`, a bounded queue drained by a writer greenlet that exists
only while there is something to send, so a socket never has two writers
and an idle connection costs no second greenlet (nor a deque: `_out` is
an empty tuple while there is nothing to send).  Reads block without a socket
time-out; one libev timer per connection, restarted by every read that
brings bytes, closes a connection silent for WS_IDLE_TIMEOUT (1000, "idle
timeout").  Writes keep the socket time-out of WS_IDLE_TIMEOUT while the
writer runs.  Retry timers are libev
timers owned by the connection and die with it: the pending store in the
database, not a timer, is what guarantees delivery.

Bounds: the send queue holds at most SEND_QUEUE_LIMIT frames and
SEND_QUEUE_BYTES bytes (a client that stops reading is closed with 1008),
and the messages a client sends are budgeted by a token bucket (WS_RATE a
second, bursts of WS_BURST): over it a message gets an error frame, and a
client that goes on for another full burst is closed with 1008.
"""
from __future__ import annotations

import logging
import socket
import time
from collections import deque
from itertools import count
from types import MappingProxyType
from typing import Any, Callable

import gevent
from gevent.socket import socket as GeventSocket
from gevent.event import Event

from ..jsonutil import loads
from ..ratelimit import TokenBucket
from ..wire import error_frame
from .frames import (OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, ConnectionLost, ProtocolViolation,
                     SocketFrameReader, close_payload, encode_frame, encode_text)

log = logging.getLogger("imboy.ws")

# How long a closing connection waits for the peer's close frame.
CLOSE_GRACE = 2.0
# Frames joined into one sendall by the writer.
WRITE_BATCH = 64
# Messages refused by the rate limit echo their id only when this short: a
# flood of large frames is not parsed just to name them.
ID_PARSE_LIMIT = 65536
RATE_LIMITED = "Too many frames, slow down"
# The send queue of a connection with nothing to send (a deque costs 760 bytes).
_NOTHING: tuple = ()
# The retry table of a connection that never had one to keep (a dict costs 64 bytes).
_NO_RETRIES: Any = MappingProxyType({})
_ids = count(1)


class Connection:
    __slots__ = ("id", "uid", "device", "_sock", "_reader", "_out", "_out_bytes", "_writer", "_retries",
                 "_schedule", "_queue_limit", "_queue_bytes", "_loop", "closing", "close_code",
                 "_close_timer", "_drained", "_bucket", "_strikes", "_credit", "_credit_cap", "_metrics",
                 "_idle", "_idle_timer", "_task", "_raw", "__weakref__")

    def __init__(self, sock: Any, pending: bytes, uid: int, device: str, config: dict[str, Any],
                 metrics: Any = None) -> None:
        """`pending`: bytes the handshake read past the request (the start of the first frames)."""
        self.id = next(_ids)
        self.uid = uid
        self.device = device
        self._sock = sock
        # The plain socket under gevent's, written to directly when nothing is
        # queued (never a TLS socket: its bytes must go through the wrapper).
        self._raw = sock._sock if type(sock) is GeventSocket else None
        self._reader = SocketFrameReader(self._recv, config["MAX_FRAME_BYTES"], pending)
        self._out: deque[bytes] | tuple = _NOTHING
        self._out_bytes = 0
        self._writer: gevent.Greenlet | None = None
        # key -> [timer, frame, step, first push time]
        self._retries: dict[str, list] = _NO_RETRIES
        self._metrics = metrics
        self._schedule: tuple[float, ...] = tuple(config["ACK_RETRY_SCHEDULE"])
        self._queue_limit: int = config["SEND_QUEUE_LIMIT"]
        self._queue_bytes: int = config["SEND_QUEUE_BYTES"]
        self._loop = gevent.get_hub().loop
        self.closing = False
        self.close_code: int | None = None
        self._close_timer = None
        self._drained: Event | None = None
        burst = config["WS_BURST"]
        self._bucket = TokenBucket(config["WS_RATE"], burst)
        self._strikes = 0
        # Frames pushed to this client earn it a message of its own beyond
        # the budget: the acks a reconnecting client owes for a large pending
        # flush must not be refused (they are bounded by what was pushed).
        self._credit = 0
        self._credit_cap = config["PENDING_LIMIT"] + burst
        self._idle: float = config["WS_IDLE_TIMEOUT"]
        self._idle_timer = None
        self._task: gevent.Greenlet | None = None
        sock.settimeout(None)

    def __repr__(self) -> str:
        return f"<Connection {self.id} uid={self.uid} device={self.device}>"

    # writing -------------------------------------------------------------
    def send(self, text: str) -> bool:
        """Queue one text frame; False when the connection is closing or was closed."""
        return self._enqueue(encode_text(text))

    def send_binary(self, data: bytes) -> bool:
        return self._enqueue(encode_frame(OP_BINARY, data))

    def _enqueue(self, data: bytes, control: bool = False) -> bool:
        if self.closing and not control:
            return False
        out = self._out
        if not control and out and (len(out) >= self._queue_limit
                                    or self._out_bytes + len(data) > self._queue_bytes):
            # The client stopped reading: drop it rather than grow without
            # bound; what it missed is still pending and comes back on reconnect.
            # Frames not yet written are dropped at once (memory is the point
            # of the bound); the close frame follows what is being written.
            # A frame alone always fits, so no message is too large to deliver.
            log.warning("conn %s uid=%s: send queue full (%d frames, %d bytes), closing",
                        self.id, self.uid, len(out), self._out_bytes)
            out.clear()
            self._out_bytes = 0
            self.close(1008, "send queue full")
            return False
        if not out and self._writer is None and self._raw is not None:
            # Nothing queued and no writer: try the socket at once (a
            # non-blocking call, so no other writer can run meanwhile); a
            # writer greenlet is needed only for what the kernel did not take.
            try:
                sent = self._raw.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self.closing = True
                self._shutdown()
                return False
            if sent == len(data):
                return True
            data = data[sent:]
        if out is _NOTHING:
            out = self._out = deque()
        out.append(data)
        self._out_bytes += len(data)
        if self._writer is None:
            self._writer = gevent.spawn(self._drain)
        return True

    def _drain(self) -> None:
        out = self._out
        sock = self._sock
        # Writes are bounded in time; reads are not (the idle timer is).
        sock.settimeout(self._idle)
        try:
            while out:
                if len(out) == 1:
                    data = out.popleft()
                else:
                    data = b"".join(out.popleft() for _ in range(min(WRITE_BATCH, len(out))))
                self._out_bytes -= len(data)
                sock.sendall(data)
        except (OSError, socket.timeout):
            out.clear()
            self._out_bytes = 0
            self.closing = True
            self._shutdown()
        finally:
            sock.settimeout(None)
            if self._out is out and not out:
                self._out = _NOTHING
            self._writer = None
            if self._drained is not None:
                self._drained.set()

    @property
    def queued_bytes(self) -> int:
        """Bytes waiting in the send queue (not yet handed to the socket)."""
        return self._out_bytes

    def _busy(self) -> bool:
        """The send queue is past half of either of its bounds."""
        return len(self._out) > self._queue_limit // 2 or self._out_bytes > self._queue_bytes // 2

    def wait_writable(self, timeout: float = 30.0) -> bool:
        """Block until the send queue is below half its bounds (flow control)."""
        while self._busy() and not self.closing:
            self._drained = Event()
            if not self._drained.wait(timeout):
                return False
        return not self.closing

    def push(self, frame: str | bytes, retry_key: str | None = None) -> None:
        """Send a message frame and, with a key, re-send it on the retry schedule.

        `frame` is the message text, or its WebSocket frame already encoded
        (`encode_text`: a group message is encoded once for all members).
        A key already retrying here was delivered moments ago: a message
        stored while this connection was flushing its pending store reaches
        it both live and from the flush, and must arrive once.
        """
        if retry_key is not None and retry_key in self._retries:
            return
        if isinstance(frame, str):
            frame = encode_text(frame)
        if not self._enqueue(frame):
            return
        if self._credit < self._credit_cap:
            self._credit += 1
        if retry_key is None:
            return
        self._arm(retry_key, frame, 0)

    def _arm(self, key: str, frame: bytes, step: int) -> None:
        retries = self._retries
        if retries is _NO_RETRIES:
            retries = self._retries = {}
        old = retries.pop(key, None)
        if old is not None:
            old[0].close()
        if step >= len(self._schedule):
            return
        timer = self._loop.timer(self._schedule[step])
        retries[key] = [timer, frame, step, old[3] if old is not None else time.monotonic()]
        timer.start(self._retry, key)

    def _retry(self, key: str) -> None:
        entry = self._retries.get(key)
        if entry is None or self.closing:
            return
        timer, frame, step, _ = entry
        if self._busy():
            # Still busy sending: try this step again later instead of piling up.
            self._arm(key, frame, step)
            return
        self._enqueue(frame)
        if self._metrics is not None:
            self._metrics.retries.inc()
        self._arm(key, frame, step + 1)

    def retry_age(self, key: str) -> float | None:
        """Seconds since `key` was first pushed here, while it awaits its ack."""
        entry = self._retries.get(key)
        return None if entry is None else time.monotonic() - entry[3]

    def cancel_retry(self, key: str) -> None:
        retries = self._retries
        entry = retries.pop(key, None) if retries else None
        if entry is not None:
            entry[0].close()

    @property
    def retrying(self) -> int:
        return len(self._retries)

    # a task beside the reading loop ---------------------------------------
    def start_task(self, func: Callable[..., None], *args: Any) -> None:
        """Run `func(self, *args)` in a greenlet of its own that dies with the connection.

        The connection holds the greenlet only while it runs: a finished one
        (about 700 bytes) is not kept for the connection's life.
        """
        task = self._task = gevent.spawn(func, self, *args)
        task.rawlink(self._task_done)

    def _task_done(self, task: gevent.Greenlet) -> None:
        if self._task is task:
            self._task = None

    # closing -------------------------------------------------------------
    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake; the socket goes after CLOSE_GRACE at most."""
        if self.closing:
            return
        self._enqueue(encode_frame(OP_CLOSE, close_payload(code, reason)), control=True)
        self.closing = True
        self.close_code = code
        self._close_timer = self._loop.timer(CLOSE_GRACE)
        self._close_timer.start(self._shutdown)

    def _shutdown(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _finish(self) -> None:
        for entry in self._retries.values():
            entry[0].close()
        self._retries = _NO_RETRIES
        writer = self._writer
        if writer is not None:
            writer.join(timeout=CLOSE_GRACE)
            if self._writer is not None:
                self._writer.kill(block=False)
        if self._close_timer is not None:
            self._close_timer.close()
        if self._idle_timer is not None:
            self._idle_timer.close()
        task = self._task
        if task is not None:
            self._task = None
            task.kill(block=False)
        # The reader refers back to the connection (its `_recv`): no cycle outlives it.
        self._reader = None
        self.closing = True

    # reading -------------------------------------------------------------
    def _recv(self, n: int) -> bytes:
        data = self._sock.recv(n)
        if data:
            # Any bytes from the peer restart the idle countdown.
            self._idle_timer.again(self._on_idle)
        return data

    def _on_idle(self) -> None:
        self.close(1000, "idle timeout")

    def run(self, on_text: Callable[["Connection", str], None],
            on_binary: Callable[["Connection", bytes], None],
            settle: Callable[["Connection"], None] | None = None) -> None:
        """Read frames until the connection ends; text goes to `on_text`.

        `settle(conn)` waits for the work of earlier frames still in flight:
        the client's close is answered only after it, so what a client sent
        before closing has taken effect when it sees the close.
        """
        reader = self._reader
        self._idle_timer = self._loop.timer(self._idle, self._idle)
        self._idle_timer.start(self._on_idle)
        try:
            while True:
                try:
                    opcode, data = reader.read()
                except ProtocolViolation as exc:
                    self.close(exc.close_code, exc.reason)
                    self._half_close()
                    self._discard_input()
                    break
                except socket.timeout:
                    # A read that began while the writer had set the socket's time-out.
                    self.close(1000, "idle timeout")
                    break
                except (ConnectionLost, OSError, ValueError):
                    self.closing = True
                    break
                if opcode == OP_TEXT:
                    if not self.closing and (data == "ping" or self._admit(data)):
                        self._dispatch(on_text, data)
                elif opcode == OP_BINARY:
                    if not self.closing and self._admit(None):
                        on_binary(self, data)
                elif opcode == OP_PING:
                    # Bounded like any frame: a ping flood that never reads is closed with 1008.
                    self._enqueue(encode_frame(OP_PONG, data))
                elif opcode == OP_CLOSE:
                    if not self.closing:
                        if settle is not None:
                            settle(self)
                        code = int.from_bytes(data[:2], "big") if len(data) >= 2 else 1000
                        self.close(code)
                    break
                elif opcode == OP_PONG:
                    pass
        finally:
            self._finish()

    def _admit(self, text: str | None) -> bool:
        """Charge one incoming message to the budget; False if it is refused.

        Heartbeats (the text `ping`, WebSocket pings and pongs) are never
        charged, so a client that was told to slow down keeps its
        connection alive.  Refusals are strikes; a client that slows down
        until its bucket is full again starts with a clean slate, one that
        collects more than a burst of strikes is closed with 1008.
        """
        bucket = self._bucket
        if bucket.take():
            if self._strikes and bucket.tokens >= bucket.burst - 1:
                self._strikes = 0
            return True
        if self._credit > 0:
            self._credit -= 1
            return True
        self._strikes += 1
        if self._strikes > bucket.burst:
            log.warning("conn %s uid=%s: frame flood, closing", self.id, self.uid)
            self.close(1008, "too many frames")
        else:
            self.send(error_frame(1, RATE_LIMITED, _frame_id(text)))
        return False

    def _half_close(self) -> None:
        """After a violation: our close frame, then our end of the TCP stream.

        The peer's close reply cannot be told apart in a stream that broke
        the framing, so the server does not wait for it before closing TCP
        (RFC 6455 7.1.1: the server closes first); the FIN follows the
        close frame, so the peer reads the frame first.
        """
        writer = self._writer
        if writer is not None:
            writer.join(timeout=CLOSE_GRACE)
        try:
            self._sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def _discard_input(self) -> None:
        """After a violation: read and drop what the peer still sends until it closes.

        Closing a socket with unread input makes the kernel send a reset,
        which can destroy our close frame before the peer reads it; the
        grace timer bounds the wait.
        """
        recv = self._sock.recv
        try:
            while recv(65536):
                pass
        except (OSError, ValueError):
            pass

    def _dispatch(self, on_text: Callable[["Connection", str], None], text: str) -> None:
        try:
            on_text(self, text)
        except Exception:
            # A bug must not kill the connection: log it, keep reading.
            log.exception("conn %s uid=%s: unhandled error on a frame", self.id, self.uid)
            self.send(error_frame(1, "Internal error"))


def _frame_id(text: str | None) -> str | None:
    """The `id` of a (short) JSON frame, for an error frame about it."""
    if text is None or len(text) > ID_PARSE_LIMIT or not text.startswith("{"):
        return None
    try:
        frame = loads(text)
    except ValueError:
        return None
    return frame.get("id") if isinstance(frame, dict) else None
