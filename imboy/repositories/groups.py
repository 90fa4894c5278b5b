"""`group`, `group_member` and `group_member_log`."""
from __future__ import annotations

from typing import Any, Iterable

from ..db import Tx

ROLE_MEMBER, ROLE_GUEST, ROLE_ADMIN, ROLE_OWNER = 1, 2, 3, 4
# `group_member.status`
ACTIVE, KICKED, LEFT = 1, 2, 3
# `group_member_log.type`: 1-3 as the original; joins and dissolutions are new.
LOG_TRANSFER, LOG_KICKED, LOG_LEFT, LOG_JOINED, LOG_DISSOLVED = 1, 2, 3, 4, 5
# `group.status`
GROUP_ACTIVE, GROUP_DISSOLVED = 1, -1


def get(tx: Tx, gid: int, for_update: bool = False) -> dict[str, Any] | None:
    lock = " FOR UPDATE" if for_update and tx.dialect == "mysql" else ""
    return tx.one("SELECT `id`, `groupname`, `avatar`, `owner_uid`, `member_max`, `member_count`, `status`"
                  f" FROM `group` WHERE `id` = %s{lock}", (gid,))


def create(tx: Tx, owner_uid: int, name: str, member_max: int, now: int) -> int:
    return tx.insert("INSERT INTO `group` (`type`, `join_limit`, `content_limit`, `owner_uid`, `creater_uid`,"
                     " `member_max`, `member_count`, `groupname`, `status`, `created_at`, `updated_at`)"
                     " VALUES (2, 1, 1, %s, %s, %s, 0, %s, 1, %s, %s)",
                     (owner_uid, owner_uid, member_max, name, now, now))


def membership(tx: Tx, gid: int, uid: int) -> dict[str, Any] | None:
    return tx.one("SELECT `id`, `role`, `status` FROM `group_member` WHERE `group_id` = %s AND `user_id` = %s",
                  (gid, uid))


def is_active_member(tx: Tx, gid: int, uid: int) -> bool:
    return tx.scalar("SELECT COUNT(*) FROM `group_member` m JOIN `group` g ON g.`id` = m.`group_id`"
                     " WHERE m.`group_id` = %s AND m.`user_id` = %s AND m.`status` = 1 AND g.`status` = 1",
                     (gid, uid)) > 0


def add_member(tx: Tx, gid: int, uid: int, role: int, now: int, operator_uid: int = 0) -> bool:
    """Make `uid` an active member (logged as a join); False when already one.

    `operator_uid` is who added them (0: they joined themselves).
    """
    row = membership(tx, gid, uid)
    if row is None:
        member_id = tx.insert("INSERT INTO `group_member` (`group_id`, `user_id`, `role`, `status`, `created_at`,"
                              " `updated_at`) VALUES (%s, %s, %s, 1, %s, %s)", (gid, uid, role, now, now))
    elif row["status"] == ACTIVE:
        return False
    else:
        member_id = row["id"]
        tx.execute("UPDATE `group_member` SET `status` = 1, `role` = %s, `updated_at` = %s WHERE `id` = %s",
                   (role, now, member_id))
    tx.execute("UPDATE `group` SET `member_count` = `member_count` + 1, `updated_at` = %s WHERE `id` = %s",
               (now, gid))
    log_change(tx, LOG_JOINED, member_id, gid, uid, operator_uid or uid, now)
    return True


def set_role(tx: Tx, gid: int, uid: int, role: int, now: int) -> int:
    """Change an active member's role (operators; no endpoint promotes yet)."""
    return tx.execute("UPDATE `group_member` SET `role` = %s, `updated_at` = %s"
                      " WHERE `group_id` = %s AND `user_id` = %s AND `status` = 1", (role, now, gid, uid))


def end_membership(tx: Tx, gid: int, uid: int, status: int, operator_uid: int, now: int) -> bool:
    row = membership(tx, gid, uid)
    if row is None or row["status"] != ACTIVE:
        return False
    tx.execute("UPDATE `group_member` SET `status` = %s, `updated_at` = %s WHERE `id` = %s", (status, now, row["id"]))
    tx.execute("UPDATE `group` SET `member_count` = `member_count` - 1, `updated_at` = %s WHERE `id` = %s",
               (now, gid))
    log_change(tx, LOG_KICKED if status == KICKED else LOG_LEFT, row["id"], gid, uid, operator_uid, now)
    return True


def log_change(tx: Tx, kind: int, member_id: int, gid: int, uid: int, operator_uid: int, now: int,
               remark: str = "") -> None:
    tx.execute("INSERT INTO `group_member_log` (`type`, `group_member_id`, `group_id`, `user_id`, `option_uid`,"
               " `remark`, `created_at`) VALUES (%s, %s, %s, %s, %s, %s, %s)",
               (kind, member_id, gid, uid, operator_uid, remark, now))


def active_member_ids(tx: Tx, gid: int) -> list[int]:
    return [r["user_id"] for r in tx.all(
        "SELECT `user_id` FROM `group_member` WHERE `group_id` = %s AND `status` = 1 ORDER BY `id`", (gid,))]


def members(tx: Tx, gid: int, limit: int, offset: int) -> list[dict[str, Any]]:
    return tx.all("SELECT `user_id`, `alias`, `description`, `role`, `status` FROM `group_member`"
                  " WHERE `group_id` = %s AND `status` = 1 ORDER BY `id` LIMIT %s OFFSET %s", (gid, limit, offset))


def groups_of(tx: Tx, uid: int) -> list[dict[str, Any]]:
    return tx.all("SELECT g.`id`, g.`groupname`, g.`avatar` FROM `group_member` m JOIN `group` g"
                  " ON g.`id` = m.`group_id` WHERE m.`user_id` = %s AND m.`status` = 1 AND g.`status` = 1"
                  " ORDER BY g.`id`", (uid,))


def dissolve(tx: Tx, gid: int, now: int) -> None:
    tx.execute("UPDATE `group` SET `status` = -1, `updated_at` = %s WHERE `id` = %s", (now, gid))


def log_rows(tx: Tx, gid: int) -> list[dict[str, Any]]:
    """The membership history of a group, oldest first (operators, tests)."""
    return tx.all("SELECT `type`, `group_member_id`, `user_id`, `option_uid`, `created_at` FROM `group_member_log`"
                  " WHERE `group_id` = %s ORDER BY `id`", (gid,))


def count_active(tx: Tx, gid: int) -> int:
    return tx.scalar("SELECT COUNT(*) FROM `group_member` WHERE `group_id` = %s AND `status` = 1", (gid,))


def add_members(tx: Tx, gid: int, uids: Iterable[int], now: int, operator_uid: int = 0) -> list[int]:
    return [u for u in uids if add_member(tx, gid, u, ROLE_MEMBER, now, operator_uid)]
