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
# Departures announced together (see `departed`).
DEPARTURE_BATCH = 500


class PresenceService:
    def __init__(self, db: Database, registry: Any) -> None:
        self.db = db
        self.registry = registry
        self._departures: deque[int] = deque()
        self._departing = False

    def _state_and_friends(self, uid: int) -> tuple[str, list[int]]:
        return self.db.run("presence.load", friends_repo.state_and_friend_ids, uid)

    def _states_and_friends(self, uids: list[int]) -> dict[int, tuple[str, list[int]]]:
        return self.db.run("presence.load_many", friends_repo.states_and_friend_ids, uids)

    def tell_friends(self, uid: int, friends: Iterable[int], content: str) -> None:
        for friend in self.registry.online(friends):
            self.registry.push_soon(friend, s2c_frame("1019", uid, friend, content))

    def departed(self, uid: int) -> None:
        """The user's last connection closed: friends online hear it soon after.

        Departures are announced by one greenlet, in batches: when thousands
        of clients drop at once (a network blip, a restart), their
        announcements cost a few round trips per batch and do not take the
        database from the handshakes of the same clients coming back.  A
        user who is back by the time the batch is read is not announced as gone.
        """
        self._departures.append(uid)
        if not self._departing:
            self._departing = True
            gevent.spawn(self._announce_departures)

    def _announce_departures(self) -> None:
        queue = self._departures
        try:
            while queue:
                batch = list(dict.fromkeys(queue.popleft() for _ in range(min(DEPARTURE_BATCH, len(queue)))))
                try:
                    self._announce_gone(batch)
                except ImboyError as exc:
                    log.warning("presence of %d users not announced: %s", len(batch), exc.msg)
                except Exception:
                    log.exception("presence of %d users not announced", len(batch))
        finally:
            self._departing = False

    def _announce_gone(self, uids: list[int]) -> None:
        back = self.registry.online(uids)
        gone = [uid for uid in uids if uid not in back]
        if not gone:
            return
        loaded = self._states_and_friends(gone)
        shown = {uid: friends for uid, (state, friends) in loaded.items() if state == "online" and friends}
        # Asked again: users may have come back during the read.
        back = self.registry.online(list(shown))
        listening = self.registry.online({f for uid, friends in shown.items() if uid not in back for f in friends})
        for uid, friends in shown.items():
            if uid not in back:
                for friend in friends:
                    if friend in listening:
                        self.registry.push_soon(friend, s2c_frame("1019", uid, friend, "offline"))

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
