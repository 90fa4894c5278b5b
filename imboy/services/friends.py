"""Friends: the friendship graph, friend requests and friend categories.

Messaging and presence rely on `is_friend` / `friend_ids`; the HTTP API on
the rest.  A friendship is two `user_friend` rows, one in each direction.
Every write is one transaction, and its S2C events are pushed only after
that transaction committed.
"""
from __future__ import annotations

from typing import Any

from .. import ids
from ..clock import now_ms
from ..db import Database, Tx
from ..errors import BadRequest, NotFound, Refused
from ..jsonutil import loads
from ..repositories import friends as repo
from ..repositories import groups as groups_repo
from ..repositories import users as users_repo
from ..wire import s2c_frame

MAX_REMARK = 80          # user_friend.remark varchar(80)
MAX_CATEGORY_NAME = 80   # user_friend_category.name varchar(80)
MAX_CATEGORIES = 100     # per user: a list, not a store
MAX_APPLY_MSG = 255      # user_friend_apply.msg varchar(255)
DEFAULT_CATEGORY = 0
DEFAULT_CATEGORY_NAME = "default"
MAX_PAGE = 100000


def page_window(page: int | None, size: int | None, default_size: int, max_size: int) -> tuple[int, int]:
    """(limit, offset) of a `page` (from 1) of `size` rows; a size over the cap is cut to it."""
    page = 1 if page is None else page
    size = default_size if size is None else size
    if not 1 <= page <= MAX_PAGE:
        raise BadRequest(f"page must be between 1 and {MAX_PAGE}")
    if size < 1:
        raise BadRequest("size must be at least 1")
    size = min(size, max_size)
    return size, (page - 1) * size


def check_name(name: str, what: str, max_len: int) -> str:
    name = name.strip()
    if not name:
        raise BadRequest(f"The {what} must not be empty")
    if len(name) > max_len:
        raise BadRequest(f"The {what} is too long (at most {max_len} characters)")
    return name


def _category_hashid(value: Any) -> str:
    # Legacy rows may hold NULL (or nonsense) there: that is the default category.
    return ids.encode(value if isinstance(value, int) and value > 0 else DEFAULT_CATEGORY)


def _access_user(tx: Tx, uid: int) -> dict[str, Any]:
    row = users_repo.by_id(tx, uid)
    if row is None:
        raise NotFound("User not found")
    return row


def _active_users(tx: Tx, uids: list[int]) -> dict[int, dict[str, Any]]:
    return {u: row for u, row in users_repo.by_ids(tx, uids).items() if row.get("status") == 1}


def _befriend(tx: Tx, a: int, b: int, now: int) -> None:
    """Both rows, and every request between the two answered."""
    repo.link(tx, a, b, now)
    repo.link(tx, b, a, now)
    repo.close_apply(tx, a, b, repo.APPLY_ACCEPTED, now)
    repo.close_apply(tx, b, a, repo.APPLY_ACCEPTED, now)


class FriendService:
    def __init__(self, db: Database, registry: Any, presence: Any, users: Any) -> None:
        self.db = db
        # registry.push(uid, frame) sends S2C events after a commit.
        self.registry = registry
        self.presence = presence
        self.users = users

    # what messaging and presence use ------------------------------------------
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
            _befriend(tx, a, b, now_ms())

        self.db.run("friends.make", make)

    def _push(self, uid: int, frame: str) -> None:
        self.registry.push(uid, frame)

    # lists ------------------------------------------------------------------------
    def list_friends(self, uid: int) -> dict[str, Any]:
        """/friend/list: me with my chosen state, friends with what they show."""

        def load(tx: Tx):
            me = _access_user(tx, uid)
            rows = repo.friend_rows(tx, uid)
            return me, rows, _active_users(tx, [r["to_user_id"] for r in rows])

        me, rows, users = self.db.run("friends.list", load)
        status = self.presence.status_of(list(users))
        friends = []
        for r in rows:
            row = users.get(r["to_user_id"])
            if row is None:
                continue
            item = self.users.public(row)
            item["status"] = status.get(row["id"], "offline")
            item["category_id"] = _category_hashid(r["category_id"])
            if r["remark"]:
                item["remark"] = r["remark"]
            friends.append(item)
        mine = self.users.public(me)
        mine["status"] = me.get("state") or "online"
        return {"mine": mine, "friend": friends}

    def my_friends(self, uid: int) -> dict[str, Any]:
        """/friend/myfriend: my groups, and my friends by category (default first).

        As the original did, a friend's remark is shown in place of the
        account (and also as `remark`).
        """

        def load(tx: Tx):
            me = _access_user(tx, uid)
            rows = repo.friend_rows(tx, uid)
            return (me, rows, repo.categories(tx, uid), groups_repo.groups_of(tx, uid),
                    _active_users(tx, [r["to_user_id"] for r in rows]))

        me, rows, categories, groups, users = self.db.run("friends.myfriend", load)
        buckets: dict[int, dict[str, Any]] = {
            DEFAULT_CATEGORY: {"id": ids.encode(DEFAULT_CATEGORY), "groupname": DEFAULT_CATEGORY_NAME, "list": []}}
        for c in categories:
            buckets[c["id"]] = {"id": ids.encode(c["id"]), "groupname": c["name"], "list": []}
        for r in rows:
            row = users.get(r["to_user_id"])
            if row is None:
                continue
            item = self.users.public(row)
            if r["remark"]:
                item["account"] = item["remark"] = r["remark"]
            buckets.get(r["category_id"], buckets[DEFAULT_CATEGORY])["list"].append(item)
        return {"mine": self.users.public(me),
                "group": [{"id": ids.encode(g["id"]), "groupname": g["groupname"], "avatar": g["avatar"] or ""}
                          for g in groups],
                "friend": list(buckets.values())}

    def information(self, uid: int, target_uid: int, kind: str = "friend") -> dict[str, Any]:
        """/friend/information: a user's profile, settings and my relation to them."""
        if kind != "friend":
            raise BadRequest("Unsupported type: use type=friend")

        def load(tx: Tx):
            return _access_user(tx, target_uid), repo.user_setting(tx, target_uid), repo.friend_row(tx, uid, target_uid)

        row, setting, relation = self.db.run("friends.information", load)
        try:
            parsed = loads(setting) if setting else {}
        except ValueError:
            parsed = {}
        info = {"mine_uid": ids.encode(uid), "type": "friend",
                "user_setting": parsed if isinstance(parsed, dict) else {}}
        info.update(self.users.public(row))
        info.update(gender=row.get("gender") or 0, region=row.get("region") or "",
                    is_friend=relation is not None, remark=relation["remark"] if relation else "")
        return info

    def find(self, uid: int, keyword: str, page: int | None = None, size: int | None = None) -> list[dict[str, Any]]:
        """/friend/find: exact account, email or mobile, or nickname prefix; never oneself."""
        keyword = keyword.strip()
        if not keyword:
            raise BadRequest("Missing parameter: keyword")
        limit, offset = page_window(page, size, 20, 50)
        if offset >= 1000:
            return []

        def load(tx: Tx):
            rows = users_repo.search(tx, keyword, uid, offset + limit)[offset:]
            return rows, repo.friends_among(tx, uid, [r["id"] for r in rows])

        rows, friends = self.db.run("friends.find", load)
        return [dict(self.users.public(r), is_friend=r["id"] in friends) for r in rows]

    # one friend -------------------------------------------------------------------
    def move(self, uid: int, friend_uid: int, category_id: int) -> None:
        def write(tx: Tx) -> None:
            if category_id != DEFAULT_CATEGORY:
                cat = repo.category(tx, category_id)
                if cat is None or cat["owner_user_id"] != uid:
                    raise Refused("No such category of yours")
            if repo.friend_row(tx, uid, friend_uid) is None:
                raise Refused("This user is not your friend")
            repo.set_category(tx, uid, friend_uid, category_id, now_ms())

        self.db.run("friends.move", write)

    def change_remark(self, uid: int, friend_uid: int, remark: str) -> str:
        """Set (or, with "", clear) the name I see for a friend."""
        remark = remark.strip()
        if len(remark) > MAX_REMARK:
            raise BadRequest(f"The remark is too long (at most {MAX_REMARK} characters)")

        def write(tx: Tx) -> None:
            if repo.friend_row(tx, uid, friend_uid) is None:
                raise Refused("This user is not your friend")
            repo.set_remark(tx, uid, friend_uid, remark, now_ms())

        self.db.run("friends.change_remark", write)
        return remark

    # categories -------------------------------------------------------------------
    @staticmethod
    def _own_category(tx: Tx, uid: int, category_id: int) -> dict[str, Any]:
        if category_id == DEFAULT_CATEGORY:
            raise Refused("The default category cannot be changed")
        cat = repo.category(tx, category_id)
        if cat is None or cat["owner_user_id"] != uid:
            raise Refused("No such category of yours")
        return cat

    @staticmethod
    def _check_unique(tx: Tx, uid: int, name: str, except_id: int = 0) -> None:
        # Compared here rather than in SQL: MySQL's collation ignores case, SQLite's does not.
        taken = {c["name"].casefold() for c in repo.categories(tx, uid) if c["id"] != except_id}
        if name.casefold() in taken or name.casefold() == DEFAULT_CATEGORY_NAME:
            raise Refused("You already have a category with this name")

    def add_category(self, uid: int, name: str) -> dict[str, Any]:
        name = check_name(name, "category name", MAX_CATEGORY_NAME)

        def write(tx: Tx) -> int:
            self._check_unique(tx, uid, name)
            if repo.category_count(tx, uid) >= MAX_CATEGORIES:
                raise Refused(f"You can have at most {MAX_CATEGORIES} categories")
            return repo.add_category(tx, uid, name)

        return {"id": ids.encode(self.db.run("friends.category_add", write)), "name": name}

    def rename_category(self, uid: int, category_id: int, name: str) -> None:
        name = check_name(name, "category name", MAX_CATEGORY_NAME)

        def write(tx: Tx) -> None:
            self._own_category(tx, uid, category_id)
            self._check_unique(tx, uid, name, except_id=category_id)
            repo.rename_category(tx, category_id, name)

        self.db.run("friends.category_rename", write)

    def delete_category(self, uid: int, category_id: int) -> None:
        """Delete a category of mine; its friends move to the default one."""

        def write(tx: Tx) -> None:
            self._own_category(tx, uid, category_id)
            repo.move_category_to_default(tx, uid, category_id, now_ms())
            repo.delete_category(tx, category_id)

        self.db.run("friends.category_delete", write)

    # requests -------------------------------------------------------------------
    def apply(self, uid: int, to_uid: int, msg: str = "") -> bool:
        """Ask `to_uid` to be friends; True when that made us friends at once.

        If `to_uid` had already asked me, asking back is a confirmation.
        """
        if to_uid == uid:
            raise Refused("You cannot add yourself as a friend")
        msg = msg.strip()
        if len(msg) > MAX_APPLY_MSG:
            raise BadRequest(f"The message is too long (at most {MAX_APPLY_MSG} characters)")
        now = now_ms()

        def write(tx: Tx):
            me = _access_user(tx, uid)
            other = _access_user(tx, to_uid)
            if repo.is_friend(tx, uid, to_uid) and repo.is_friend(tx, to_uid, uid):
                raise Refused("You are already friends")
            if repo.pending_apply(tx, to_uid, uid) is not None:
                _befriend(tx, uid, to_uid, now)
                return True, me, other
            if repo.pending_apply(tx, uid, to_uid) is not None:
                raise Refused("Friend request already sent, waiting for an answer")
            repo.put_apply(tx, uid, to_uid, msg, now)
            return False, me, other

        befriended, me, other = self.db.run("friends.apply", write)
        if befriended:
            self._announce_friendship(me, other)
        else:
            self._push(to_uid, s2c_frame("apply_friend", uid, to_uid, msg, user=self.users.public(me),
                                         created_at=now))
        return befriended

    def confirm(self, uid: int, from_uid: int) -> None:
        """Accept the request `from_uid` sent me: both rows, both told."""

        def write(tx: Tx):
            if from_uid == uid or repo.pending_apply(tx, from_uid, uid) is None:
                raise Refused("There is no friend request from this user to confirm")
            me, other = _access_user(tx, uid), _access_user(tx, from_uid)
            _befriend(tx, uid, from_uid, now_ms())
            return me, other

        me, other = self.db.run("friends.confirm", write)
        self._announce_friendship(me, other)

    def _announce_friendship(self, a: dict[str, Any], b: dict[str, Any]) -> None:
        """S2C apply_friend_confirm to both; `from` and `user` are the other one."""
        self._push(a["id"], s2c_frame("apply_friend_confirm", b["id"], a["id"], user=self.users.public(b)))
        self._push(b["id"], s2c_frame("apply_friend_confirm", a["id"], b["id"], user=self.users.public(a)))

    def delete(self, uid: int, other_uid: int) -> None:
        """End the friendship both ways; messages between the two are refused from now on."""
        if other_uid == uid:
            raise Refused("You cannot delete yourself")
        now = now_ms()

        def write(tx: Tx) -> None:
            if not (repo.is_friend(tx, uid, other_uid) or repo.is_friend(tx, other_uid, uid)):
                raise Refused("This user is not your friend")
            repo.unlink(tx, uid, other_uid, now)
            repo.unlink(tx, other_uid, uid, now)
            repo.close_apply(tx, uid, other_uid, repo.APPLY_CLOSED, now)
            repo.close_apply(tx, other_uid, uid, repo.APPLY_CLOSED, now)

        self.db.run("friends.delete", write)
        self._push(other_uid, s2c_frame("friend_delete", uid, other_uid))

    def msgbox(self, uid: int, page: int | None = None, size: int | None = None) -> dict[str, Any]:
        """Requests waiting for my answer, newest first."""
        limit, offset = page_window(page, size, 50, 200)

        def load(tx: Tx):
            rows = repo.applies_to(tx, uid, limit, offset)
            return rows, _active_users(tx, [r["from_user_id"] for r in rows])

        rows, users = self.db.run("friends.msgbox", load)
        return {"apply": [{"from": self.users.public(users[r["from_user_id"]]), "msg": r["msg"],
                           "created_at": r["created_at"]} for r in rows if r["from_user_id"] in users]}
