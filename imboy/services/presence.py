"""Presence: who appears online, and S2C 1019 to friends when it changes.

A user appears online to friends while connected and their chosen state is
`online`; `hide` and `offline` appear offline (PROTOCOL section 3).
"""
from __future__ import annotations

from typing import Any, Iterable

from ..db import Database, Tx
from ..repositories import friends as friends_repo
from ..repositories import users as users_repo
from ..wire import s2c_frame


class PresenceService:
    def __init__(self, db: Database, registry: Any) -> None:
        self.db = db
        self.registry = registry

    def _state_and_friends(self, uid: int) -> tuple[str, list[int]]:
        return self.db.run("presence.load", friends_repo.state_and_friend_ids, uid)

    def tell_friends(self, uid: int, friends: Iterable[int], content: str) -> None:
        for friend in self.registry.online(friends):
            self.registry.push(friend, s2c_frame("1019", uid, friend, content))

    def connected(self, uid: int) -> None:
        """The user's first connection opened."""
        state, friends = self._state_and_friends(uid)
        if state == "online":
            self.tell_friends(uid, friends, "online")

    def disconnected(self, uid: int) -> None:
        """The user's last connection closed."""
        state, friends = self._state_and_friends(uid)
        if state == "online":
            self.tell_friends(uid, friends, "offline")

    def state_changed(self, uid: int, state: str) -> None:
        """After /user/change_state committed: friends online hear the new state."""
        _, friends = self._state_and_friends(uid)
        self.tell_friends(uid, friends, state)

    def status_of(self, uids: Iterable[int]) -> dict[int, str]:
        """"online" or "offline" as friends should see each user."""
        uids = list(uids)
        connected = self.registry.online(uids)
        states = self.db.run("presence.states", users_repo.states, connected) if connected else {}
        return {u: "online" if states.get(u) == "online" else "offline" for u in uids}
