"""The frames of PROTOCOL section 4, built as JSON text.

Stored payloads are JSON text already; frames splice that text in rather
than parsing and re-serialising it, so a payload reaches the recipient
exactly as the sender wrote it and the hot path does no extra parsing.
"""
from __future__ import annotations

from typing import Any

import ujson

from . import ids
from .clock import now_ms
from .jsonutil import dumps

REVOKED_PAYLOAD = '{"msg_type":"custom","custom_type":"revoked"}'


def message_frame(kind: str, msg_id: str, from_uid: int, to: str, payload_json: str,
                  created_at: int, server_ts: int) -> str:
    """A C2C or C2G frame; `to` is already a hashid (user or group)."""
    return ('{"id":%s,"type":"%s","from":"%s","to":"%s","payload":%s,"created_at":%d,"server_ts":%d}'
            % (dumps(msg_id), kind, ids.encode(from_uid), to, payload_json, created_at, server_ts))


def c2c_frame(row: dict[str, Any]) -> str:
    return message_frame("C2C", row["msg_id"], row["from_id"], ids.encode(row["to_id"]),
                         row["payload"], row["created_at"], row["server_ts"])


def c2g_frame(row: dict[str, Any]) -> str:
    return message_frame("C2G", row["msg_id"], row["from_id"], ids.encode(row["to_groupid"]),
                         row["payload"], row["created_at"], row["server_ts"])


def server_ack(kind: str, msg_id: str, server_ts: int) -> str:
    return dumps({"id": msg_id, "type": kind, "server_ts": server_ts})


def revoke_frame(kind: str, msg_id: str, from_uid: int, to_uid: int, server_ts: int | None = None) -> str:
    return dumps({"id": msg_id, "type": kind, "from": ids.encode(from_uid), "to": ids.encode(to_uid),
                  "server_ts": server_ts or now_ms()})


def s2c_frame(msg_type: str, from_uid: int, to_uid: int, content: str = "", **extra: Any) -> str:
    """A system event; a numeric msg_type is repeated as top-level `code`."""
    payload = {"msg_type": msg_type, "content": content}
    payload.update(extra)
    frame: dict[str, Any] = {"type": "S2C", "from": ids.encode(from_uid) if from_uid else "",
                             "to": ids.encode(to_uid), "payload": payload, "server_ts": now_ms()}
    if msg_type.isdigit() and msg_type in ("706", "786"):
        frame["code"] = int(msg_type)
    return dumps(frame)


def encodable(text: str) -> bool:
    """False for text with lone surrogates, which no UTF-8 frame or column can hold."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def payload_json(payload: Any) -> str:
    """A payload as the JSON text that is stored and spliced into frames.

    Stricter than `jsonutil.dumps`: NaN and Infinity (which ujson parses) are
    not JSON and would break every client that reads the frame, so they raise
    ValueError, as does text with lone surrogates.
    """
    try:
        text = ujson.dumps(payload, ensure_ascii=False, escape_forward_slashes=False, allow_nan=False)
    except OverflowError as exc:
        raise ValueError(str(exc)) from None
    if not encodable(text):
        raise ValueError("lone surrogate in the payload")
    return text


def error_frame(code: int, msg: str, msg_id: Any = None) -> str:
    """An error frame; the refused frame's id is echoed when it is a string."""
    echo = msg_id if isinstance(msg_id, str) and encodable(msg_id) else ""
    return dumps({"type": "error", "code": code, "msg": msg, "id": echo, "timestamp": now_ms()})
