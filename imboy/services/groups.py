"""Groups: creation and membership, as messaging needs them."""
from __future__ import annotations

from typing import Any, Iterable

from .. import ids
from ..clock import now_ms
from ..db import Database, Tx
from ..errors import BadRequest
from ..repositories import groups as repo
from ..repositories import users as users_repo

MAX_NAME = 80
DEFAULT_MEMBER_MAX = 50
MEMBER_CAP = 10000


class GroupService:
    def __init__(self, db: Database, registry: Any, users: Any) -> None:
        self.db = db
        # registry.push(uid, frame) sends S2C events after a commit.
        self.registry = registry
        self.users = users

    def is_member(self, gid: int, uid: int) -> bool:
        return self.db.run("groups.is_member", repo.is_active_member, gid, uid)

    def do_create_group(self, owner_uid: int, name: str, member_uids: Iterable[int],
                        member_max: int = DEFAULT_MEMBER_MAX) -> dict[str, Any]:
        name = name.strip()
        if not name or len(name) > MAX_NAME:
            raise BadRequest(f"A group name has 1 to {MAX_NAME} characters")
        member_max = max(1, min(int(member_max), MEMBER_CAP))
        others = [u for u in dict.fromkeys(member_uids) if u != owner_uid]
        if len(others) + 1 > member_max:
            raise BadRequest(f"A group has at most {member_max} members")

        def create(tx: Tx) -> dict[str, Any]:
            known = users_repo.by_ids(tx, [owner_uid, *others])
            if owner_uid not in known or any(u not in known for u in others):
                raise BadRequest("Unknown user in the member list")
            now = now_ms()
            gid = repo.create(tx, owner_uid, name, member_max, now)
            repo.add_member(tx, gid, owner_uid, repo.ROLE_OWNER, now)
            repo.add_members(tx, gid, others, now)
            return {"id": ids.encode(gid), "groupname": name, "member_count": len(others) + 1}

        return self.db.run("groups.create", create)
