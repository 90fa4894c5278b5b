"""Presence: who appears online, and S2C 1019 to friends when it changes.

A user appears online to friends while connected and their chosen state is
`online`; `hide` and `offline` appear offline (PROTOCOL section 3).
"""
from __future__ import annotations

import logging
from collections import deque
from typing import Any, Iterable

import gevent

from ..db import Database
from ..errors import ImboyError
from ..repositories import friends as friends_repo
from ..repositories import users as users_repo
from ..wire import s2c_frame

log = logging.getLogger("imboy.presence")
# Greenlets announcing departures (see `departed`).
DEPARTURE_WORKERS = 2


class PresenceService:
    def __init__(self, db: Database, registry: Any) -> None:
        self.db = db
        self.registry = registry
        self._departures: deque[int] = deque()
        self._departing = 0

    def _state_and_friends(self, uid: int) -> tuple[str, list[int]]:
        return self.db.run("presence.load", friends_repo.state_and_friend_ids, uid)

    def tell_friends(self, uid: int, friends: Iterable[int], content: str) -> None:
        for friend in self.registry.online(friends):
            self.registry.push(friend, s2c_frame("1019", uid, friend, content))

    def departed(self, uid: int) -> None:
        """The user's last connection closed: friends online hear it soon after.

        Departures are announced by at most DEPARTURE_WORKERS greenlets, in
        order: when thousands of clients drop at once (a network blip, a
        restart), their announcements must not take the database from the
        handshakes of the same clients coming back.  A user who is back by
        the time their turn comes is not announced as gone.
        """
        self._departures.append(uid)
        if self._departing < DEPARTURE_WORKERS:
            self._departing += 1
            gevent.spawn(self._announce_departures)

    def _announce_departures(self) -> None:
        try:
            while self._departures:
                uid = self._departures.popleft()
                try:
                    if self.registry.is_online(uid):
                        continue
                    state, friends = self._state_and_friends(uid)
                    # Asked again: the user may have come back during the read.
                    if state == "online" and not self.registry.is_online(uid):
                        self.tell_friends(uid, friends, "offline")
                except ImboyError as exc:
                    log.warning("presence for uid=%s not announced: %s", uid, exc.msg)
        finally:
            self._departing -= 1

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
