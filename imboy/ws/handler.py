"""The WebSocket handshake, decided before the upgrade.

`ImboyWebSocketHandler` is gevent-websocket's handler with `/ws` taken over:
the protocol's refusals (400, 406, 412, and the 705/706 envelope) are
answered as plain HTTP before any upgrade, and an accepted connection runs
`Connection` with this server's own framing.  Every other path goes to the
WSGI application untouched.  The gunicorn worker class uses the same handler.
"""
from __future__ import annotations

import base64
import hashlib
import logging
import socket
from typing import Any
from urllib.parse import parse_qs

from gevent import Greenlet, getcurrent
from gevent.pool import PoolFull
from gevent.pywsgi import WSGIHandler
from gevent.socket import socket as GeventSocket
from geventwebsocket.handler import WebSocketHandler

from ..errors import (ImboyError, NotFound, RefreshTokenNotAccepted, ServiceUnavailable, TokenExpired,
                      TokenInvalid)
from ..jsonutil import dumps

log = logging.getLogger("imboy.ws")

WS_PATHS = ("/ws", "/ws/")
DEVICE_TYPES = ("web", "ios", "android", "macos", "windows", "linux")
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class Refusal(Exception):
    def __init__(self, status: str, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.content_type = content_type
        #: The metrics label: the HTTP status, or the envelope's code.
        self.outcome = status.split(" ", 1)[0]


def _envelope_refusal(exc: ImboyError) -> Refusal:
    body = dumps({"code": exc.code, "msg": exc.msg, "payload": []}).encode("utf-8")
    refusal = Refusal("200 OK", body, "application/json; charset=utf-8")
    refusal.outcome = f"code_{exc.code}"
    return refusal


def decide(environ: dict[str, Any], imboy: Any) -> tuple[int, str, str]:
    """Apply the handshake rules; returns (uid, device, Sec-WebSocket-Accept) or raises Refusal."""
    if environ.get("REQUEST_METHOD") != "GET":
        raise Refusal("405 Method Not Allowed", b"WebSocket handshakes use GET")
    if (environ.get("HTTP_UPGRADE", "").lower() != "websocket"
            or "upgrade" not in environ.get("HTTP_CONNECTION", "").lower()):
        raise Refusal("400 Bad Request", b"WebSocket upgrade required")
    protocols = environ.get("HTTP_SEC_WEBSOCKET_PROTOCOL")
    if protocols is None:
        raise Refusal("400 Bad Request", b"Sec-WebSocket-Protocol required")
    if "text" not in [p.strip() for p in protocols.split(",")]:
        raise Refusal("406 Not Acceptable", b"Sec-WebSocket-Protocol must offer text")
    if environ.get("HTTP_SEC_WEBSOCKET_VERSION") != "13":
        raise Refusal("426 Upgrade Required", b"Sec-WebSocket-Version 13 required")
    key = environ.get("HTTP_SEC_WEBSOCKET_KEY", "").strip()
    try:
        if len(base64.b64decode(key, validate=True)) != 16:
            raise ValueError
    except ValueError:
        raise Refusal("400 Bad Request", b"Invalid Sec-WebSocket-Key") from None

    query = parse_qs(environ.get("QUERY_STRING", ""))
    token = environ.get("HTTP_AUTHORIZATION") or (query.get("authorization") or [""])[-1]
    if not token:
        raise Refusal("412 Precondition Failed", b"authorization required")
    device = (environ.get("HTTP_COS") or (query.get("cos") or ["web"])[-1] or "web").lower()
    if device not in DEVICE_TYPES:
        raise Refusal("400 Bad Request", b"Unknown device type (cos)")
    try:
        uid = imboy.tokens.verify_access(token)
        imboy.users.check_active(uid)
    except ServiceUnavailable as exc:
        raise Refusal("503 Service Unavailable", exc.msg.encode("utf-8")) from None
    except (TokenExpired, TokenInvalid, RefreshTokenNotAccepted) as exc:
        raise _envelope_refusal(exc) from None
    except NotFound:
        raise _envelope_refusal(TokenInvalid("User not found")) from None
    accept = base64.b64encode(hashlib.sha1(key.encode("ascii") + _GUID).digest()).decode("ascii")
    return uid, device, accept


#: Bytes buffered for reading an HTTP request (gevent's default is 8 KiB).
#: The reader lives only as long as the request: an upgraded connection
#: reads its frames from the socket itself.
READ_BUFFER = 1024


class ImboyWebSocketHandler(WebSocketHandler):
    """gevent-websocket's handler with the imboy handshake and connection loop.

    Once the handshake is accepted, nothing of the HTTP request is kept for
    the WebSocket's life: `run_application` answers 101 and leaves the
    connection in `_upgraded`, pywsgi's request loop returns without closing
    the socket, and `handle` hands the connection to a fresh greenlet whose
    stack is only the connection's, then lets the request's greenlet end.
    The fresh greenlet takes the request greenlet's place in the server's
    pool (gunicorn's `worker_connections`), so the pool still counts every
    connection and `server.stop()` still reaches it.
    """

    def __init__(self, sock: Any, address: Any, server: Any, rfile: Any = None) -> None:
        super().__init__(sock, address, server, rfile if rfile is not None else sock.makefile("rb", READ_BUFFER))
        self._upgraded: tuple | None = None

    def handle(self) -> None:
        WSGIHandler.handle(self)
        upgraded = self._upgraded
        if upgraded is None:
            return
        pool = getattr(self.server, "pool", None)
        # The request, its headers, environ, reader and input die here.
        self.__dict__.clear()
        sock = upgraded[1]
        if type(sock) is not GeventSocket:
            # A wrapped socket (TLS) is not moved: served in place.
            _serve(*upgraded)
            return
        # The server closes the socket object it gave this greenlet when the
        # greenlet ends: the connection gets its own object for the same file.
        own = GeventSocket(sock.family, sock.type, sock.proto, fileno=sock.detach())
        task = Greenlet(_serve, upgraded[0], own, *upgraded[2:])
        del upgraded, sock
        current = getcurrent()
        if pool is not None and current in pool:
            # Hand this greenlet's place in the pool to the connection's; no
            # switch happens between the two, so the place cannot be taken.
            pool.discard(current)
            try:
                pool.add(task, blocking=False)
            except PoolFull:  # not expected; serve it all the same
                log.warning("connection not counted in the server's pool")
        task.start()

    def handle_one_request(self) -> Any:
        result = WSGIHandler.handle_one_request(self)
        if self._upgraded is not None:
            # The socket belongs to the WebSocket now: pywsgi's loop must neither
            # read another request from it nor close it.
            self.socket = None
            return None
        return result

    def run_application(self) -> None:
        if self.environ.get("PATH_INFO") not in WS_PATHS:
            # Plain HTTP (including upgrade attempts elsewhere): the WSGI app.
            return WSGIHandler.run_application(self)
        imboy = self.application.extensions["imboy"]
        gate = imboy.handshake_gate
        handshakes = imboy.metrics.handshakes
        if peer_gone(self.socket):
            # Its client gave up while the request waited to be read (a
            # reconnect storm): no database work for a connection nobody holds.
            handshakes.labels("gone").inc()
            self.close_connection = True
            return
        if not gate.acquire(blocking=False):
            handshakes.labels("busy").inc()
            self._refuse(Refusal("503 Service Unavailable", b"Too many handshakes, retry"))
            return
        try:
            uid, device, accept = decide(self.environ, imboy)
        except Refusal as refusal:
            handshakes.labels(refusal.outcome).inc()
            self._refuse(refusal)
            return
        finally:
            gate.release()
        handshakes.labels("accepted").inc()
        self.start_response("101 Switching Protocols", [
            ("Upgrade", "websocket"), ("Connection", "Upgrade"),
            ("Sec-WebSocket-Accept", accept), ("Sec-WebSocket-Protocol", "text")])
        self.write(b"")
        self.close_connection = True
        # Served by `handle` once the request is over; the bytes the request's
        # reader already holds are the start of the first frames.
        self._upgraded = (imboy.router, self.socket, _buffered(self.rfile, self.socket), uid, device)

    def _refuse(self, refusal: Refusal) -> None:
        self.close_connection = True
        self.result = [refusal.body]
        self.start_response(refusal.status, [("Content-Type", refusal.content_type),
                                             ("Content-Length", str(len(refusal.body)))])
        self.process_result()

    def log_request(self) -> None:
        if self.server.log is not None:
            WSGIHandler.log_request(self)


def peer_gone(sock: Any) -> bool:
    """Whether the client already closed or reset the connection (asked without waiting)."""
    raw = getattr(sock, "_sock", sock)
    try:
        return raw.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:
        return True


def _serve(router: Any, sock: Any, pending: bytes, uid: int, device: str) -> None:
    """The connection's greenlet: its whole stack is this and the reading loop."""
    try:
        router.serve(sock, pending, uid, device)
    except Exception:
        log.exception("WebSocket of uid=%s failed", uid)
    finally:
        _close(sock)


def _buffered(rfile: Any, sock: Any) -> bytes:
    """What `rfile` has read past the request, without waiting for more.

    A client may send frames right behind its handshake; whatever of them
    the buffered reader took from the socket is handed to the connection.
    """
    timeout = sock.timeout
    sock.settimeout(0.0)
    try:
        return rfile.read1(READ_BUFFER) or b""
    except (BlockingIOError, InterruptedError):
        return b""
    finally:
        sock.settimeout(timeout)


def _close(sock: Any) -> None:
    """Close a served WebSocket as pywsgi closes a finished request's socket.

    Unread input at close makes the kernel answer with a reset, so whatever
    the peer still sent is read out (without waiting) first.
    """
    raw = getattr(sock, "_sock", None)
    try:
        if raw is not None:
            try:
                raw.recv(16384)
            finally:
                raw.close()
        sock.close()
    except OSError:
        pass
