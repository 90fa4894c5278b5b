"""One WebSocket connection: a reading loop, one writer, retry timers.

The greenlet that accepted the connection reads it; every write goes
through `_out`, a bounded queue drained by a writer greenlet that exists
only while there is something to send, so a socket never has two writers
and an idle connection costs no second greenlet (nor a deque: `_out` is
an empty tuple while there is nothing to send).  The connection reads its
frames itself (it is an `imboy.ws.frames.SocketFrameReading`: no reader
object beside it).  Reads block without a socket time-out; a read that
brings bytes stamps the connection, and one sweeper per process (a periodic
libev timer over the connections, not a timer each) closes a connection
silent for WS_IDLE_TIMEOUT with (1000, "idle timeout"), at most
2 * IDLE_SWEEP_MAX seconds late.  Writes keep the socket time-out of WS_IDLE_TIMEOUT while the
writer runs.  Retries are not a timer each: the connections of a process
share one queue per interval of the retry schedule, served by one libev
timer (see `_Shared.retry_after`); a connection's retries die with it, since
the pending store in the database, not a timer, is what guarantees delivery.

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
from ..wire import error_frame
from .frames import (OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, ConnectionLost, ProtocolViolation,
                     SocketFrameReading, close_payload, encode_frame, encode_text)

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
# The longest interval between two idle sweeps.
IDLE_SWEEP_MAX = 2.0
# Retries due this soon after a queue's timer fires are sent with the others.
RETRY_SLACK = 0.01
_ids = count(1)


class _Shared:
    """What the connections of one configuration share: settings and the idle sweeper.

    The sweeper is one periodic timer for all these connections, running
    while there is one.  Every `period` it records the loop's time in
    `stamp`; a read that brings bytes stores the current `stamp` (a shared
    float: nothing is allocated per read) in the connection's `_seen`.  A
    stamp is never later than the read, and at most `period` earlier, so a
    connection is closed at the first sweep with `now - _seen >= idle +
    period`: never before WS_IDLE_TIMEOUT of silence, at most two periods
    after it.
    """

    __slots__ = ("loop", "idle", "period", "schedule", "queue_limit", "queue_bytes", "rate", "burst",
                 "credit_cap", "max_message", "metrics", "conns", "stamp", "_timer", "_due", "_due_timers")

    def __init__(self, loop: Any, config: dict[str, Any], metrics: Any) -> None:
        self.loop = loop
        self.idle = float(config["WS_IDLE_TIMEOUT"])
        self.period = min(self.idle / 8, IDLE_SWEEP_MAX)
        self.schedule: tuple[float, ...] = tuple(config["ACK_RETRY_SCHEDULE"])
        self.queue_limit: int = config["SEND_QUEUE_LIMIT"]
        self.queue_bytes: int = config["SEND_QUEUE_BYTES"]
        self.rate = config["WS_RATE"]
        self.burst = config["WS_BURST"]
        # Frames pushed to a client earn it a message of its own beyond
        # the budget, up to this many.
        self.credit_cap = config["PENDING_LIMIT"] + self.burst
        self.max_message: int = config["MAX_FRAME_BYTES"]
        self.metrics = metrics
        self.conns: set[Connection] = set()
        self.stamp = loop.now()
        self._timer = None
        # Retries by interval: a FIFO of (due, connection, key, entry), due
        # times in order since they are now + the same interval, and the
        # timer of each queue that is not empty.
        self._due: dict[float, deque[tuple[float, Connection, str, list]]] = {}
        self._due_timers: dict[float, Any] = {}

    def key(self) -> tuple:
        return (self.loop, self.idle, self.schedule, self.queue_limit, self.queue_bytes, self.rate,
                self.burst, self.credit_cap, self.max_message, id(self.metrics))

    def add(self, conn: "Connection") -> None:
        if self._timer is None:
            self.loop.update_now()
            self.stamp = self.loop.now()
            self._timer = self.loop.timer(self.period, self.period)
            self._timer.start(self._sweep)
        conn._seen = self.stamp
        self.conns.add(conn)

    def discard(self, conn: "Connection") -> None:
        conns = self.conns
        conns.discard(conn)
        if not conns and self._timer is not None:
            self._timer.close()
            self._timer = None

    def retry_after(self, delay: float, conn: "Connection", key: str, entry: list) -> None:
        """Call `conn._retry(key, entry)` in `delay` seconds if `entry` is still its retry of `key`.

        A cancelled retry is not looked for: its item stays queued until due
        and is skipped then (a tuple, where a timer each cost a libev
        watcher started and stopped per message pushed).
        """
        queue = self._due.get(delay)
        if queue is None:
            queue = self._due[delay] = deque()
        queue.append((self.loop.now() + delay, conn, key, entry))
        if delay not in self._due_timers:
            self._start_due(delay, delay)

    def _start_due(self, delay: float, after: float) -> None:
        # A new timer each time: a one-shot libev timer started again from its
        # own callback fires at once.
        timer = self._due_timers[delay] = self.loop.timer(max(after, 0.0))
        timer.start(self._fire_due, delay)

    def _fire_due(self, delay: float) -> None:
        queue = self._due[delay]
        until = self.loop.now() + RETRY_SLACK
        # Only what was queued before: a retry put off again goes to the back.
        left = len(queue)
        while left and queue[0][0] <= until:
            left -= 1
            _, conn, key, entry = queue.popleft()
            if conn._retries.get(key) is entry:  # not acked, cancelled, re-armed nor closed since
                try:
                    conn._retry(key, entry)
                except Exception:  # one connection's failure must not stop the others' retries
                    log.exception("conn %s: retry of %s failed", conn.id, key)
        # Listed until now, so that the retries above started no other timer.
        self._due_timers.pop(delay).close()
        if queue:
            self._start_due(delay, queue[0][0] - self.loop.now())
        else:
            del self._due[delay]

    def _sweep(self) -> None:
        now = self.stamp = self.loop.now()
        limit = now - self.idle - self.period
        silent = [c for c in self.conns if c._seen <= limit and not c.closing]
        for conn in silent:
            try:
                conn.close(1000, "idle timeout")
            except Exception:  # one connection's failure must not stop the sweeper
                log.exception("conn %s: closing on idle failed", conn.id)


_shared: dict[tuple, _Shared] = {}


def _shared_for(config: dict[str, Any], metrics: Any) -> _Shared:
    shared = _Shared(gevent.get_hub().loop, config, metrics)
    key = shared.key()
    found = _shared.get(key)
    if found is None:
        found = _shared[key] = shared
    return found


class Connection(SocketFrameReading):
    __slots__ = ("id", "uid", "device", "_sock", "_s", "_buf", "_pos", "_frag", "_seen", "_out",
                 "_out_bytes", "_writer", "_retries", "closing", "close_code", "_close_timer", "_drained",
                 "_tokens", "_filled", "_strikes", "_credit", "_task")

    def __init__(self, sock: Any, pending: bytes, uid: int, device: str, config: dict[str, Any],
                 metrics: Any = None) -> None:
        """`pending`: bytes the handshake read past the request (the start of the first frames)."""
        self.id = next(_ids)
        self.uid = uid
        self.device = device
        self._sock = sock
        # Settings shared by the connections of this configuration, and the idle sweeper.
        self._s = _shared_for(config, metrics)
        # Reading state (see `SocketFrameReading`): the bytes read ahead, and a
        # fragmented message being assembled.
        self._buf = pending
        self._pos = 0
        self._frag = None
        self._seen = 0.0
        self._out: deque[bytes] | tuple = _NOTHING
        self._out_bytes = 0
        self._writer: gevent.Greenlet | None = None
        # key -> [frame, step, first push time, held while its ack is being stored]
        self._retries: dict[str, list] = _NO_RETRIES
        self.closing = False
        self.close_code: int | None = None
        self._close_timer = None
        self._drained: Event | None = None
        # The message budget, a token bucket of WS_RATE a second up to
        # WS_BURST (as `imboy.ratelimit.TokenBucket`, folded in): `_tokens`
        # as of `_filled` (None: never drawn on, full).
        self._tokens: float = self._s.burst
        self._filled: float | None = None
        self._strikes = 0
        # Frames pushed to this client earn it a message of its own beyond
        # the budget: the acks a reconnecting client owes for a large pending
        # flush must not be refused (they are bounded by what was pushed).
        self._credit = 0
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
        if not control and out and (len(out) >= self._s.queue_limit
                                    or self._out_bytes + len(data) > self._s.queue_bytes):
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
        if not out and self._writer is None and type(self._sock) is GeventSocket:
            # Nothing queued and no writer: try the socket at once (a
            # non-blocking call on the plain socket under gevent's, so no
            # other writer can run meanwhile; never a TLS socket: its bytes
            # must go through the wrapper); a writer greenlet is needed only
            # for what the kernel did not take.
            try:
                sent = self._sock._sock.send(data)
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
        sock.settimeout(self._s.idle)
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
    def max_message(self) -> int:  # type: ignore[override]
        return self._s.max_message

    @property
    def queued_bytes(self) -> int:
        """Bytes waiting in the send queue (not yet handed to the socket)."""
        return self._out_bytes

    def _busy(self) -> bool:
        """The send queue is past half of either of its bounds."""
        s = self._s
        return len(self._out) > s.queue_limit // 2 or self._out_bytes > s.queue_bytes // 2

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
        if self._credit < self._s.credit_cap:
            self._credit += 1
        if retry_key is None:
            return
        self._arm(retry_key, frame, 0)

    def _arm(self, key: str, frame: bytes, step: int) -> None:
        retries = self._retries
        if retries is _NO_RETRIES:
            retries = self._retries = {}
        old = retries.pop(key, None)
        schedule = self._s.schedule
        if step >= len(schedule):
            return
        entry = retries[key] = ([frame, step, old[2], old[3]] if old is not None
                                else [frame, step, time.monotonic(), False])
        self._s.retry_after(schedule[step], self, key, entry)

    def _retry(self, key: str, entry: list) -> None:
        """`entry`'s interval is over and it is still the retry of `key`."""
        if self.closing:
            return
        frame, step, _, held = entry
        if held or self._busy() or self._unread():
            # The client's ack is being stored, or may be among what it sent
            # that this server has not read yet, or the queue is still busy:
            # try this step again later instead of sending a copy.
            self._arm(key, frame, step)
            return
        self._enqueue(frame)
        metrics = self._s.metrics
        if metrics is not None:
            metrics.retries.inc()
        self._arm(key, frame, step + 1)

    def _unread(self) -> bool:
        """Bytes from the client wait to be read: read ahead and not yet parsed, or still
        in the socket (a server busy elsewhere, or a reading loop waiting for earlier
        frames to be stored)."""
        if self._pos < len(self._buf):
            return True
        sock = self._sock
        if type(sock) is not GeventSocket:
            return False
        try:
            return bool(sock._sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
        except OSError:  # nothing waiting (EAGAIN), or the connection is gone
            return False

    def retry_age(self, key: str) -> float | None:
        """Seconds since `key` was first pushed here, while it awaits its ack."""
        entry = self._retries.get(key)
        return None if entry is None else time.monotonic() - entry[2]

    def hold_retry(self, key: str, held: bool = True) -> None:
        """The client acked `key` and the ack is being stored: no copy is sent meanwhile
        (a due step waits its interval again).  `held=False` when storing it failed:
        the retries go on."""
        entry = self._retries.get(key)
        if entry is not None:
            entry[3] = held

    def cancel_retry(self, key: str) -> None:
        retries = self._retries
        if retries:
            retries.pop(key, None)

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
        self._close_timer = self._s.loop.timer(CLOSE_GRACE)
        self._close_timer.start(self._shutdown)

    def _shutdown(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _finish(self) -> None:
        self._retries = _NO_RETRIES
        writer = self._writer
        if writer is not None:
            writer.join(timeout=CLOSE_GRACE)
            if self._writer is not None:
                self._writer.kill(block=False)
        if self._close_timer is not None:
            self._close_timer.close()
        self._s.discard(self)
        task = self._task
        if task is not None:
            self._task = None
            task.kill(block=False)
        self._buf = b""
        self._frag = None
        self.closing = True

    # reading -------------------------------------------------------------
    def _recv(self, n: int) -> bytes:
        data = self._sock.recv(n)
        if data:
            # Any bytes from the peer restart the idle countdown.
            self._seen = self._s.stamp
        return data

    def run(self, on_text: Callable[["Connection", str], None],
            on_binary: Callable[["Connection", bytes], None],
            settle: Callable[["Connection"], None] | None = None) -> None:
        """Read frames until the connection ends; text goes to `on_text`.

        `settle(conn)` waits for the work of earlier frames still in flight:
        the client's close is answered only after it, so what a client sent
        before closing has taken effect when it sees the close.
        """
        self._s.add(self)
        try:
            while True:
                try:
                    opcode, data = self.read()
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
        s = self._s
        now = time.monotonic()
        filled = self._filled
        tokens = s.burst if filled is None else min(s.burst, self._tokens + (now - filled) * s.rate)
        self._filled = now
        if tokens >= 1.0:
            self._tokens = tokens - 1.0
            if self._strikes and tokens >= s.burst:
                self._strikes = 0
            return True
        self._tokens = tokens
        if self._credit > 0:
            self._credit -= 1
            return True
        self._strikes += 1
        if self._strikes > s.burst:
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
