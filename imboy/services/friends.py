"""Friends: the friendship graph that messaging and presence rely on."""
from __future__ import annotations

from typing import Any

from ..clock import now_ms
from ..db import Database, Tx
from ..errors import BadRequest
from ..repositories import friends as repo
from ..repositories import users as users_repo


class FriendService:
    def __init__(self, db: Database, registry: Any, presence: Any, users: Any) -> None:
        self.db = db
        # registry.push(uid, frame) sends S2C events after a commit.
        self.registry = registry
        self.presence = presence
        self.users = users

    def is_friend(self, from_uid: int, to_uid: int) -> bool:
        return self.db.run("friends.is_friend", repo.is_friend, from_uid, to_uid)

    def friend_ids(self, uid: int) -> list[int]:
        return self.db.run("friends.ids", repo.friend_ids, uid)

    def do_make_friends(self, a: int, b: int) -> None:
        """Both `user_friend` rows at once (used by confirm, the CLI and tests)."""
        if a == b:
            raise BadRequest("Cannot befriend oneself")

        def make(tx: Tx) -> None:
            if users_repo.by_id(tx, a) is None or users_repo.by_id(tx, b) is None:
                raise BadRequest("User not found")
            now = now_ms()
            repo.link(tx, a, b, now)
            repo.link(tx, b, a, now)

        self.db.run("friends.make", make)
