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
    """The single-process registry.

    A user with one connection maps straight to it; only a user connected
    from several device types has a dict (device -> connection): most users
    have one device, and a dict of one costs about 200 bytes.
    """

    def __init__(self) -> None:
        self._users: dict[int, "Connection | dict[str, Connection]"] = {}

    # membership --------------------------------------------------------
    def add(self, conn: "Connection") -> tuple[bool, "Connection | None"]:
        """Register `conn`; returns (first connection of the user, replaced connection)."""
        users = self._users
        entry = users.get(conn.uid)
        if entry is None:
            users[conn.uid] = conn
            return True, None
        if type(entry) is not dict:
            if entry.device == conn.device:
                users[conn.uid] = conn
                return False, entry
            users[conn.uid] = {entry.device: entry, conn.device: conn}
            return False, None
        old = entry.get(conn.device)
        entry[conn.device] = conn
        return False, old

    def remove(self, conn: "Connection") -> bool:
        """Unregister `conn`; True when the user has no connection left."""
        users = self._users
        entry = users.get(conn.uid)
        if entry is None:
            return False
        if type(entry) is not dict:
            if entry is not conn:
                return False
            del users[conn.uid]
            return True
        if entry.get(conn.device) is not conn:
            return False
        del entry[conn.device]
        if len(entry) == 1:
            # Back to one device: the connection itself, no dict.
            (users[conn.uid],) = entry.values()
        return False

    # queries -------------------------------------------------------------
    def connections(self, uid: int) -> list["Connection"]:
        entry = self._users.get(uid)
        if entry is None:
            return []
        return list(entry.values()) if type(entry) is dict else [entry]

    def is_online(self, uid: int) -> bool:
        return uid in self._users

    def online(self, uids: Iterable[int]) -> set[int]:
        return {u for u in uids if u in self._users}

    def online_uids(self) -> list[int]:
        return list(self._users)

    def count(self) -> int:
        return len(self._users)

    def all_connections(self) -> list["Connection"]:
        out: list["Connection"] = []
        for entry in self._users.values():
            if type(entry) is dict:
                out.extend(entry.values())
            else:
                out.append(entry)
        return out

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

    def push_soon(self, uid: int, frame: str, retry_key: str | None = None) -> None:
        """`push` where nothing waits for the count (here it is the same)."""
        self.push(uid, frame, retry_key)

    def push_many(self, uids: Iterable[int], frame: str, retry_key: str | None = None) -> int:
        """`push` to each of `uids` (a group's members); returns the connections reached here."""
        reached = 0
        users = self._users
        data = encode_text(frame)  # one encoding for every member
        for uid in uids:
            entry = users.get(uid)
            if entry is None:
                continue
            if type(entry) is dict:
                conns = list(entry.values())
                for conn in conns:
                    conn.push(data, retry_key)
                reached += len(conns)
            else:
                entry.push(data, retry_key)
                reached += 1
        return reached

    def cancel_retry(self, uid: int, retry_key: str) -> None:
        for conn in self.connections(uid):
            conn.cancel_retry(retry_key)
