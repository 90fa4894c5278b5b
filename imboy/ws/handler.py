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
from typing import Any
from urllib.parse import parse_qs

from geventwebsocket.handler import WebSocketHandler
from gevent.pywsgi import WSGIHandler

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
        imboy.users.access_user(uid)
    except ServiceUnavailable as exc:
        raise Refusal("503 Service Unavailable", exc.msg.encode("utf-8")) from None
    except (TokenExpired, TokenInvalid, RefreshTokenNotAccepted) as exc:
        raise _envelope_refusal(exc) from None
    except NotFound:
        raise _envelope_refusal(TokenInvalid("User not found")) from None
    accept = base64.b64encode(hashlib.sha1(key.encode("ascii") + _GUID).digest()).decode("ascii")
    return uid, device, accept


#: Bytes buffered per connection for reading.  gevent's default is 8 KiB,
#: held for a WebSocket's whole life; frames here are small, and the reader
#: asks for larger payloads in one call anyway.
READ_BUFFER = 1024


class ImboyWebSocketHandler(WebSocketHandler):
    """gevent-websocket's handler with the imboy handshake and connection loop."""

    def __init__(self, sock: Any, address: Any, server: Any, rfile: Any = None) -> None:
        super().__init__(sock, address, server, rfile if rfile is not None else sock.makefile("rb", READ_BUFFER))

    def run_application(self) -> None:
        if self.environ.get("PATH_INFO") not in WS_PATHS:
            # Plain HTTP (including upgrade attempts elsewhere): the WSGI app.
            return WSGIHandler.run_application(self)
        imboy = self.application.extensions["imboy"]
        gate = imboy.handshake_gate
        handshakes = imboy.metrics.handshakes
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
        # The request is over: keep nothing of it for the connection's life.
        self.environ = {}
        imboy.router.serve(self.socket, self.rfile, uid, device)

    def _refuse(self, refusal: Refusal) -> None:
        self.close_connection = True
        self.result = [refusal.body]
        self.start_response(refusal.status, [("Content-Type", refusal.content_type),
                                             ("Content-Length", str(len(refusal.body)))])
        self.process_result()

    def log_request(self) -> None:
        if self.server.log is not None:
            WSGIHandler.log_request(self)
