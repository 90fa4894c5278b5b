"""What a new WebSocket connection needs, read together with other connections'.

A connection that opens must learn what it missed (the pending store) and,
when it is its user's first, tell the friends online that the user is.
Both are read in one transaction, shared by every connection opening at the
same moment: in a reconnect storm thousands arrive at once, and a handful of
statements for each batch replaces a transaction per client.
"""
from __future__ import annotations

from typing import Any, Sequence

from ..batching import LINGER, GroupCommit
from ..db import Database, Tx
from ..repositories import friends as friends_repo
from .messages import MessageService
from .presence import PresenceService

Pending = list[tuple[str, dict[str, Any]]]


class SessionService:
    def __init__(self, db: Database, presence: PresenceService, messages: MessageService) -> None:
        self.db = db
        self.presence = presence
        self.messages = messages
        self._arrivals: GroupCommit[tuple[int, bool], tuple[str, list[int], Pending]] = GroupCommit(
            db, "sessions.arrive", self._load)

    def arrive(self, uid: int, first: bool) -> Pending:
        """Announce a first connection to the friends online; returns what is pending."""
        state, friends, pending = self._arrivals.run((uid, first))
        if state == "online":
            self.presence.tell_friends(uid, friends, "online")
        return pending

    def _load(self, tx: Tx, items: Sequence[tuple[int, bool]]) -> list[tuple[str, list[int], Pending]]:
        firsts = friends_repo.states_and_friend_ids(tx, list({uid for uid, first in items if first}))
        pending = self.messages.load_pending_many(tx, [uid for uid, _ in items])
        return [(*(firsts.get(uid, ("offline", [])) if first else ("", [])), pending[uid])
                for uid, first in items]
