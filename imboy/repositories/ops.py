"""Statements only operators' tools need: the readiness ping, bulk inserts
of users and friendships (load tests), and the purge of old group pending
entries.

Bulk inserts go through `Tx.executemany` with nothing but `%s` in VALUES:
PyMySQL turns that into multi-row INSERT statements (up to about 1 MB
each), and SQLite runs its C loop over the rows, both inside the caller's
transaction.
"""
from __future__ import annotations

from typing import Iterable, Sequence

from ..db import Tx


def ping(tx: Tx) -> bool:
    """The cheapest statement the database must answer."""
    return tx.scalar("SELECT 1") == 1


def _marks(values: Sequence) -> str:
    return ", ".join(["%s"] * len(values))


def existing_emails(tx: Tx, emails: Sequence[str]) -> set[str]:
    if not emails:
        return set()
    return {r["email"] for r in tx.all(f"SELECT `email` FROM `user` WHERE `email` IN ({_marks(emails)})",
                                       list(emails))}


def existing_accounts(tx: Tx, accounts: Sequence[str]) -> set[str]:
    if not accounts:
        return set()
    return {r["account"] for r in tx.all(
        f"SELECT `account` FROM `user` WHERE `account` IN ({_marks(accounts)})", list(accounts))}


def insert_users(tx: Tx, rows: Iterable[tuple[str, str, str, str]], password_hash: str, now: int) -> int:
    """Insert users given as (email, account, nickname, reg_ip); one shared password hash."""
    data = [(email, account, password_hash, nickname, 0, reg_ip, "", 1, now, "", "", "online")
            for email, account, nickname, reg_ip in rows]
    if not data:
        return 0
    tx.executemany("INSERT INTO `user` (`email`, `account`, `password`, `nickname`, `ref_user_id`,"
                   " `reg_ip`, `reg_cosv`, `status`, `created_at`, `avatar`, `sign`, `state`)"
                   " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)", data)
    return len(data)


def ids_by_email(tx: Tx, emails: Sequence[str]) -> dict[str, int]:
    if not emails:
        return {}
    return {r["email"]: int(r["id"]) for r in tx.all(
        f"SELECT `id`, `email` FROM `user` WHERE `email` IN ({_marks(emails)})", list(emails))}


def insert_friend_rows(tx: Tx, pairs: Iterable[tuple[int, int]], now: int) -> int:
    """One `user_friend` row per (from, to) pair, status 1, default category."""
    data = [(a, b, 1, 0, "", now, now, "{}") for a, b in pairs]
    if not data:
        return 0
    tx.executemany(f"{tx.insert_ignore} INTO `user_friend` (`from_user_id`, `to_user_id`, `status`,"
                   " `category_id`, `remark`, `created_at`, `updated_at`, `setting`)"
                   " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)", data)
    return len(data)


def purge_c2g_timeline(tx: Tx, before_ts: int, dry_run: bool) -> int:
    """Group pending entries (one per member not yet acked) older than `before_ts`."""
    if dry_run:
        return int(tx.scalar("SELECT COUNT(*) FROM `msg_c2g_timeline` WHERE `created_at` < %s", (before_ts,)))
    return tx.execute("DELETE FROM `msg_c2g_timeline` WHERE `created_at` < %s", (before_ts,))
