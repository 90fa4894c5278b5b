"""Users: profiles as clients see them, signature and presence state."""
from __future__ import annotations

from typing import Any, Callable

from .. import ids
from ..batching import LINGER, GroupCommit
from ..db import Database, Tx
from ..errors import BadRequest, NotFound
from ..repositories import users as users_repo

STATES = ("online", "offline", "hide")
MAX_SIGN = 255


def public_user(row: dict[str, Any], default_avatar: str) -> dict[str, Any]:
    """The user object of the wire: hashid, account, nickname, avatar, sign."""
    return {
        "id": ids.encode(row["id"]),
        "account": row.get("account") or "",
        "nickname": row.get("nickname") or "",
        "avatar": row.get("avatar") or default_avatar,
        "sign": row.get("sign") or "",
    }


class UserService:
    def __init__(self, db: Database, default_avatar: str) -> None:
        self.db = db
        self.default_avatar = default_avatar
        # Called with (uid, state) after a state change commits; the
        # presence service plugs in here.
        self.on_state_change: Callable[[int, str], None] | None = None
        # Handshakes arrive by the thousand after a network blip: their checks share reads.
        self._checks: GroupCommit[int, None] = GroupCommit(db, "users.check", _check_active, linger=LINGER)

    def public(self, row: dict[str, Any]) -> dict[str, Any]:
        return public_user(row, self.default_avatar)

    def access_user(self, uid: int) -> dict[str, Any]:
        row = self.db.run("users.get", users_repo.by_id, uid)
        if row is None:
            raise NotFound("User not found")
        return row

    def check_active(self, uid: int) -> None:
        """Raise NotFound unless `uid` is an active account (read together with other callers')."""
        self._checks.run(uid)

    def open_info(self, uid: int) -> dict[str, Any]:
        return self.public(self.access_user(uid))

    def change_sign(self, uid: int, sign: str) -> None:
        if len(sign) > MAX_SIGN:
            raise BadRequest(f"The signature is too long (at most {MAX_SIGN} characters)")
        self.db.run("users.change_sign", users_repo.set_sign, uid, sign)

    def change_state(self, uid: int, state: str) -> None:
        if state not in STATES:
            raise BadRequest("Invalid state: use online, offline or hide")
        self.db.run("users.change_state", users_repo.set_state, uid, state)
        if self.on_state_change is not None:
            self.on_state_change(uid, state)


def _check_active(tx: Tx, uids: list[int]) -> list[NotFound | None]:
    active = users_repo.active_ids(tx, uids)
    return [None if uid in active else NotFound("User not found") for uid in uids]
