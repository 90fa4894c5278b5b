"""Operators' work: admins, system notices, purges, users in bulk.

Called by the Flask CLI (`imboy/cli.py`) and the admin endpoints of
`imboy/api/health.py`; SQL stays in `repositories.ops` and
`repositories.messages`.
"""
from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from .. import ids, passwords
from ..clock import now_ms
from ..db import Database, Tx
from ..errors import BadRequest
from ..repositories import messages as messages_repo
from ..repositories import ops as ops_repo
from ..wire import s2c_frame

MAX_NOTICE = 4000
DAY_MS = 86_400_000
USER_BATCH = 1000
FRIEND_BATCH = 5000
BULK_DOMAIN = "example.com"
_PREFIX = re.compile(r"[a-z0-9][a-z0-9._-]{0,39}\Z")


# --- admins -------------------------------------------------------------------------
def admin_uids(config: dict[str, Any]) -> list[int]:
    """The user ids named (as hashids) in ADMIN_UIDS, in order; bad entries are skipped."""
    out = []
    for entry in config.get("ADMIN_UIDS") or ():
        uid = ids.decode(str(entry).strip())
        if uid > 0 and uid not in out:
            out.append(uid)
    return out


def is_admin(config: dict[str, Any], uid: int) -> bool:
    return uid in admin_uids(config)


# --- notices ------------------------------------------------------------------------
def send_notice(registry: Any, text: str, uid: int | None = None) -> dict[str, int]:
    """Push an S2C `notice` to one user, or to every user online (uid None).

    Not stored: a notice reaches the connections open now and nobody else.
    """
    if not text.strip() or len(text) > MAX_NOTICE:
        raise BadRequest(f"A notice has 1 to {MAX_NOTICE} characters")
    targets = [uid] if uid else registry.online_uids()
    users = connections = 0
    for target in targets:
        reached = registry.push(target, s2c_frame("notice", 0, target, text))
        if reached:
            users += 1
            connections += reached
    return {"users": users, "connections": connections}


# --- purge --------------------------------------------------------------------------
def purge_pending(db: Database, days: int, dry_run: bool, now: int | None = None) -> dict[str, int]:
    """Drop pending C2C messages and group pending entries older than `days` days.

    C2C rows are kept (marked dropped, so a resent id still gets its first
    server_ts); group timeline entries are deleted.  With `dry_run` nothing
    changes and the counts say what would go.
    """
    if days < 1:
        raise BadRequest("days must be at least 1")
    before = (now if now is not None else now_ms()) - days * DAY_MS

    def purge(tx: Tx) -> dict[str, int]:
        return {"c2c": int(messages_repo.purge_c2c(tx, before, dry_run)),
                "c2g": int(ops_repo.purge_c2g_timeline(tx, before, dry_run))}

    return db.run("admin.purge_pending", purge)


# --- users in bulk ------------------------------------------------------------------
@dataclass
class BulkResult:
    prefix: str
    uids: list[int] = field(default_factory=list)
    friend_rows: int = 0

    def email(self, index: int) -> str:
        return bulk_email(self.prefix, index)


def bulk_email(prefix: str, index: int) -> str:
    """The address of the `index`-th (from 1) bulk user of a run."""
    return f"{prefix}{index}@{BULK_DOMAIN}"


def ring_pairs(n: int, k: int) -> Iterator[tuple[int, int]]:
    """Unordered friend pairs of indices 0..n-1 giving everyone k friends.

    Each index pairs with the next k//2 around a ring; for an odd k also
    with the one opposite (offset n//2), which no ring offset can equal
    because k < n.  With n and k both odd the last index gets k-1.
    """
    for i in range(n):
        for d in range(1, k // 2 + 1):
            yield i, (i + d) % n
    if k % 2:
        half = n // 2
        for i in range(half):
            yield i, i + half


def _chunks(seq: list, size: int) -> Iterator[list]:
    for start in range(0, len(seq), size):
        yield seq[start:start + size]


def _account_numbers(db: Database, count: int, taken: set[str]) -> list[str]:
    """`count` random 9-digit account numbers, unique here and in the table."""
    chosen: list[str] = []
    while len(chosen) < count:
        fresh = set()
        while len(fresh) < count - len(chosen):
            number = str(100_000_000 + secrets.randbelow(900_000_000))
            if number not in taken:
                fresh.add(number)
        clash = db.run("admin.bulk_accounts", ops_repo.existing_accounts, sorted(fresh))
        for number in fresh - clash:
            taken.add(number)
            chosen.append(number)
        taken |= clash
    return chosen


def check_bulk_args(n: int, k: int, prefix: str) -> None:
    if n < 1:
        raise BadRequest("N must be at least 1")
    if k < 0:
        raise BadRequest("--friends-per-user must be 0 or more")
    if k and k >= n:
        raise BadRequest("--friends-per-user must be smaller than N")
    if not _PREFIX.match(prefix):
        raise BadRequest("--prefix: 1 to 40 of a-z, 0-9, '.', '_', '-', starting with a letter or digit")


def bulk_users(db: Database, n: int, friends_per_user: int, password: str, prefix: str | None = None,
               progress: Callable[[str], None] | None = None) -> BulkResult:
    """Create `n` users `<prefix><i>@example.com` and their friendships, fast.

    One password hash serves every user; users go in by batches of
    USER_BATCH, friendships by FRIEND_BATCH rows, one transaction each.
    Every address is checked first, so a clash stops the run before it
    writes anything.  A failure later leaves the batches already committed.
    """
    prefix = (prefix or f"bulk{secrets.token_hex(3)}-").lower()
    check_bulk_args(n, friends_per_user, prefix)
    if not password or len(password) > 256:
        raise BadRequest("Invalid password")
    emails = [bulk_email(prefix, i) for i in range(1, n + 1)]
    if len(emails[-1]) > 80:
        raise BadRequest("--prefix is too long for these addresses")
    for chunk in _chunks(emails, USER_BATCH):
        clash = db.run("admin.bulk_check", ops_repo.existing_emails, chunk)
        if clash:
            raise BadRequest(f"{len(clash)} address(es) already exist, e.g. {min(clash)}: choose another --prefix")
    pw_hash = passwords.hash_password(password)
    now = now_ms()
    result = BulkResult(prefix)
    taken: set[str] = set()

    def insert(tx: Tx, chunk: list[str], accounts: list[str]) -> list[int]:
        rows = [(email, account, email.split("@")[0][:80], "") for email, account in zip(chunk, accounts)]
        ops_repo.insert_users(tx, rows, pw_hash, now)
        by_email = ops_repo.ids_by_email(tx, chunk)
        return [by_email[e] for e in chunk]

    for chunk in _chunks(emails, USER_BATCH):
        accounts = _account_numbers(db, len(chunk), taken)
        result.uids.extend(db.run("admin.bulk_users", insert, chunk, accounts))
        if progress and len(result.uids) % (USER_BATCH * 10) == 0:
            progress(f"{len(result.uids)} users")
    uids = result.uids
    batch: list[tuple[int, int]] = []
    for a, b in ring_pairs(n, friends_per_user):
        batch.append((uids[a], uids[b]))
        batch.append((uids[b], uids[a]))
        if len(batch) >= FRIEND_BATCH:
            result.friend_rows += db.run("admin.bulk_friends", ops_repo.insert_friend_rows, batch, now)
            batch = []
    if batch:
        result.friend_rows += db.run("admin.bulk_friends", ops_repo.insert_friend_rows, batch, now)
    return result
