"""What a new WebSocket connection needs, read in one transaction.

A connection that opens must learn what it missed (the pending store) and,
when it is its user's first, tell the friends online that the user is.
Both are read together: in a reconnect storm every transaction saved is a
commit and a few round trips per client.
"""
from __future__ import annotations

from typing import Any

from ..db import Database, Tx
from ..repositories import friends as friends_repo
from .messages import MessageService
from .presence import PresenceService


class SessionService:
    def __init__(self, db: Database, presence: PresenceService, messages: MessageService) -> None:
        self.db = db
        self.presence = presence
        self.messages = messages

    def arrive(self, uid: int, first: bool) -> list[tuple[str, dict[str, Any]]]:
        """Announce a first connection to the friends online; returns what is pending."""

        def load(tx: Tx) -> tuple[str, list[int], list[tuple[str, dict[str, Any]]]]:
            state, friends = friends_repo.state_and_friend_ids(tx, uid) if first else ("", [])
            return state, friends, self.messages.load_pending(tx, uid)

        state, friends, pending = self.db.run("sessions.arrive", load)
        if state == "online":
            self.presence.tell_friends(uid, friends, "online")
        return pending
