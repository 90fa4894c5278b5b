"""Groups: creation, membership and dissolution, with their permission rules.

Messaging asks `is_member`; the HTTP API uses the rest.  Every change runs
in one transaction that first locks the group row (MySQL), so the member
limit and `member_count` stay true under concurrent joins; every change is
logged in `group_member_log`; S2C events go out after the commit to every
member concerned (the members after the change, plus whoever just left).
"""
from __future__ import annotations

from typing import Any, Iterable

from .. import ids
from ..clock import now_ms
from ..db import Database, Tx
from ..errors import BadRequest, NotFound, Refused
from ..repositories import friends as friends_repo
from ..repositories import groups as repo
from ..repositories import users as users_repo
from ..wire import s2c_frame
from .friends import check_name, page_window

MAX_NAME = 80
DEFAULT_MEMBER_MAX = 50
MEMBER_CAP = 10000


def _group_view(g: dict[str, Any]) -> dict[str, Any]:
    return {"id": ids.encode(g["id"]), "groupname": g["groupname"], "avatar": g.get("avatar") or ""}


def _member_max(g: dict[str, Any]) -> int:
    return min(g.get("member_max") or DEFAULT_MEMBER_MAX, MEMBER_CAP)


def _access_group(tx: Tx, gid: int) -> dict[str, Any]:
    """The group, locked for the rest of the transaction; refused when gone."""
    g = repo.get(tx, gid, for_update=True)
    if g is None:
        raise NotFound("Group not found")
    if g["status"] != repo.GROUP_ACTIVE:
        raise Refused("This group has been dissolved")
    return g


def _access_member(tx: Tx, gid: int, uid: int) -> dict[str, Any]:
    m = repo.membership(tx, gid, uid)
    if m is None or m["status"] != repo.ACTIVE:
        raise Refused("You are not a member of this group")
    return m


class GroupService:
    def __init__(self, db: Database, registry: Any, users: Any) -> None:
        self.db = db
        # registry.push(uid, frame) sends S2C events after a commit.
        self.registry = registry
        self.users = users

    def is_member(self, gid: int, uid: int) -> bool:
        return self.db.run("groups.is_member", repo.is_active_member, gid, uid)

    # creation -----------------------------------------------------------------
    @staticmethod
    def _check_create(owner_uid: int, name: str, member_uids: Iterable[int],
                      member_max: int) -> tuple[str, list[int], int]:
        name = check_name(name, "group name", MAX_NAME)
        if not 1 <= member_max <= MEMBER_CAP:
            raise BadRequest(f"member_max must be between 1 and {MEMBER_CAP}")
        others = [u for u in dict.fromkeys(member_uids) if u != owner_uid]
        if len(others) + 1 > member_max:
            raise BadRequest(f"A group has at most {member_max} members")
        return name, others, member_max

    @staticmethod
    def _create(tx: Tx, owner_uid: int, name: str, others: list[int], member_max: int) -> int:
        now = now_ms()
        gid = repo.create(tx, owner_uid, name, member_max, now)
        repo.add_member(tx, gid, owner_uid, repo.ROLE_OWNER, now, owner_uid)
        repo.add_members(tx, gid, others, now, owner_uid)
        return gid

    def do_create_group(self, owner_uid: int, name: str, member_uids: Iterable[int],
                        member_max: int = DEFAULT_MEMBER_MAX) -> dict[str, Any]:
        """Create a group with any existing users, silently (CLI, tests)."""
        name, others, member_max = self._check_create(owner_uid, name, member_uids,
                                                      max(1, min(int(member_max), MEMBER_CAP)))

        def create(tx: Tx) -> dict[str, Any]:
            known = users_repo.by_ids(tx, [owner_uid, *others])
            if owner_uid not in known or any(u not in known for u in others):
                raise BadRequest("Unknown user in the member list")
            gid = self._create(tx, owner_uid, name, others, member_max)
            return {"id": ids.encode(gid), "groupname": name, "member_count": len(others) + 1}

        return self.db.run("groups.create", create)

    def create_group(self, owner_uid: int, name: str, member_uids: Iterable[int],
                     member_max: int | None = None) -> dict[str, Any]:
        """/group/create: the creator owns it; members must be the creator's friends."""
        name, others, member_max = self._check_create(
            owner_uid, name, member_uids, DEFAULT_MEMBER_MAX if member_max is None else member_max)

        def create(tx: Tx):
            known = {u for u, r in users_repo.by_ids(tx, [owner_uid, *others]).items() if r["status"] == 1}
            if owner_uid not in known or any(u not in known for u in others):
                raise NotFound("Unknown user in the member list")
            strangers = set(others) - friends_repo.friends_among(tx, owner_uid, others)
            if strangers:
                raise Refused("Only your friends can be added to a group")
            gid = self._create(tx, owner_uid, name, others, member_max)
            return repo.get(tx, gid), [owner_uid, *others]

        g, members = self.db.run("groups.create", create)
        self._tell(members, "group_member_join", owner_uid, g, uids=members, member_count=len(members))
        return {"id": ids.encode(g["id"]), "groupname": g["groupname"], "member_count": len(members)}

    # membership -----------------------------------------------------------------
    def join(self, uid: int, gid: int) -> None:
        """Join by group id; refused when full, or for someone who was kicked out."""

        def write(tx: Tx):
            g = _access_group(tx, gid)
            m = repo.membership(tx, gid, uid)
            if m is not None and m["status"] == repo.ACTIVE:
                raise Refused("You are already a member of this group")
            if m is not None and m["status"] == repo.KICKED:
                raise Refused("You were removed from this group and cannot join it again")
            if repo.count_active(tx, gid) >= _member_max(g):
                raise Refused("This group is full")
            if users_repo.by_id(tx, uid) is None:
                raise NotFound("User not found")
            repo.add_member(tx, gid, uid, repo.ROLE_MEMBER, now_ms(), uid)
            return g, repo.active_member_ids(tx, gid)

        g, members = self.db.run("groups.join", write)
        self._tell(members, "group_member_join", uid, g, uids=[uid], member_count=len(members))

    def leave(self, uid: int, gid: int) -> None:
        """Leave a group; the owner may not (they dissolve it instead)."""

        def write(tx: Tx):
            g = _access_group(tx, gid)
            _access_member(tx, gid, uid)
            if g["owner_uid"] == uid:
                raise Refused("The owner cannot leave the group: dissolve it instead")
            repo.end_membership(tx, gid, uid, repo.LEFT, uid, now_ms())
            return g, repo.active_member_ids(tx, gid)

        g, members = self.db.run("groups.leave", write)
        self._tell([*members, uid], "group_member_leave", uid, g, uids=[uid], member_count=len(members),
                   kicked=False)

    def kick(self, uid: int, gid: int, target_uid: int) -> None:
        """The owner removes anyone but themselves; an admin removes plain members."""
        if target_uid == uid:
            raise Refused("To leave a group, use leave")

        def write(tx: Tx):
            g = _access_group(tx, gid)
            me = _access_member(tx, gid, uid)
            is_owner = g["owner_uid"] == uid
            if not is_owner and me["role"] != repo.ROLE_ADMIN:
                raise Refused("Only the group owner or an admin can remove members")
            target = repo.membership(tx, gid, target_uid)
            if target is None or target["status"] != repo.ACTIVE:
                raise Refused("This user is not a member of this group")
            if target_uid == g["owner_uid"]:
                raise Refused("The group owner cannot be removed")
            if target["role"] in (repo.ROLE_ADMIN, repo.ROLE_OWNER) and not is_owner:
                raise Refused("Only the group owner can remove an admin")
            repo.end_membership(tx, gid, target_uid, repo.KICKED, uid, now_ms())
            return g, repo.active_member_ids(tx, gid)

        g, members = self.db.run("groups.kick", write)
        self._tell([*members, target_uid], "group_member_leave", uid, g, uids=[target_uid],
                   member_count=len(members), kicked=True)

    def dissolve(self, uid: int, gid: int) -> None:
        """Owner only; group messages to it are refused from then on."""

        def write(tx: Tx):
            g = _access_group(tx, gid)
            me = _access_member(tx, gid, uid)
            if g["owner_uid"] != uid:
                raise Refused("Only the group owner can dissolve the group")
            members = repo.active_member_ids(tx, gid)
            now = now_ms()
            repo.dissolve(tx, gid, now)
            repo.log_change(tx, repo.LOG_DISSOLVED, me["id"], gid, uid, uid, now)
            return g, members

        g, members = self.db.run("groups.dissolve", write)
        self._tell(members, "group_dissolve", uid, g)

    # reading ----------------------------------------------------------------------
    def members(self, uid: int, gid: int, page: int | None = None, size: int | None = None) -> dict[str, Any]:
        """/group/member: members only, a page at a time."""
        limit, offset = page_window(page, size, 100, 500)

        def load(tx: Tx):
            g = repo.get(tx, gid)
            if g is None:
                raise NotFound("Group not found")
            if g["status"] != repo.GROUP_ACTIVE:
                raise Refused("This group has been dissolved")
            _access_member(tx, gid, uid)
            rows = repo.members(tx, gid, limit, offset)
            return rows, users_repo.by_ids(tx, [r["user_id"] for r in rows]), repo.count_active(tx, gid)

        rows, users, total = self.db.run("groups.members", load)
        out = []
        for r in rows:
            user = users.get(r["user_id"])
            if user is None:
                continue
            out.append(dict(self.users.public(user), alias=r["alias"] or "", description=r["description"] or "",
                            role=r["role"], status=r["status"]))
        return {"list": out, "total": total, "page": offset // limit + 1, "size": limit}

    # events -----------------------------------------------------------------------
    def _tell(self, recipients: Iterable[int], msg_type: str, operator_uid: int, g: dict[str, Any],
              **extra: Any) -> None:
        """One S2C event to each online member; `content` is the group's hashid."""
        view = _group_view(g)
        if "uids" in extra:
            extra["uids"] = [ids.encode(u) for u in extra["uids"]]
        for uid in self.registry.online(list(dict.fromkeys(recipients))):
            self.registry.push(uid, s2c_frame(msg_type, operator_uid, uid, view["id"], group=view, **extra))
