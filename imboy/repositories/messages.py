"""`msg_c2c` (messages and the one-to-one pending store), `msg_c2g` and
`msg_c2g_timeline` (one pending entry per member who has not acked)."""
from __future__ import annotations

from typing import Any, Sequence

from ..db import Tx, is_duplicate_key

PENDING, ACKED, DROPPED = 0, 1, 2
C2C_COLS = "`id`, `msg_id`, `from_id`, `to_id`, `payload`, `created_at`, `server_ts`, `status`"


def c2c_by_msg_id(tx: Tx, msg_id: str) -> dict[str, Any] | None:
    return tx.one(f"SELECT {C2C_COLS} FROM `msg_c2c` WHERE `msg_id` = %s", (msg_id,))


def stored_and_friendships(tx: Tx, msg_ids: Sequence[str], pairs: Sequence[tuple[int, int]],
                           ) -> tuple[dict[str, dict[str, Any]], set[tuple[int, int]]]:
    """What a batch of sends must know, in one statement: the stored messages among
    `msg_ids` (by id), and which of the (from, to) `pairs` are friendships with status 1."""
    id_marks = ", ".join(["%s"] * len(msg_ids))
    pair_marks = " OR ".join(["(`from_user_id` = %s AND `to_user_id` = %s)"] * len(pairs))
    rows = tx.all(f"SELECT 1 AS `stored`, {C2C_COLS} FROM `msg_c2c` WHERE `msg_id` IN ({id_marks})"
                  # The types of the first SELECT's columns, or MariaDB makes them all DECIMAL.
                  " UNION ALL SELECT 0, CAST(NULL AS UNSIGNED), NULL, CAST(`from_user_id` AS SIGNED),"
                  " CAST(`to_user_id` AS SIGNED), NULL, CAST(NULL AS UNSIGNED), CAST(NULL AS UNSIGNED), NULL"
                  f" FROM `user_friend` WHERE `status` = 1 AND ({pair_marks})",
                  [*msg_ids, *(v for pair in pairs for v in pair)])
    stored: dict[str, dict[str, Any]] = {}
    friends: set[tuple[int, int]] = set()
    for r in rows:
        if r.pop("stored"):
            stored[r["msg_id"]] = r
        else:
            friends.add((int(r["from_id"]), int(r["to_id"])))
    return stored, friends


def insert_c2c_many(tx: Tx, rows: Sequence[dict[str, Any]]) -> None:
    """Store new messages as pending, in one multi-row INSERT."""
    tx.executemany("INSERT INTO `msg_c2c` (`msg_id`, `from_id`, `to_id`, `payload`, `created_at`, `server_ts`,"
                   " `status`) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                   [(r["msg_id"], r["from_id"], r["to_id"], r["payload"], r["created_at"], r["server_ts"], PENDING)
                    for r in rows])


def pending_counts(tx: Tx, to_uids: Sequence[int]) -> dict[int, int]:
    """How many messages wait for each of `to_uids` (absent: none)."""
    if not to_uids:
        return {}
    marks = ", ".join(["%s"] * len(to_uids))
    rows = tx.all(f"SELECT `to_id`, COUNT(*) AS `n` FROM `msg_c2c` WHERE `to_id` IN ({marks}) AND `status` = 0"
                  " GROUP BY `to_id`", list(to_uids))
    return {int(r["to_id"]): int(r["n"]) for r in rows}


def pending_counts_both(tx: Tx, to_uids: Sequence[int]) -> tuple[dict[int, int], dict[int, int]]:
    """How many one-to-one and group messages wait for each of `to_uids`, in one statement."""
    if not to_uids:
        return {}, {}
    marks = ", ".join(["%s"] * len(to_uids))
    rows = tx.all(f"SELECT 1 AS `g`, `to_id`, COUNT(*) AS `n` FROM `msg_c2c` WHERE `to_id` IN ({marks})"
                  " AND `status` = 0 GROUP BY `to_id`"
                  f" UNION ALL SELECT 2 AS `g`, `to_id`, COUNT(*) AS `n` FROM `msg_c2g_timeline`"
                  f" WHERE `to_id` IN ({marks}) GROUP BY `to_id`", [*to_uids, *to_uids])
    c2c: dict[int, int] = {}
    c2g: dict[int, int] = {}
    for r in rows:
        (c2c if int(r["g"]) == 1 else c2g)[int(r["to_id"])] = int(r["n"])
    return c2c, c2g


def ack_c2c_many(tx: Tx, acks: Sequence[tuple[int, str]]) -> int:
    """Pending messages of the distinct (recipient, msg_id) pairs become acked; returns how
    many were pending, in one statement."""
    if not acks:
        return 0
    pairs = " OR ".join(["(`msg_id` = %s AND `to_id` = %s)"] * len(acks))
    return tx.execute(f"UPDATE `msg_c2c` SET `status` = 1 WHERE `status` = 0 AND ({pairs})",
                      [v for uid, msg_id in acks for v in (msg_id, uid)])


def recipients_of(tx: Tx, msg_ids: Sequence[str]) -> dict[str, int]:
    """The recipient of each stored message among `msg_ids`."""
    if not msg_ids:
        return {}
    marks = ", ".join(["%s"] * len(msg_ids))
    rows = tx.all(f"SELECT `msg_id`, `to_id` FROM `msg_c2c` WHERE `msg_id` IN ({marks})", list(msg_ids))
    return {r["msg_id"]: int(r["to_id"]) for r in rows}


def insert_c2c(tx: Tx, msg_id: str, from_uid: int, to_uid: int, payload: str, created_at: int,
               server_ts: int) -> int:
    return tx.insert("INSERT INTO `msg_c2c` (`msg_id`, `from_id`, `to_id`, `payload`, `created_at`, `server_ts`,"
                     " `status`) VALUES (%s, %s, %s, %s, %s, %s, 0)",
                     (msg_id, from_uid, to_uid, payload, created_at, server_ts))


def drop_oldest_pending(tx: Tx, to_uid: int, n: int) -> None:
    """Mark the `n` oldest pending messages of a user as dropped."""
    rows = tx.all("SELECT `id` FROM `msg_c2c` WHERE `to_id` = %s AND `status` = 0 ORDER BY `id` LIMIT %s",
                  (to_uid, n))
    if rows:
        marks = ", ".join(["%s"] * len(rows))
        tx.execute(f"UPDATE `msg_c2c` SET `status` = 2 WHERE `id` IN ({marks})", [r["id"] for r in rows])


def ack_c2c(tx: Tx, to_uid: int, msg_id: str) -> int:
    return tx.execute("UPDATE `msg_c2c` SET `status` = 1 WHERE `msg_id` = %s AND `to_id` = %s AND `status` = 0",
                      (msg_id, to_uid))


def revoke_pending_c2c(tx: Tx, row_id: int, payload: str) -> int:
    return tx.execute("UPDATE `msg_c2c` SET `payload` = %s WHERE `id` = %s AND `status` = 0", (payload, row_id))


def pending_c2c(tx: Tx, to_uid: int, after_server_ts: int = 0, limit: int = 100000) -> list[dict[str, Any]]:
    return tx.all(f"SELECT {C2C_COLS} FROM `msg_c2c` WHERE `to_id` = %s AND `status` = 0 AND `server_ts` > %s"
                  " ORDER BY `id` LIMIT %s", (to_uid, after_server_ts, limit))


def newest_pending_c2c(tx: Tx, to_uid: int, limit: int) -> list[dict[str, Any]]:
    """The newest `limit` messages waiting for `to_uid`, oldest first."""
    rows = tx.all(f"SELECT {C2C_COLS} FROM `msg_c2c` WHERE `to_id` = %s AND `status` = 0"
                  " ORDER BY `id` DESC LIMIT %s", (to_uid, limit))
    rows.reverse()
    return rows


def pending_c2c_of(tx: Tx, to_uids: Sequence[int]) -> list[dict[str, Any]]:
    """Every message waiting for any of `to_uids`, oldest first (callers know the counts)."""
    marks = ", ".join(["%s"] * len(to_uids))
    return tx.all(f"SELECT {C2C_COLS} FROM `msg_c2c` WHERE `to_id` IN ({marks}) AND `status` = 0"
                  " ORDER BY `id`", list(to_uids))


def drop_pending_before(tx: Tx, to_uid: int, row_id: int) -> int:
    """Mark `to_uid`'s pending messages older than row `row_id` as dropped."""
    return tx.execute("UPDATE `msg_c2c` SET `status` = 2 WHERE `to_id` = %s AND `status` = 0 AND `id` < %s",
                      (to_uid, row_id))


def purge_c2c(tx: Tx, before_server_ts: int, dry_run: bool) -> int:
    if dry_run:
        return tx.scalar("SELECT COUNT(*) FROM `msg_c2c` WHERE `status` = 0 AND `server_ts` < %s",
                         (before_server_ts,))
    return tx.execute("UPDATE `msg_c2c` SET `status` = 2 WHERE `status` = 0 AND `server_ts` < %s",
                      (before_server_ts,))


# group messages -----------------------------------------------------------------
C2G_COLS = "`id`, `msg_id`, `from_id`, `to_groupid`, `payload`, `created_at`, `server_ts`"


def c2g_by_msg_id(tx: Tx, msg_id: str) -> dict[str, Any] | None:
    return tx.one(f"SELECT {C2G_COLS} FROM `msg_c2g` WHERE `msg_id` = %s", (msg_id,))


def insert_c2g(tx: Tx, msg_id: str, from_uid: int, gid: int, payload: str, created_at: int,
               server_ts: int, member_ids: Sequence[int]) -> None:
    tx.execute("INSERT INTO `msg_c2g` (`msg_id`, `from_id`, `to_groupid`, `payload`, `created_at`, `server_ts`)"
               " VALUES (%s, %s, %s, %s, %s, %s)", (msg_id, from_uid, gid, payload, created_at, server_ts))
    if member_ids:
        tx.executemany("INSERT INTO `msg_c2g_timeline` (`to_groupid`, `to_id`, `created_at`, `msg_id`)"
                       " VALUES (%s, %s, %s, %s)", [(gid, uid, server_ts, msg_id) for uid in member_ids])


def insert_c2g_to_members(tx: Tx, msg_id: str, from_uid: int, gid: int, payload: str, created_at: int,
                          server_ts: int) -> list[int] | None:
    """Store a group message with a pending entry for every active member but the sender,
    made by the database from the member list; returns those members.

    None, with nothing written, when the sender is not an active member of an
    active group or the id is already stored: the membership check and the
    duplicate check are this one INSERT's (not `INSERT IGNORE`, which would
    also turn a value the column cannot hold into a warning).  Two statements
    in all where the database returns the rows it inserts (`tx.returning`),
    three elsewhere.
    """
    try:
        inserted = tx.execute("INSERT INTO `msg_c2g`"
                              " (`msg_id`, `from_id`, `to_groupid`, `payload`, `created_at`, `server_ts`)"
                              " SELECT %s, %s, %s, %s, %s, %s FROM `group_member` m"
                              " JOIN `group` g ON g.`id` = m.`group_id` WHERE m.`group_id` = %s"
                              " AND m.`user_id` = %s AND m.`status` = 1 AND g.`status` = 1",
                              (msg_id, from_uid, gid, payload, created_at, server_ts, gid, from_uid))
    except Exception as exc:
        if not is_duplicate_key(exc):
            raise
        return None  # the statement alone failed; the transaction goes on
    if not inserted:
        return None
    timeline = ("INSERT INTO `msg_c2g_timeline` (`to_groupid`, `to_id`, `created_at`, `msg_id`)"
                " SELECT %s, `user_id`, %s, %s FROM `group_member` WHERE `group_id` = %s AND `status` = 1"
                " AND `user_id` <> %s")
    params = (gid, server_ts, msg_id, gid, from_uid)
    if tx.returning:
        rows = tx.all(timeline + " RETURNING `to_id`", params)
    else:
        tx.execute(timeline, params)
        rows = tx.all("SELECT `to_id` FROM `msg_c2g_timeline` WHERE `msg_id` = %s", (msg_id,))
    return [int(r["to_id"]) for r in rows]


#: Group acks per DELETE: at most twice as many parameters (SQLite before 3.32
#: takes 999) and as many IN lists (SQLite refuses an expression deeper than 1,000).
ACKS_PER_STATEMENT = 499


def _marks(n: int) -> str:
    return ", ".join(["%s"] * n)


def ack_c2g_many(tx: Tx, acks: Sequence[tuple[int, str]]) -> int:
    """Remove the (member, msg_id) pending entries; returns how many were removed.

    One statement for up to ACKS_PER_STATEMENT acks: an OR of IN lists on the
    unique key, one list per message (or per member, when that makes fewer).
    A batch of acks spans many messages and members at once: a statement per
    message was a round trip, each waiting for the event loop's next turn, for
    a few dozen rows, and an OR of single pairs costs MariaDB a range each."""
    removed = 0
    for start in range(0, len(acks), ACKS_PER_STATEMENT):
        by_msg: dict[str, list[int]] = {}
        by_member: dict[int, list[str]] = {}
        for uid, msg_id in acks[start:start + ACKS_PER_STATEMENT]:
            by_msg.setdefault(msg_id, []).append(uid)
            by_member.setdefault(uid, []).append(msg_id)
        per_msg = len(by_msg) <= len(by_member)
        groups: dict[Any, Any] = by_msg if per_msg else by_member
        key = "`msg_id`" if per_msg else "`to_id`"
        listed = "`to_id`" if per_msg else "`msg_id`"
        lists = " OR ".join(f"({key} = %s AND {listed} IN ({_marks(len(values))}))" for values in groups.values())
        removed += tx.execute(f"DELETE FROM `msg_c2g_timeline` WHERE {lists}",
                              [v for k, values in groups.items() for v in (k, *values)])
    return removed


def pending_c2g(tx: Tx, to_uid: int, limit: int = 100000) -> list[dict[str, Any]]:
    """The newest `limit` group messages waiting for `to_uid`, oldest first."""
    rows = tx.all("SELECT t.`id` AS `tid`, m.`id`, m.`msg_id`, m.`from_id`, m.`to_groupid`, m.`payload`,"
                  " m.`created_at`, m.`server_ts` FROM `msg_c2g_timeline` t JOIN `msg_c2g` m"
                  " ON m.`msg_id` = t.`msg_id` WHERE t.`to_id` = %s ORDER BY t.`id` DESC LIMIT %s",
                  (to_uid, limit))
    rows.reverse()
    return rows


def pending_c2g_of(tx: Tx, to_uids: Sequence[int]) -> list[dict[str, Any]]:
    """Every group message waiting for any of `to_uids` (with the member as `to_id`), oldest first."""
    marks = ", ".join(["%s"] * len(to_uids))
    return tx.all("SELECT t.`id` AS `tid`, t.`to_id` AS `member`, m.`id`, m.`msg_id`, m.`from_id`,"
                  " m.`to_groupid`, m.`payload`, m.`created_at`, m.`server_ts` FROM `msg_c2g_timeline` t"
                  f" JOIN `msg_c2g` m ON m.`msg_id` = t.`msg_id` WHERE t.`to_id` IN ({marks})"
                  " ORDER BY t.`id`", list(to_uids))


def trim_c2g(tx: Tx, to_uid: int, oldest_kept_tid: int) -> int:
    """Drop a member's pending group entries older than the ones kept."""
    return tx.execute("DELETE FROM `msg_c2g_timeline` WHERE `to_id` = %s AND `id` < %s",
                      (to_uid, oldest_kept_tid))


def pending_depth(tx: Tx) -> dict[str, int]:
    """How many messages wait for an ack, for the metrics."""
    return {"c2c": int(tx.scalar("SELECT COUNT(*) FROM `msg_c2c` WHERE `status` = 0") or 0),
            "c2g": int(tx.scalar("SELECT COUNT(*) FROM `msg_c2g_timeline`") or 0)}
