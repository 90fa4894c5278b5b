"""Bulk set-up of a throwaway database: users, friendships, a group, pending messages.

Signing up 100,000 users through `accounts.do_create_user` would hash
100,000 passwords; here every user shares one precomputed hash and rows go
in with multi-row inserts through the project's own `Database` (so the
schema is the one its migrations make).  Tokens are minted with the
project's `TokenService` and the same secret the server under test gets.
"""
from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import pymysql

from imboy import ids
from imboy.db import Database, Tx
from imboy.passwords import hash_password
from imboy.tokens import TokenService

CHUNK = 2000
PASSWORD = "bench password"


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class BenchUser:
    uid: int
    token: str

    @property
    def hashid(self) -> str:
        return ids.encode(self.uid)


@dataclass
class BenchDB:
    """One throwaway database for one run, dropped by `drop()`."""

    kind: str  # "mysql" or "sqlite"
    workdir: str
    mysql: dict = field(default_factory=lambda: {"host": "127.0.0.1", "port": 3306, "user": "root",
                                                  "password": ""})

    def __post_init__(self) -> None:
        if self.kind == "mysql":
            self.name = f"imboy_bench_{os.getpid()}_{uuid.uuid4().hex[:8]}"
            conn = self._admin()
            with conn.cursor() as cur:
                cur.execute(f"CREATE DATABASE `{self.name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci")
            conn.close()
            m = self.mysql
            auth = m["user"] + (":" + m["password"] if m["password"] else "")
            self.url = f"mysql://{auth}@{m['host']}:{m['port']}/{self.name}"
            if m.get("unix_socket"):
                self.url += f"?unix_socket={m['unix_socket']}"
        elif self.kind == "sqlite":
            self.name = os.path.join(self.workdir, "imboy.sqlite3")
            self.url = f"sqlite:///{self.name}"
        else:
            raise ValueError(f"unknown database kind {self.kind!r}")
        self.db = Database(self.url, pool_size=2)
        self.db.migrate()
        self._hash: str | None = None

    def commit_probe(self, n: int = 100) -> dict[str, float]:
        """Latency of n one-row durable commits: what the disk and the database allow right now.

        On a shared machine other work on the same disk moves this a lot, and
        every message costs at least one such commit, so each run records it.
        """
        self.db.run("bench.probe_table", lambda tx: tx.execute(
            "CREATE TABLE IF NOT EXISTS `bench_commit_probe` (`id` INTEGER PRIMARY KEY, `v` INTEGER NOT NULL)"))
        times = []
        for i in range(n):
            t = time.perf_counter()
            self.db.run("bench.probe", lambda tx, i=i: tx.execute(
                "INSERT INTO `bench_commit_probe` (`id`, `v`) VALUES (%s, %s)", (i + 1, i)))
            times.append((time.perf_counter() - t) * 1000)
        times.sort()
        return {"n": n, "p50": round(times[n // 2], 2), "p90": round(times[int(n * 0.9)], 2),
                "p99": round(times[min(n - 1, int(n * 0.99))], 2), "max": round(times[-1], 2)}

    def _admin(self) -> pymysql.connections.Connection:
        m = self.mysql
        return pymysql.connect(host=m["host"], port=m["port"], user=m["user"], password=m["password"],
                               autocommit=True, connect_timeout=5)

    def drop(self) -> None:
        """Forget everything this run wrote."""
        self.db.close()
        if self.kind == "mysql":
            conn = self._admin()
            with conn.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS `{self.name}`")
            conn.close()

    def _many(self, name: str, sql: str, rows: Sequence[Sequence]) -> None:
        for i in range(0, len(rows), CHUNK):
            chunk = rows[i:i + CHUNK]
            self.db.run(name, lambda tx, c=chunk: tx.executemany(sql, c))

    # users ----------------------------------------------------------------------
    def add_users(self, n: int, prefix: str = "bench") -> list[int]:
        """`n` active users sharing one password hash; returns their ids in order."""
        if self._hash is None:
            self._hash = hash_password(PASSWORD)
        now = _now_ms()
        tag = uuid.uuid4().hex[:6]
        rows = [(f"{prefix}{tag}{i}@bench.invalid", f"b{tag}{i}", self._hash, f"{prefix}{i}", 1, now, "", "",
                 "online", 0, "127.0.0.1", "bench") for i in range(n)]
        self._many("bench.users", "INSERT INTO `user` (`email`, `account`, `password`, `nickname`, `status`,"
                   " `created_at`, `avatar`, `sign`, `state`, `ref_user_id`, `reg_ip`, `reg_cosv`)"
                   " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)", rows)
        accounts = [r[1] for r in rows]
        found: dict[str, int] = {}

        def load(tx: Tx, chunk: list[str]) -> None:
            marks = ", ".join(["%s"] * len(chunk))
            for r in tx.all(f"SELECT `id`, `account` FROM `user` WHERE `account` IN ({marks})", chunk):
                found[r["account"]] = r["id"]

        for i in range(0, n, CHUNK):
            self.db.run("bench.user_ids", load, accounts[i:i + CHUNK])
        return [found[a] for a in accounts]

    def befriend(self, pairs: Iterable[tuple[int, int]]) -> int:
        """Both `user_friend` rows for each pair; returns the pair count."""
        now = _now_ms()
        rows = []
        for a, b in pairs:
            rows.append((a, b, 1, 0, "", now, now, "{}"))
            rows.append((b, a, 1, 0, "", now, now, "{}"))
        self._many("bench.friends", "INSERT INTO `user_friend` (`from_user_id`, `to_user_id`, `status`,"
                   " `category_id`, `remark`, `created_at`, `updated_at`, `setting`)"
                   " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)", rows)
        return len(rows) // 2

    def add_group(self, owner: int, members: Sequence[int], name: str = "bench group") -> int:
        """A group with `owner` and `members` active; returns its id."""
        now = _now_ms()
        everyone = [owner] + [m for m in members if m != owner]

        def create(tx: Tx) -> int:
            return tx.insert("INSERT INTO `group` (`type`, `join_limit`, `content_limit`, `owner_uid`,"
                             " `creater_uid`, `member_max`, `member_count`, `groupname`, `status`, `created_at`,"
                             " `updated_at`) VALUES (2, 1, 1, %s, %s, %s, %s, %s, 1, %s, %s)",
                             (owner, owner, len(everyone), len(everyone), name, now, now))

        gid = self.db.run("bench.group", create)
        rows = [(gid, uid, 4 if uid == owner else 1, 1, now, now) for uid in everyone]
        self._many("bench.members", "INSERT INTO `group_member` (`group_id`, `user_id`, `role`, `status`,"
                   " `created_at`, `updated_at`) VALUES (%s, %s, %s, %s, %s, %s)", rows)
        return gid

    def add_pending(self, messages: Sequence[tuple[int, int, str, str]]) -> None:
        """Pending C2C rows (from_uid, to_uid, msg_id, payload_json), as if sent while offline."""
        now = _now_ms()
        rows = [(msg_id, f, t, payload, now, now + i // 1000, 0) for i, (f, t, msg_id, payload)
                in enumerate(messages)]
        self._many("bench.pending", "INSERT INTO `msg_c2c` (`msg_id`, `from_id`, `to_id`, `payload`, `created_at`,"
                   " `server_ts`, `status`) VALUES (%s, %s, %s, %s, %s, %s, %s)", rows)

    def pending_count(self, to_uid: int | None = None) -> int:
        """C2C messages not acked yet (for one user, or for everyone)."""
        if to_uid is None:
            return int(self.db.run("bench.pending_count", lambda tx: tx.scalar(
                "SELECT COUNT(*) FROM `msg_c2c` WHERE `status` = 0")))
        return int(self.db.run("bench.pending_count", lambda tx: tx.scalar(
            "SELECT COUNT(*) FROM `msg_c2c` WHERE `to_id` = %s AND `status` = 0", (to_uid,))))

    def group_pending(self) -> bool:
        """Some member's group message is not acked yet (cheap to poll: no count)."""
        return bool(self.db.run("bench.group_pending", lambda tx: tx.scalar(
            "SELECT EXISTS (SELECT 1 FROM `msg_c2g_timeline`)")))

    def count(self, table: str) -> int:
        if table not in ("msg_c2c", "msg_c2g", "msg_c2g_timeline", "user", "user_friend"):
            raise ValueError(table)
        return int(self.db.run("bench.count", lambda tx: tx.scalar(f"SELECT COUNT(*) FROM `{table}`")))


def mint_tokens(secret: str, uids: Sequence[int], ttl: float = 86400.0) -> list[BenchUser]:
    """Access tokens the server under test accepts (same secret)."""
    service = TokenService(secret, access_ttl=ttl)
    return [BenchUser(uid, service.access_token(uid)) for uid in uids]
