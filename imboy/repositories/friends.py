"""`user_friend`, `user_friend_category` and `user_friend_apply`."""
from __future__ import annotations

from typing import Any, Sequence

from ..db import Tx

# `user_friend_apply.status`: waiting, accepted, closed without a friendship.
APPLY_PENDING, APPLY_ACCEPTED, APPLY_CLOSED = 0, 1, 2


def is_friend(tx: Tx, from_uid: int, to_uid: int) -> bool:
    """A `user_friend` row from `from_uid` to `to_uid` with status 1."""
    return tx.scalar("SELECT COUNT(*) FROM `user_friend` WHERE `from_user_id` = %s"
                     " AND `to_user_id` = %s AND `status` = 1", (from_uid, to_uid)) > 0


def state_and_friend_ids(tx: Tx, uid: int) -> tuple[str, list[int]]:
    """The user's presence state and friend ids, in one statement ("offline", [] if no such user)."""
    rows = tx.all("SELECT u.`state`, f.`to_user_id` FROM `user` u LEFT JOIN `user_friend` f"
                  " ON f.`from_user_id` = u.`id` AND f.`status` = 1 WHERE u.`id` = %s", (uid,))
    if not rows:
        return "offline", []
    return rows[0]["state"], [int(r["to_user_id"]) for r in rows if r["to_user_id"] is not None]


def states_and_friend_ids(tx: Tx, uids: Sequence[int]) -> dict[int, tuple[str, list[int]]]:
    """`state_and_friend_ids` of many users in one statement (absent: no such user)."""
    if not uids:
        return {}
    marks = ", ".join(["%s"] * len(uids))
    rows = tx.all("SELECT u.`id`, u.`state`, f.`to_user_id` FROM `user` u LEFT JOIN `user_friend` f"
                  f" ON f.`from_user_id` = u.`id` AND f.`status` = 1 WHERE u.`id` IN ({marks})", list(uids))
    out: dict[int, tuple[str, list[int]]] = {}
    for r in rows:
        entry = out.setdefault(int(r["id"]), (r["state"], []))
        if r["to_user_id"] is not None:
            entry[1].append(int(r["to_user_id"]))
    return out


def friend_ids(tx: Tx, uid: int) -> list[int]:
    return [r["to_user_id"] for r in tx.all(
        "SELECT `to_user_id` FROM `user_friend` WHERE `from_user_id` = %s AND `status` = 1", (uid,))]


def friend_rows(tx: Tx, uid: int) -> list[dict[str, Any]]:
    return tx.all("SELECT `to_user_id`, `category_id`, `remark` FROM `user_friend`"
                  " WHERE `from_user_id` = %s AND `status` = 1 ORDER BY `id`", (uid,))


def friend_row(tx: Tx, from_uid: int, to_uid: int) -> dict[str, Any] | None:
    """The active row from one user to the other (remark, category), if any."""
    return tx.one("SELECT `to_user_id`, `category_id`, `remark` FROM `user_friend`"
                  " WHERE `from_user_id` = %s AND `to_user_id` = %s AND `status` = 1", (from_uid, to_uid))


def friends_among(tx: Tx, uid: int, others: list[int]) -> set[int]:
    """Which of `others` have an active row from `uid`."""
    if not others:
        return set()
    marks = ", ".join(["%s"] * len(others))
    return {r["to_user_id"] for r in tx.all(
        f"SELECT `to_user_id` FROM `user_friend` WHERE `from_user_id` = %s AND `status` = 1"
        f" AND `to_user_id` IN ({marks})", (uid, *others))}


def link(tx: Tx, from_uid: int, to_uid: int, now: int, category_id: int = 0) -> None:
    """Make (or revive) the row from one user to the other."""
    tx.execute(f"{tx.insert_ignore} INTO `user_friend` (`from_user_id`, `to_user_id`, `status`,"
               " `category_id`, `remark`, `created_at`, `updated_at`, `setting`)"
               " VALUES (%s, %s, 1, %s, '', %s, %s, '{}')", (from_uid, to_uid, category_id, now, now))
    tx.execute("UPDATE `user_friend` SET `status` = 1, `updated_at` = %s"
               " WHERE `from_user_id` = %s AND `to_user_id` = %s AND `status` <> 1", (now, from_uid, to_uid))


def unlink(tx: Tx, from_uid: int, to_uid: int, now: int) -> int:
    return tx.execute("UPDATE `user_friend` SET `status` = -1, `updated_at` = %s"
                      " WHERE `from_user_id` = %s AND `to_user_id` = %s AND `status` = 1",
                      (now, from_uid, to_uid))


def set_remark(tx: Tx, from_uid: int, to_uid: int, remark: str, now: int) -> int:
    return tx.execute("UPDATE `user_friend` SET `remark` = %s, `updated_at` = %s"
                      " WHERE `from_user_id` = %s AND `to_user_id` = %s AND `status` = 1",
                      (remark, now, from_uid, to_uid))


def set_category(tx: Tx, from_uid: int, to_uid: int, category_id: int, now: int) -> int:
    return tx.execute("UPDATE `user_friend` SET `category_id` = %s, `updated_at` = %s"
                      " WHERE `from_user_id` = %s AND `to_user_id` = %s AND `status` = 1",
                      (category_id, now, from_uid, to_uid))


def move_category_to_default(tx: Tx, owner_uid: int, category_id: int, now: int) -> None:
    tx.execute("UPDATE `user_friend` SET `category_id` = 0, `updated_at` = %s"
               " WHERE `from_user_id` = %s AND `category_id` = %s", (now, owner_uid, category_id))


# categories -------------------------------------------------------------------
def categories(tx: Tx, owner_uid: int) -> list[dict[str, Any]]:
    return tx.all("SELECT `id`, `name` FROM `user_friend_category` WHERE `owner_user_id` = %s"
                  " ORDER BY `id`", (owner_uid,))


def category(tx: Tx, category_id: int) -> dict[str, Any] | None:
    return tx.one("SELECT `id`, `name`, `owner_user_id` FROM `user_friend_category` WHERE `id` = %s",
                  (category_id,))


def category_count(tx: Tx, owner_uid: int) -> int:
    return tx.scalar("SELECT COUNT(*) FROM `user_friend_category` WHERE `owner_user_id` = %s", (owner_uid,))


def add_category(tx: Tx, owner_uid: int, name: str) -> int:
    return tx.insert("INSERT INTO `user_friend_category` (`name`, `owner_user_id`) VALUES (%s, %s)",
                     (name, owner_uid))


def rename_category(tx: Tx, category_id: int, name: str) -> None:
    tx.execute("UPDATE `user_friend_category` SET `name` = %s WHERE `id` = %s", (name, category_id))


def delete_category(tx: Tx, category_id: int) -> None:
    tx.execute("DELETE FROM `user_friend_category` WHERE `id` = %s", (category_id,))


# requests ---------------------------------------------------------------------
def put_apply(tx: Tx, from_uid: int, to_uid: int, msg: str, now: int) -> None:
    """Record (or renew) a pending request from one user to another."""
    tx.execute(f"{tx.insert_ignore} INTO `user_friend_apply` (`from_user_id`, `to_user_id`, `msg`,"
               " `status`, `created_at`, `updated_at`) VALUES (%s, %s, %s, 0, %s, %s)",
               (from_uid, to_uid, msg, now, now))
    tx.execute("UPDATE `user_friend_apply` SET `msg` = %s, `status` = 0, `created_at` = %s, `updated_at` = %s"
               " WHERE `from_user_id` = %s AND `to_user_id` = %s", (msg, now, now, from_uid, to_uid))


def pending_apply(tx: Tx, from_uid: int, to_uid: int) -> dict[str, Any] | None:
    return tx.one("SELECT `id`, `msg`, `created_at` FROM `user_friend_apply` WHERE `from_user_id` = %s"
                  " AND `to_user_id` = %s AND `status` = 0", (from_uid, to_uid))


def close_apply(tx: Tx, from_uid: int, to_uid: int, status: int, now: int) -> int:
    return tx.execute("UPDATE `user_friend_apply` SET `status` = %s, `updated_at` = %s"
                      " WHERE `from_user_id` = %s AND `to_user_id` = %s AND `status` = 0",
                      (status, now, from_uid, to_uid))


def applies_to(tx: Tx, to_uid: int, limit: int, offset: int = 0) -> list[dict[str, Any]]:
    return tx.all("SELECT `from_user_id`, `msg`, `created_at` FROM `user_friend_apply`"
                  " WHERE `to_user_id` = %s AND `status` = 0 ORDER BY `created_at` DESC, `id` DESC"
                  " LIMIT %s OFFSET %s", (to_uid, limit, offset))


# the profile settings /friend/information shows ---------------------------------
def user_setting(tx: Tx, uid: int) -> str | None:
    """The user's `user_setting.setting` JSON text, if they have one."""
    return tx.scalar("SELECT `setting` FROM `user_setting` WHERE `user_id` = %s", (uid,))
