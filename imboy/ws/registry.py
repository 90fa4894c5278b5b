"""Who is connected here: uid -> device type -> connection.

The router talks to a registry only through this interface; the Redis
version for several workers and hosts implements the same methods, so the
handlers do not change (as python-socketio swaps its managers).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

from .frames import encode_text

if TYPE_CHECKING:
    from .connection import Connection


class LocalRegistry:
    """The single-process registry."""

    def __init__(self) -> None:
        self._users: dict[int, dict[str, "Connection"]] = {}

    # membership --------------------------------------------------------
    def add(self, conn: "Connection") -> tuple[bool, "Connection | None"]:
        """Register `conn`; returns (first connection of the user, replaced connection)."""
        devices = self._users.get(conn.uid)
        first = not devices
        if devices is None:
            devices = self._users[conn.uid] = {}
        old = devices.get(conn.device)
        devices[conn.device] = conn
        return first, old

    def remove(self, conn: "Connection") -> bool:
        """Unregister `conn`; True when the user has no connection left."""
        devices = self._users.get(conn.uid)
        if not devices or devices.get(conn.device) is not conn:
            return False
        del devices[conn.device]
        if devices:
            return False
        del self._users[conn.uid]
        return True

    # queries -------------------------------------------------------------
    def connections(self, uid: int) -> list["Connection"]:
        devices = self._users.get(uid)
        return list(devices.values()) if devices else []

    def is_online(self, uid: int) -> bool:
        return uid in self._users

    def online(self, uids: Iterable[int]) -> set[int]:
        return {u for u in uids if u in self._users}

    def online_uids(self) -> list[int]:
        return list(self._users)

    def count(self) -> int:
        return len(self._users)

    def all_connections(self) -> list["Connection"]:
        return [c for devices in self._users.values() for c in devices.values()]

    # delivery ------------------------------------------------------------
    def push(self, uid: int, frame: str, retry_key: str | None = None) -> int:
        """Send `frame` to every connection of `uid`; returns how many got it.

        With a `retry_key`, each connection re-sends it on the retry schedule
        until `cancel_retry(uid, retry_key)`.
        """
        conns = self.connections(uid)
        for conn in conns:
            conn.push(frame, retry_key)
        return len(conns)

    def push_many(self, uids: Iterable[int], frame: str, retry_key: str | None = None) -> int:
        """`push` to each of `uids` (a group's members); returns the connections reached here."""
        reached = 0
        users = self._users
        data = encode_text(frame)  # one encoding for every member
        for uid in uids:
            devices = users.get(uid)
            if devices:
                for conn in list(devices.values()):
                    conn.push(data, retry_key)
                reached += len(devices)
        return reached

    def cancel_retry(self, uid: int, retry_key: str) -> None:
        for conn in self.connections(uid):
            conn.cancel_retry(retry_key)
