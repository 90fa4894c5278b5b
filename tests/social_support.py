"""Helpers for the social-graph API tests: HTTP calls as a user, WebSocket
clients that are registered before the test goes on, S2C event matching.

`fast_passwords` is an autouse fixture the test modules import: these tests
never log in with a password, and the real KDF would dominate their run time.
"""
from __future__ import annotations

import time
from typing import Any

import gevent
import pytest
import websocket

from imboy import passwords

from .helpers import TestUser, WsClient


@pytest.fixture(autouse=True)
def fast_passwords(monkeypatch):
    """Cheap password hashes for users these tests create (never used to log in)."""
    monkeypatch.setattr(passwords, "hash_password", lambda password: "test-only-not-a-hash")


def call(client: Any, user: TestUser | None, path: str, method: str = "POST", json: Any = None,
         **data: Any) -> dict[str, Any]:
    """The envelope of one API call (form body for POST, query string for GET)."""
    headers = user.headers if user is not None else {}
    if method == "GET":
        resp = client.get(path, query_string=data, headers=headers)
    elif json is not None:
        resp = client.post(path, json=json, headers=headers)
    else:
        resp = client.post(path, data=data, headers=headers)
    assert resp.status_code == 200, (path, resp.status_code, resp.data[:200])
    assert resp.content_type == "application/json; charset=utf-8"
    return resp.get_json()


def ok(client: Any, user: TestUser | None, path: str, method: str = "POST", **data: Any) -> Any:
    """The payload of a call that must succeed."""
    body = call(client, user, path, method, **data)
    assert body["code"] == 0, (path, body)
    return body["payload"]


def refused(client: Any, user: TestUser | None, path: str, code: int, method: str = "POST",
            **data: Any) -> str:
    """The msg of a call that must be refused with `code`."""
    body = call(client, user, path, method, **data)
    assert body["code"] == code, (path, data, body)
    assert isinstance(body["msg"], str) and body["msg"] and body["msg"] != "success"
    assert body["payload"] == []
    return body["msg"]


def connect(server: Any, user: TestUser, device: str = "web") -> WsClient:
    """A WebSocket client whose connection the server has registered."""
    ws = WsClient(server.ws_url, user.token, device=device)
    deadline = time.monotonic() + 5
    while not server.imboy.registry.is_online(user.id):
        assert time.monotonic() < deadline, "connection never registered"
        gevent.sleep(0.005)
    return ws


def is_event(msg_type: str, **payload: Any):
    def match(frame: Any) -> bool:
        if not isinstance(frame, dict) or frame.get("type") != "S2C":
            return False
        body = frame.get("payload") or {}
        return body.get("msg_type") == msg_type and all(body.get(k) == v for k, v in payload.items())
    return match


def expect_event(ws: WsClient, msg_type: str, timeout: float = 3.0, **payload: Any) -> dict[str, Any]:
    """The next S2C event of `msg_type` (other frames are skipped)."""
    return ws.expect(is_event(msg_type, **payload), timeout)


def no_event(ws: WsClient, msg_type: str, timeout: float = 0.3) -> None:
    """No S2C event of `msg_type` arrives within `timeout` (other frames are ignored)."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        try:
            frame = ws.recv(left)
        except websocket.WebSocketTimeoutException:
            return
        assert not is_event(msg_type)(frame), f"unexpected {msg_type}: {frame!r}"


def close_all(*clients: WsClient) -> None:
    for ws in clients:
        ws.close()
