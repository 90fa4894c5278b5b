"""The `user` table."""
from __future__ import annotations

from typing import Any, Iterable

from ..db import Tx

PROFILE_COLS = ("`id`, `account`, `nickname`, `avatar`, `sign`, `gender`, `region`, "
                "`email`, `mobile`, `status`, `state`")


def by_id(tx: Tx, uid: int) -> dict[str, Any] | None:
    return tx.one(f"SELECT {PROFILE_COLS} FROM `user` WHERE `id` = %s AND `status` = 1", (uid,))


def by_ids(tx: Tx, uids: Iterable[int]) -> dict[int, dict[str, Any]]:
    uids = list(dict.fromkeys(uids))
    if not uids:
        return {}
    marks = ", ".join(["%s"] * len(uids))
    rows = tx.all(f"SELECT {PROFILE_COLS} FROM `user` WHERE `id` IN ({marks})", uids)
    return {r["id"]: r for r in rows}


def active_ids(tx: Tx, uids: Iterable[int]) -> set[int]:
    """Which of `uids` are active accounts."""
    uids = list(dict.fromkeys(uids))
    if not uids:
        return set()
    marks = ", ".join(["%s"] * len(uids))
    return {int(r["id"]) for r in tx.all(f"SELECT `id` FROM `user` WHERE `id` IN ({marks}) AND `status` = 1",
                                         uids)}


def credentials_by(tx: Tx, column: str, value: str) -> dict[str, Any] | None:
    """The row with password hash, looked up by email, mobile or account."""
    if column not in ("email", "mobile", "account"):
        raise ValueError(column)
    return tx.one(f"SELECT {PROFILE_COLS}, `password` FROM `user` WHERE `{column}` = %s", (value,))


def exists_email(tx: Tx, email: str) -> bool:
    return tx.scalar("SELECT COUNT(*) FROM `user` WHERE `email` = %s", (email,)) > 0


def exists_account(tx: Tx, account: str) -> bool:
    return tx.scalar("SELECT COUNT(*) FROM `user` WHERE `account` = %s", (account,)) > 0


def insert(tx: Tx, *, email: str | None, account: str, password: str, nickname: str,
           ref_user_id: int, reg_ip: str, reg_cosv: str, now: int, mobile: str | None = None) -> int:
    return tx.insert(
        "INSERT INTO `user` (`email`, `mobile`, `account`, `password`, `nickname`, `ref_user_id`,"
        " `reg_ip`, `reg_cosv`, `status`, `created_at`, `avatar`, `sign`, `state`)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 1, %s, '', '', 'online')",
        (email, mobile, account, password, nickname, ref_user_id, reg_ip, reg_cosv, now))


def set_password(tx: Tx, uid: int, password_hash: str) -> None:
    tx.execute("UPDATE `user` SET `password` = %s WHERE `id` = %s", (password_hash, uid))


def set_mobile(tx: Tx, uid: int, mobile: str | None) -> None:
    """Operators' and tests' way to give an account a mobile number to log in with."""
    tx.execute("UPDATE `user` SET `mobile` = %s WHERE `id` = %s", (mobile, uid))


def record_login(tx: Tx, uid: int, ip: str, now: int) -> None:
    tx.execute("UPDATE `user` SET `login_count` = `login_count` + 1, `last_login_ip` = %s,"
               " `last_login_at` = %s WHERE `id` = %s", (ip[:40], now, uid))


def set_sign(tx: Tx, uid: int, sign: str) -> None:
    tx.execute("UPDATE `user` SET `sign` = %s WHERE `id` = %s", (sign, uid))


def set_state(tx: Tx, uid: int, state: str) -> None:
    tx.execute("UPDATE `user` SET `state` = %s WHERE `id` = %s", (state, uid))


def states(tx: Tx, uids: Iterable[int]) -> dict[int, str]:
    return {r["id"]: r["state"] for r in by_ids(tx, uids).values()}


def search(tx: Tx, keyword: str, exclude_uid: int, limit: int) -> list[dict[str, Any]]:
    """Exact account, email or mobile, or nickname prefix."""
    # "!" escapes LIKE wildcards the same way in MySQL and SQLite.
    like = keyword.replace("!", "!!").replace("%", "!%").replace("_", "!_") + "%"
    return tx.all(
        f"SELECT {PROFILE_COLS} FROM `user` WHERE `status` = 1 AND `id` <> %s AND"
        " (`account` = %s OR `email` = %s OR `mobile` = %s OR `nickname` LIKE %s ESCAPE '!')"
        " ORDER BY `id` LIMIT %s",
        (exclude_uid, keyword, keyword, keyword, like, limit))
