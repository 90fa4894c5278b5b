"""Test helpers: a live in-process server, users, a WebSocket client."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Callable

import websocket

from imboy import ids
from imboy.server import make_server

PASSWORD = "correct horse battery staple"


class LiveServer:
    """The app on 127.0.0.1 and a free port, served by gevent in this process."""

    def __init__(self, app) -> None:
        self.app = app
        self.imboy = app.extensions["imboy"]
        self._server = make_server(app, "127.0.0.1", 0)

    def start(self) -> None:
        self._server.start()
        self.port = self._server.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}/ws"

    def stop(self) -> None:
        self.imboy.shutdown()
        self._server.stop(timeout=2)


@dataclass
class TestUser:
    id: int
    email: str
    token: str
    password: str = PASSWORD

    @property
    def hashid(self) -> str:
        return ids.encode(self.id)

    @property
    def headers(self) -> dict[str, str]:
        return {"authorization": self.token}


def make_user(imboy, email: str, nickname: str = "", password: str = PASSWORD) -> TestUser:
    uid = imboy.accounts.do_create_user(email, password, nickname)
    return TestUser(uid, email, imboy.tokens.access_token(uid), password)


class WsClient:
    """A blocking WebSocket client with JSON helpers and time-outs."""

    def __init__(self, url: str, token: str | None, device: str = "web", timeout: float = 5.0,
                 subprotocols=("text",), header: list[str] | None = None) -> None:
        query = f"?cos={device}" + (f"&authorization={token}" if token else "")
        self.ws = websocket.create_connection(url + query, subprotocols=list(subprotocols) if subprotocols else None,
                                              timeout=timeout, header=header or [])
        self.timeout = timeout

    def send_json(self, frame: dict[str, Any]) -> None:
        self.ws.send(json.dumps(frame))

    def send_text(self, text: str) -> None:
        self.ws.send(text)

    def recv_raw(self, timeout: float | None = None) -> tuple[int, bytes]:
        """The next frame as (opcode, data); close frames included."""
        self.ws.settimeout(timeout or self.timeout)
        frame = self.ws.recv_data_frame(True)
        return frame[0], frame[1].data

    def recv(self, timeout: float | None = None) -> Any:
        """The next text frame, parsed as JSON when it is JSON."""
        self.ws.settimeout(timeout or self.timeout)
        text = self.ws.recv()
        try:
            return json.loads(text)
        except (TypeError, ValueError):
            return text

    def expect(self, predicate: Callable[[Any], bool], timeout: float | None = None) -> Any:
        """Receive until a frame matches `predicate`; fail on time-out."""
        deadline = time.monotonic() + (timeout or self.timeout)
        seen = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no matching frame; saw {seen!r}")
            try:
                frame = self.recv(left)
            except websocket.WebSocketTimeoutException:
                raise AssertionError(f"no matching frame; saw {seen!r}") from None
            if predicate(frame):
                return frame
            seen.append(frame)

    def expect_type(self, kind: str, timeout: float | None = None) -> dict[str, Any]:
        return self.expect(lambda f: isinstance(f, dict) and f.get("type") == kind, timeout)

    def nothing(self, timeout: float = 0.5) -> None:
        """Assert that no frame arrives within `timeout`."""
        self.ws.settimeout(timeout)
        try:
            frame = self.ws.recv()
        except websocket.WebSocketTimeoutException:
            return
        raise AssertionError(f"unexpected frame: {frame!r}")

    def close(self) -> None:
        try:
            self.ws.close(timeout=1)
        except Exception:
            pass
