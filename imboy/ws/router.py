"""Frames in, frames out: the WebSocket side of PROTOCOL section 4.

`serve` runs one accepted connection: register it (kicking an older one of
the same device type), announce presence, flush the pending store, then read
frames and dispatch them by type to the message service.  Acknowledgements
to a sender go out only after the service's transaction committed.

WS_ECHO (test only, off by default) makes every accepted connection echo
its text and binary messages verbatim instead: the Autobahn conformance
suite checks the framing layer by echoes, and this way it exercises exactly
the reader, writer and handshake that production uses.
"""
from __future__ import annotations

import logging
from collections import deque
from typing import Any, Callable

import gevent
from gevent.event import Event

from .. import ids, wire
from ..clock import now_ms
from ..errors import BadRequest, ImboyError
from ..jsonutil import loads
from ..wire import c2c_frame, c2g_frame, error_frame, revoke_frame, s2c_frame, server_ack
from .connection import Connection
from .handler import peer_gone

log = logging.getLogger("imboy.ws")

MAX_ID = 40
# Seconds between attempts to load the pending store at connect.
FLUSH_RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0)
# At most this long a frame waits for the messages and acks before it to be stored.
SETTLE_TIMEOUT = 30.0
# Frames of one connection being stored at once; the next one waits.
MAX_IN_FLIGHT = 64


def _msg_id(frame: dict[str, Any]) -> str:
    msg_id = frame.get("id")
    if not isinstance(msg_id, str) or not 1 <= len(msg_id) <= MAX_ID or not wire.encodable(msg_id):
        raise BadRequest(f"A message needs a string id of 1 to {MAX_ID} characters")
    return msg_id


def _target(frame: dict[str, Any], what: str) -> int:
    to = frame.get("to")
    n = ids.decode(to) if isinstance(to, str) else 0
    if n <= 0:
        raise BadRequest(f"Unknown {what}")
    return n


def _payload(frame: dict[str, Any]) -> str:
    payload = frame.get("payload")
    if not isinstance(payload, (dict, str)):
        raise BadRequest("The payload must be an object or a string")
    try:
        return wire.payload_json(payload)
    except ValueError:
        raise BadRequest("The payload is not valid JSON text (NaN, Infinity or a lone surrogate)") from None


def _created_at(frame: dict[str, Any]) -> int:
    value = frame.get("created_at")
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**63:
        return value
    return now_ms()


class Router:
    def __init__(self, imboy: Any) -> None:
        self.config = imboy.config
        self.registry = imboy.registry
        self.messages = imboy.messages
        self.presence = imboy.presence
        self.sessions = imboy.sessions
        self.metrics = imboy.metrics
        self.echo = bool(self.config.get("WS_ECHO"))
        if self.echo:
            log.warning("IMBOY_WS_ECHO is on: /ws echoes messages (a test-only mode, not the protocol)")
        self._handlers: dict[str, Callable[[Connection, dict[str, Any]], None]] = {
            "C2C": self.on_c2c,
            "C2C_CLIENT_ACK": self.on_c2c_ack,
            "C2C_REVOKE": self.on_revoke,
            "C2C_REVOKE_ACK": self.on_revoke_ack,
            "C2G": self.on_c2g,
            "GROUP": self.on_c2g,
            "C2G_CLIENT_ACK": self.on_c2g_ack,
        }
        # One-to-one messages and acks are stored without holding up the
        # reading loop (up to MAX_IN_FLIGHT per connection, in order); any other
        # frame first waits for them, so a connection's frames take effect in order.
        self._async = (self.on_c2c, self.on_c2c_ack, self.on_c2g_ack)
        self._inflight: dict[int, list] = {}  # conn id -> [frames being stored, Event or None]
        # Counters of every frame, looked up once rather than per frame.
        frames_in = self.metrics.frames_in
        self._frames_in = {kind: frames_in.labels(kind) for kind in [*self._handlers, "ping", "unknown"]}
        acks, frames_out, latency = self.metrics.acks, self.metrics.frames_out, self.metrics.delivery_latency
        self._ack_counts = {kind: acks.labels(kind) for kind in ("c2c_server", "c2g_server", "c2c_client", "c2g_client")}
        self._frames_out = {kind: frames_out.labels(kind) for kind in ("C2C", "C2G")}
        self._latency = {kind: latency.labels(kind) for kind in ("c2c", "c2g")}
        # Bound once, not per connection (two bound methods held for a connection's life).
        self._callbacks = (self.on_text, self.on_binary, self._settle)
        # Group messages waiting to be pushed to their members, in the order stored.
        self._fanouts: deque[tuple[list[int], str, str]] = deque()
        self._fanning = False

    # connection lifecycle -----------------------------------------------------
    def serve(self, sock: Any, pending: bytes, uid: int, device: str) -> None:
        """Serve an upgraded socket; `pending` holds bytes read past the handshake."""
        if peer_gone(sock):
            # The client gave up while its handshake waited (a reconnect storm):
            # registering it now would kick the connection it has opened since.
            log.debug("uid=%s left before its connection was served", uid)
            return
        conn = Connection(sock, pending, uid, device, self.config, self.metrics)
        if self.echo:
            # Not registered: an echo connection is nobody's presence.
            conn.run(echo_text, echo_binary)
            return
        first, old = self.registry.add(conn)
        connections = self.metrics.connections.labels(device)
        connections.inc()
        if old is not None:
            self.kick(old)
        try:
            # Held by the connection only while it runs; killed when the connection ends.
            conn.start_task(self.flush_pending, first)
            on_text, on_binary, settle = self._callbacks
            # Arguments spelled out: `f(*args)` re-enters the interpreter in C,
            # and the connection's greenlet would keep that C frame (about
            # 500 bytes of saved stack) for its whole life.
            conn.run(on_text, on_binary, settle)
        finally:
            connections.dec()
            # What the client sent before it left is stored before it is gone.
            self._settle(conn)
            if self.registry.remove(conn):
                self.presence.departed(uid)

    def kick(self, conn: Connection) -> None:
        """Another login on the same device type: S2C 786, then close 4786."""
        conn.send(s2c_frame("786", conn.uid, conn.uid, "logged in on another device"))
        conn.close(4786, "logged in on another device")

    def flush_pending(self, conn: Connection, first: bool = False) -> None:
        """Push every pending message, oldest first, each with its retries.

        For the user's `first` connection, friends online hear first that
        the user is online (read in the same transaction as the messages).

        Flow control: the flush never fills the send queue past half its
        bound, so a large backlog reaches a slow but reading client instead
        of overflowing the queue; a client that stops reading is closed and
        gets the rest on its next connect.
        """
        pending = None
        for delay in FLUSH_RETRY_DELAYS:
            try:
                pending = self.sessions.arrive(conn.uid, first)
                break
            except ImboyError as exc:
                # A busy or briefly unreachable database must not leave a
                # connected client without its messages until it reconnects.
                log.warning("conn %s: pending store unavailable (%s); trying again in %.1fs",
                            conn.id, exc.msg, delay)
                gevent.sleep(delay)
                if conn.closing:
                    return
        if pending is None:
            # Still unavailable: make the client reconnect later (1013: try again later).
            conn.close(1013, "pending store unavailable")
            return
        for kind, row in pending:
            if not conn.wait_writable():
                conn.close(1008, "not reading")
                return
            if kind == "C2C":
                conn.push(c2c_frame(row), "c2c:" + row["msg_id"])
            else:
                conn.push(c2g_frame(row), "c2g:" + row["msg_id"])

    # frames ---------------------------------------------------------------------
    def on_binary(self, conn: Connection, data: bytes) -> None:
        conn.send(error_frame(1, "Binary frames are not supported"))

    def on_text(self, conn: Connection, text: str) -> None:
        if text == "ping":
            self._settle(conn)
            self._frames_in["ping"].inc()
            conn.send("pong2")
            return
        if text == "logout":
            self._settle(conn)
            conn.close(1000, "logout")
            return
        try:
            frame = loads(text)
        except ValueError:
            conn.send(error_frame(1, "Malformed JSON"))
            return
        if not isinstance(frame, dict):
            conn.send(error_frame(1, "A frame must be a JSON object"))
            return
        kind = frame.get("type")
        handler = self._handlers.get(kind.upper()) if isinstance(kind, str) else None
        if handler not in self._async:
            self._settle(conn)
        self._frames_in[kind.upper() if handler is not None else "unknown"].inc()
        try:
            if handler is None:
                raise BadRequest("Unknown frame type")
            handler(conn, frame)
        except ImboyError as exc:
            self.metrics.errors.labels(str(exc.code), "ws").inc()
            conn.send(error_frame(exc.code, exc.msg, frame.get("id")))
        except Exception:
            # A bug or an unexpected failure: the client learns which frame
            # failed, the connection keeps going.
            log.exception("conn %s uid=%s: unhandled error on a %r frame", conn.id, conn.uid, kind)
            conn.send(error_frame(1, "Internal error", frame.get("id")))

    def on_c2c(self, conn: Connection, frame: dict[str, Any]) -> None:
        """Stored in the next batch while the reading loop goes on; the server ack
        follows the commit (in the order the client sent its messages)."""
        msg_id = _msg_id(frame)
        to = _target(frame, "recipient")

        def done(ok: bool, stored: Any) -> None:
            if not ok:
                self._refuse(conn, stored, msg_id)
                return
            conn.send(server_ack("C2C_SERVER_ACK", msg_id, stored.row["server_ts"]))
            self._ack_counts["c2c_server"].inc()
            if stored.new:
                self.registry.push_soon(to, c2c_frame(stored.row), "c2c:" + msg_id)
                self._frames_out["C2C"].inc()

        payload, created_at = _payload(frame), _created_at(frame)
        self._tracked(conn, done, lambda finish: self.messages.send_c2c(
            conn.uid, to, msg_id, payload, created_at, finish))

    def on_c2c_ack(self, conn: Connection, frame: dict[str, Any]) -> None:
        """Stored without holding up the reading loop; nothing is sent back unless it fails."""
        msg_id = _msg_id(frame)
        key = "c2c:" + msg_id

        def done(ok: bool, found: Any) -> None:
            if ok and found:
                self._delivered(conn, "c2c", key)
                self.registry.cancel_retry(conn.uid, key)
            else:
                conn.hold_retry(key, False)
                self._refuse(conn, found if not ok else BadRequest("Unknown message"), msg_id)

        conn.hold_retry(key)
        self._tracked(conn, done, lambda finish: self.messages.ack_c2c_later(conn.uid, msg_id, finish))

    def on_revoke(self, conn: Connection, frame: dict[str, Any]) -> None:
        msg_id = _msg_id(frame)
        peer = _target(frame, "recipient")
        row = self.messages.revoke_c2c(conn.uid, peer, msg_id)
        to = row["to_id"]
        self.registry.cancel_retry(to, "c2c:" + msg_id)
        if self.registry.push(to, revoke_frame("C2C_REVOKE", msg_id, conn.uid, to)) == 0:
            conn.send(revoke_frame("C2C_REVOKE_ACK", msg_id, to, conn.uid))

    def on_revoke_ack(self, conn: Connection, frame: dict[str, Any]) -> None:
        msg_id = _msg_id(frame)
        revoker = _target(frame, "revoker")
        self.messages.check_revoke_ack(conn.uid, revoker, msg_id)
        self.registry.push(revoker, revoke_frame("C2C_REVOKE_ACK", msg_id, conn.uid, revoker))

    def on_c2g(self, conn: Connection, frame: dict[str, Any]) -> None:
        msg_id = _msg_id(frame)
        gid = _target(frame, "group")
        stored = self.messages.send_c2g(conn.uid, gid, msg_id, _payload(frame), _created_at(frame))
        conn.send(server_ack("C2G_SERVER_ACK", msg_id, stored.row["server_ts"]))
        self._ack_counts["c2g_server"].inc()
        if stored.new:
            self._fan_out(stored.recipients, c2g_frame(stored.row), "c2g:" + msg_id)

    def _fan_out(self, uids: list[int], frame: str, key: str) -> None:
        """Push a stored group message to its members from one greenlet, in the order stored.

        The sender's reading loop goes on meanwhile: its next message is
        being stored while this one reaches a thousand members, instead of
        after.  (Stored first: whatever this misses, the pending store has.)
        """
        self._fanouts.append((uids, frame, key))
        if not self._fanning:
            self._fanning = True
            gevent.spawn(self._fan_out_all)

    def _fan_out_all(self) -> None:
        try:
            while self._fanouts:
                uids, frame, key = self._fanouts.popleft()
                try:
                    self.registry.push_many(uids, frame, key)
                    self._frames_out["C2G"].inc(len(uids))
                except Exception:
                    log.exception("group message %s not pushed to its members", key)
        finally:
            self._fanning = False

    def on_c2g_ack(self, conn: Connection, frame: dict[str, Any]) -> None:
        msg_id = _msg_id(frame)
        key = "c2g:" + msg_id

        def done(ok: bool, error: Any) -> None:
            if ok:
                self._delivered(conn, "c2g", key)
                self.registry.cancel_retry(conn.uid, key)
            else:
                conn.hold_retry(key, False)
                self._refuse(conn, error, msg_id)

        conn.hold_retry(key)
        self._tracked(conn, done, lambda finish: self.messages.ack_c2g_later(conn.uid, msg_id, finish))

    def _tracked(self, conn: Connection, done: Callable[[bool, Any], None],
                 submit: Callable[[Callable[[bool, Any], None]], None]) -> None:
        """`submit(callback)` a frame of `conn` for storing; it counts as in flight until
        `done` ran (or `submit` itself failed: then nothing was queued)."""
        entry = self._inflight.get(conn.id)
        if entry is not None and entry[0] >= MAX_IN_FLIGHT:
            self._settle(conn)
            entry = self._inflight.get(conn.id)
        if entry is None:
            entry = self._inflight[conn.id] = [0, None]
        entry[0] += 1

        def release() -> None:
            entry[0] -= 1
            if entry[0] == 0:
                if self._inflight.get(conn.id) is entry:
                    del self._inflight[conn.id]
                if entry[1] is not None:
                    entry[1].set()

        def finish(ok: bool, value: Any) -> None:
            try:
                done(ok, value)
            finally:
                release()

        try:
            submit(finish)
        except BaseException:
            release()
            raise

    def _settle(self, conn: Connection) -> None:
        """Wait until the messages and acks `conn` sent before are stored."""
        entry = self._inflight.get(conn.id)
        if entry is not None:
            if entry[1] is None:
                entry[1] = Event()
            entry[1].wait(SETTLE_TIMEOUT)

    def _refuse(self, conn: Connection, error: Exception, msg_id: str) -> None:
        """An error frame for a frame whose outcome came after the reading loop moved on."""
        if isinstance(error, ImboyError):
            self.metrics.errors.labels(str(error.code), "ws").inc()
            conn.send(error_frame(error.code, error.msg, msg_id))
        else:
            log.error("conn %s uid=%s: ack %s failed: %r", conn.id, conn.uid, msg_id, error)
            conn.send(error_frame(1, "Internal error", msg_id))

    def _delivered(self, conn: Connection, kind: str, key: str) -> None:
        """Count a client ack and, when this connection pushed it, the delivery time."""
        self._ack_counts[kind + "_client"].inc()
        age = conn.retry_age(key)
        if age is not None:
            self._latency[kind].observe(age)

    # events from the HTTP side ------------------------------------------------------
    def notify(self, uid: int, frame: str) -> int:
        """Push a system event to every connection of `uid` (no retries)."""
        return self.registry.push(uid, frame)


def echo_text(conn: Connection, text: str) -> None:
    """WS_ECHO mode (tests only): a text message comes back as it was."""
    conn.send(text)


def echo_binary(conn: Connection, data: bytes) -> None:
    conn.send_binary(data)
