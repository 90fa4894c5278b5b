"""The only module that opens database connections.

`Database` owns a bounded pool (PyMySQL for MySQL/MariaDB, one shared
connection for the embedded SQLite default), runs every transaction through
`run(name, fn)` / `transaction(name)`, and applies the numbered migrations in
`sql/<dialect>/`.  Repositories write `%s` placeholders and one SQL dialect;
the few places where MySQL and SQLite differ go through the small named hooks
on `Database` (`insert_ignore`, `upsert_suffix`).

A connection is used by one greenlet at a time, checked out with a time-out,
and always returned rolled back, or thrown away when its state is unknown
(a lost connection, gevent.Timeout, KeyboardInterrupt).
"""
from __future__ import annotations

import logging
import os
import re
import sqlite3
import time
from collections import deque
from contextlib import contextmanager
from functools import lru_cache
from typing import Any, Callable, Iterator, Sequence, TypeVar
from urllib.parse import parse_qs, unquote, urlparse

import gevent.event
import gevent.threadpool
import pymysql
import pymysql.cursors
import pymysql.err

from .errors import ServiceUnavailable

log = logging.getLogger("imboy.db")
T = TypeVar("T")

SQL_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "sql")

# A pooled MySQL connection idle for longer than this is pinged before use.
_STALE_AFTER = 10.0
# MySQL errors that mean "this object already exists": a migration step that
# meets one on an existing imboy database has nothing left to do.
_ALREADY_DONE = {1050, 1060, 1061, 1068, 1022}
# Client and server error numbers that mean the connection itself is gone
# (server gone away, lost during query, can't connect, killed, timed out for
# inactivity); other OperationalErrors (deadlock, lock wait time-out) are
# answers from a live server and leave the connection usable.
_CONNECTION_GONE = {2003, 2006, 2013, 2055, 1053, 1077, 1080, 1152, 1927, 4031}
_DEADLOCK = 1213
_DUPLICATE_KEY = 1062
_ATTEMPTS = 3
# Threads an SQLite database keeps for its commits and waits.
_SQLITE_THREADS = 4


_MULTI_ROW_INSERT = pymysql.cursors.RE_INSERT_VALUES


class _FairSlots:
    """A counting semaphore that serves its waiters in the order they came.

    gevent's semaphores let a greenlet that releases take the slot right
    back before any waiter wakes: a commit lane that runs batch after batch
    would keep the connection from everyone else until their time-out.
    Here a released slot goes straight to the first waiter.
    """

    __slots__ = ("_free", "_waiters")

    def __init__(self, n: int) -> None:
        self._free = n
        self._waiters: deque[gevent.event.Event] = deque()

    def acquire(self, timeout: float) -> bool:
        if self._free and not self._waiters:
            self._free -= 1
            return True
        waiter = gevent.event.Event()
        self._waiters.append(waiter)
        got = False
        try:
            got = waiter.wait(timeout)
        finally:
            if not got:  # timed out, or interrupted
                if waiter.is_set():  # handed a slot on the way out: pass it on
                    self.release()
                else:
                    self._waiters.remove(waiter)
        return got

    def release(self) -> None:
        if self._waiters:
            self._waiters.popleft().set()
        else:
            self._free += 1


class Tx:
    """One transaction on one connection: execute, fetch, insert."""

    __slots__ = ("_cur", "dialect", "returning", "statements", "committing")

    def __init__(self, cursor: Any, dialect: str, returning: bool = False) -> None:
        self._cur = cursor
        self.dialect = dialect
        # The database takes `INSERT ... RETURNING` (MariaDB 10.5+, SQLite
        # 3.35+; not MySQL): the rows written come back without a second read.
        self.returning = returning
        self.statements = 0
        # Set once the body is done: a failure from here on may have
        # committed, so the transaction must not be run again.
        self.committing = False

    def _sql(self, sql: str) -> str:
        return _to_qmark(sql) if self.dialect == "sqlite" else sql

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; returns the affected row count."""
        self.statements += 1
        self._cur.execute(self._sql(sql), tuple(params))
        return self._cur.rowcount

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        """One statement for all `rows`: an INSERT whose VALUES hold nothing but `%s`
        (PyMySQL makes it one multi-row INSERT; anything else in VALUES, even a
        constant, and it silently sends one statement per row)."""
        if not _MULTI_ROW_INSERT.match(sql):
            raise ValueError("executemany needs INSERT ... VALUES (%s, ...) with only %s placeholders")
        self.statements += 1
        self._cur.executemany(self._sql(sql), [tuple(r) for r in rows])
        return self._cur.rowcount

    def insert(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run an INSERT and return the new row's id."""
        self.execute(sql, params)
        return int(self._cur.lastrowid or 0)

    def one(self, sql: str, params: Sequence[Any] = ()) -> dict[str, Any] | None:
        self.execute(sql, params)
        row = self._cur.fetchone()
        return _as_dict(row) if row is not None else None

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        self.execute(sql, params)
        return [_as_dict(r) for r in self._cur.fetchall()]

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        self.execute(sql, params)
        row = self._cur.fetchone()
        if row is None:
            return None
        return next(iter(row.values())) if isinstance(row, dict) else row[0]

    # dialect hooks -------------------------------------------------------
    @property
    def insert_ignore(self) -> str:
        """`INSERT IGNORE` in MySQL, `INSERT OR IGNORE` in SQLite."""
        return "INSERT IGNORE" if self.dialect == "mysql" else "INSERT OR IGNORE"

    def upsert_suffix(self, conflict_cols: Sequence[str], update_cols: Sequence[str]) -> str:
        """The tail of an INSERT that updates `update_cols` on a key clash."""
        if self.dialect == "mysql":
            sets = ", ".join(f"`{c}` = VALUES(`{c}`)" for c in update_cols)
            return f" ON DUPLICATE KEY UPDATE {sets}"
        keys = ", ".join(f"`{c}`" for c in conflict_cols)
        sets = ", ".join(f"`{c}` = excluded.`{c}`" for c in update_cols)
        return f" ON CONFLICT ({keys}) DO UPDATE SET {sets}"


def _as_dict(row: Any) -> dict[str, Any]:
    return row if isinstance(row, dict) else dict(row)


def is_duplicate_key(exc: BaseException) -> bool:
    """A unique key refused the row: MySQL's error 1062, SQLite's UNIQUE constraint."""
    if isinstance(exc, pymysql.err.IntegrityError):
        return bool(exc.args) and exc.args[0] == _DUPLICATE_KEY
    return isinstance(exc, sqlite3.IntegrityError) and "UNIQUE constraint failed" in str(exc)


@lru_cache(maxsize=16)
def _mariadb_returning(server_version: str) -> bool:
    """MariaDB 10.5 and later take `INSERT ... RETURNING` (its version reads
    "10.11.6-MariaDB-..." or, to old clients, "5.5.5-10.11.6-MariaDB-...")."""
    found = re.search(r"(\d+)\.(\d+)\.\d+-MariaDB", server_version or "")
    return found is not None and (int(found[1]), int(found[2])) >= (10, 5)


@lru_cache(maxsize=2048)
def _to_qmark(sql: str) -> str:
    # Repository SQL never holds a literal "%s" inside a string constant.
    return sql.replace("%s", "?")


class _MySQLPool:
    """A bounded gevent-safe pool of PyMySQL connections."""

    dialect = "mysql"

    def __init__(self, params: dict[str, Any], size: int, timeout: float) -> None:
        self._params = params
        self._timeout = timeout
        self._slots = _FairSlots(size)
        self._idle: deque[tuple[pymysql.connections.Connection, float]] = deque()
        self.size = size
        self.in_use = 0

    def connection_lost(self) -> None:
        """One connection was found dead: the idle ones probably are too
        (server restart, KILL), so each is pinged at its next checkout."""
        self._idle = deque((conn, 0.0) for conn, _ in self._idle)

    def _connect(self) -> pymysql.connections.Connection:
        try:
            conn = pymysql.connect(**self._params)
            with conn.cursor() as cur:
                # Each statement sees what others committed before it.
                cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
            return conn
        except pymysql.err.MySQLError as exc:
            log.error("database connect failed: %s", exc.__class__.__name__)
            raise ServiceUnavailable("Database unavailable") from exc

    def acquire(self) -> pymysql.connections.Connection:
        if not self._slots.acquire(timeout=self._timeout):
            log.warning("no free database connection within %.1f s (all %d in use)",
                        self._timeout, self.size)
            raise ServiceUnavailable("Database busy, try again")
        try:
            while self._idle:
                conn, last_used = self._idle.pop()
                if time.monotonic() - last_used < _STALE_AFTER:
                    break
                try:
                    conn.ping(reconnect=False)
                    break
                except Exception:
                    _close_quietly(conn)
            else:
                conn = self._connect()
        except BaseException:
            self._slots.release()
            raise
        self.in_use += 1
        return conn

    def release(self, conn: Any, reusable: bool) -> None:
        self.in_use -= 1
        if reusable:
            self._idle.append((conn, time.monotonic()))
        else:
            _close_quietly(conn)
        self._slots.release()

    def cursor(self, conn: Any) -> Any:
        return conn.cursor()

    def returning(self, conn: Any) -> bool:
        return _mariadb_returning(conn.server_version)

    def begin(self, conn: Any) -> None:
        # autocommit is off: the first statement opens the transaction, so
        # no BEGIN round trip is needed.
        pass

    def commit(self, conn: Any) -> None:
        # A network call with the connection's read time-out: the hub is never blocked.
        conn.commit()

    def close(self) -> None:
        while self._idle:
            _close_quietly(self._idle.pop()[0])


class _SQLitePool:
    """The embedded default: one connection, one greenlet at a time.

    SQLite serialises writers anyway; one shared connection guarded by a
    gevent lock keeps transactions in this process strictly one after the
    other, and WAL with synchronous=FULL makes a commit durable.

    What can block for long runs in threads of this pool's own, so the hub keeps
    serving every other connection meanwhile: COMMIT (the fsync, and a WAL
    checkpoint now and then), opening the connection, and a BEGIN IMMEDIATE
    that must wait up to the busy time-out while another process (an
    operator's CLI command, say) holds the write lock.  BEGIN is first tried
    on the hub without waiting (the connection's own busy time-out is 0),
    since the lock is nearly always free.  The statements between BEGIN and
    COMMIT stay on the hub: with the write lock held they wait for nothing,
    and a threadpool round trip each would cost more than they do.
    """

    dialect = "sqlite"

    def __init__(self, path: str, timeout: float, busy_timeout: float) -> None:
        if path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self._path = path
        self._busy = busy_timeout
        self._timeout = timeout
        self._lock = _FairSlots(1)
        self._conn: sqlite3.Connection | None = None
        # The call running in the threadpool on `_conn`, if any.
        self._call: Any = None
        # Threads of this database's own: password hashing in the hub's pool
        # never holds up a commit, nor an abandoned wait for a lock the hashing.
        self._threads: Any = None
        self.size = 1
        self.in_use = 0

    def _off_hub(self, fn: Callable[..., Any], *args: Any) -> Any:
        """`fn(*args)` in this database's threads; this greenlet waits, the hub does not."""
        if self._threads is None:
            self._threads = gevent.threadpool.ThreadPool(_SQLITE_THREADS)
        call = self._call = self._threads.spawn(fn, *args)
        return call.get()

    def acquire(self) -> sqlite3.Connection:
        if not self._lock.acquire(timeout=self._timeout):
            raise ServiceUnavailable("Database busy, try again")
        try:
            if self._conn is None:
                self._conn = self._off_hub(self._connect)
        except BaseException:
            self._lock.release()
            raise
        self.in_use = 1
        return self._conn

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path, timeout=self._busy, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        conn.execute("PRAGMA synchronous=FULL")
        if str(mode).lower() in ("wal", "memory"):
            # Once BEGIN IMMEDIATE holds the write lock, nothing waits for another
            # process in WAL mode: no busy time-out, so nothing can block the hub.
            conn.execute("PRAGMA busy_timeout = 0")
        else:
            log.warning("SQLite journal mode is %s, not WAL: commits may wait for readers", mode)
        return conn

    def release(self, conn: Any, reusable: bool) -> None:
        self.in_use = 0
        if not reusable:
            self._drop()
        self._lock.release()

    def _drop(self) -> None:
        """Close the connection; the next transaction opens another.  A greenlet interrupted
        (a time-out, a kill) while its thread still used it leaves it to be closed once
        that thread is done."""
        conn, self._conn = self._conn, None
        call, self._call = self._call, None
        if conn is None:
            return
        if call is not None and not call.ready():
            call.rawlink(lambda _: _close_quietly(conn))
        else:
            _close_quietly(conn)

    def cursor(self, conn: Any) -> Any:
        return conn.cursor()

    def returning(self, conn: Any) -> bool:
        return sqlite3.sqlite_version_info >= (3, 35)

    def connection_lost(self) -> None:
        pass

    def begin(self, conn: Any) -> None:
        # IMMEDIATE takes the write lock up front, so a transaction never
        # fails half-way on a lock upgrade against another process (the CLI).
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if not _sqlite_busy(exc):
                raise
            self._off_hub(self._begin_waiting, conn)

    def _begin_waiting(self, conn: Any) -> None:
        """BEGIN IMMEDIATE, waiting up to the busy time-out for another process's lock
        (in SQLite's own busy handler, a second at a time)."""
        deadline = time.monotonic() + self._busy
        conn.execute("PRAGMA busy_timeout = 1000")
        try:
            while True:
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    return
                except sqlite3.OperationalError as exc:
                    if not _sqlite_busy(exc) or time.monotonic() >= deadline:
                        raise
        finally:
            conn.execute("PRAGMA busy_timeout = 0")

    def commit(self, conn: Any) -> None:
        self._off_hub(conn.commit)

    def close(self) -> None:
        # A transaction in flight (waiting for its thread) ends first.
        got = self._lock.acquire(timeout=self._timeout)
        try:
            self._drop()
            threads, self._threads = self._threads, None
            if threads is not None:
                threads.kill()  # idle threads end now, a busy one when its call returns
        finally:
            if got:
                self._lock.release()


def _close_quietly(conn: Any) -> None:
    try:
        conn.close()
    except Exception:
        pass


def _lost_connection(exc: BaseException) -> bool:
    """True when `exc` says the connection is gone, not that a statement failed."""
    if isinstance(exc, pymysql.err.OperationalError):
        return bool(exc.args) and exc.args[0] in _CONNECTION_GONE
    return isinstance(exc, (pymysql.err.InterfaceError, ConnectionError, OSError))


def _sqlite_busy(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)


class ConnectionLost(ServiceUnavailable):
    """The database connection died under a transaction."""

    def __init__(self, msg: str, retryable: bool) -> None:
        super().__init__(msg)
        self.retryable = retryable


class Database:
    """Pool + transactions + migrations for one database URL."""

    def __init__(self, url: str, pool_size: int = 10, pool_timeout: float = 5.0,
                 connect_timeout: float = 5.0, query_timeout: float = 30.0, metrics: Any = None) -> None:
        self.url = url
        self.metrics = metrics
        # Greenlets inside a transaction (ids), to refuse nested ones.
        self._holders: set[int] = set()
        #: Migrations this object applied, in order (startup and init-db).
        self.applied: list[str] = []
        parsed = urlparse(url)
        if parsed.scheme == "sqlite":
            path = unquote(url[len("sqlite:///"):]) if url.startswith("sqlite:///") else ":memory:"
            self.dialect = "sqlite"
            self._pool: Any = _SQLitePool(path or ":memory:", pool_timeout, query_timeout)
            self.database = path
        elif parsed.scheme in ("mysql", "mysql+pymysql", "mariadb"):
            query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
            self.dialect = "mysql"
            self.database = unquote(parsed.path.lstrip("/"))
            params = dict(
                host=parsed.hostname or "127.0.0.1",
                port=parsed.port or 3306,
                user=unquote(parsed.username or "root"),
                password=unquote(parsed.password or ""),
                database=self.database or None,
                charset="utf8mb4",
                autocommit=False,
                connect_timeout=connect_timeout,
                read_timeout=query_timeout,
                write_timeout=query_timeout,
                cursorclass=pymysql.cursors.DictCursor,
                # Strict mode: an over-long value is an error, never silently cut.
                init_command="SET SESSION sql_mode='STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION'",
            )
            if "unix_socket" in query:
                params["unix_socket"] = query["unix_socket"]
            # TLS only when asked for (`?ssl=1`): PyMySQL otherwise builds a
            # TLS context on every connect (tens of milliseconds each) even
            # for a server on this host that offers none.
            if query.get("ssl", "").lower() not in ("1", "true", "yes", "on"):
                params["ssl_disabled"] = True
            self._pool = _MySQLPool(params, pool_size, pool_timeout)
        else:
            raise ValueError(f"unsupported database URL scheme: {parsed.scheme!r}")

    # transactions --------------------------------------------------------
    @contextmanager
    def transaction(self, name: str) -> Iterator[Tx]:
        """A transaction: committed when the block ends, rolled back if it raises.

        One greenlet holds at most one transaction: a nested one would wait
        for a second connection (with SQLite, for the one it holds itself)
        and is a programming error, reported at once.
        """
        me = id(gevent.getcurrent())
        if me in self._holders:
            raise RuntimeError(f"transaction {name!r} started inside another transaction "
                               "of the same greenlet")
        pool = self._pool
        waited = time.monotonic()
        conn = pool.acquire()
        if self.metrics is not None:
            self.metrics.pool_wait.observe(time.monotonic() - waited)
            self.metrics.pool_in_use.inc()
        self._holders.add(me)
        reusable = False
        tx: Tx | None = None
        try:
            pool.begin(conn)
            tx = Tx(pool.cursor(conn), self.dialect, pool.returning(conn))
            yield tx
            tx.committing = True
            pool.commit(conn)
            reusable = True
        except BaseException as exc:
            lost = _lost_connection(exc)
            # The server answered, so the connection's state is known: roll
            # back and keep it.  Anything else (lost connection, Timeout,
            # KeyboardInterrupt) leaves it unknown: throw it away.
            if isinstance(exc, Exception) and not lost:
                try:
                    conn.rollback()
                    reusable = True
                except Exception:
                    pass
            if lost:
                pool.connection_lost()
                log.warning("transaction %s lost its connection: %s", name, exc.__class__.__name__)
                retry = tx is None or (tx.statements <= 1 and not tx.committing)
                raise ConnectionLost("Database unavailable", retryable=retry) from exc
            if _sqlite_busy(exc):
                log.warning("transaction %s: database locked by another process", name)
                raise ServiceUnavailable("Database busy, try again") from exc
            raise
        finally:
            self._holders.discard(me)
            pool.release(conn, reusable)
            if self.metrics is not None:
                self.metrics.pool_in_use.dec()

    def run(self, name: str, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(tx, *args)` in a transaction named `name`.

        A connection found dead on the first statement (the server restarted
        or killed it while it sat idle) is replaced and the transaction tried
        once more: nothing of it can have been applied.  A failure after
        that, or during the commit, is not retried: it may have committed.
        A transaction InnoDB chose as a deadlock victim is rolled back
        entirely and is run again, up to three times in all, so `fn` must
        do nothing but database work.
        """
        for attempt in range(_ATTEMPTS):
            try:
                with self.transaction(name) as tx:
                    return fn(tx, *args)
            except ConnectionLost as exc:
                if not exc.retryable or attempt:
                    raise
            except pymysql.err.OperationalError as exc:
                # InnoDB rolled the whole transaction back: run it again.
                if not exc.args or exc.args[0] != _DEADLOCK or attempt == _ATTEMPTS - 1:
                    raise
                log.info("transaction %s: deadlock, retrying", name)
        raise AssertionError("unreachable")

    def read(self, name: str, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """A one-statement read, for handlers of queries that need no more."""
        return self.run(name, lambda tx: tx.all(sql, params))

    @property
    def pool_in_use(self) -> int:
        return self._pool.in_use

    @property
    def pool_size(self) -> int:
        return self._pool.size

    def close(self) -> None:
        self._pool.close()

    # migrations ----------------------------------------------------------
    def migrate(self) -> list[str]:
        """Apply every pending migration of sql/<dialect>/; returns their names."""
        folder = os.path.join(SQL_DIR, self.dialect)
        files = sorted(f for f in os.listdir(folder) if re.match(r"^\d{4}_.*\.sql$", f))
        applied: list[str] = []
        with self._migration_lock():
            with self.transaction("migrate.version_table") as tx:
                tx.execute("CREATE TABLE IF NOT EXISTS imboy_schema_version ("
                           " version INT NOT NULL PRIMARY KEY,"
                           " name VARCHAR(200) NOT NULL,"
                           " applied_at BIGINT NOT NULL)")
                done = {r["version"] for r in tx.all("SELECT version FROM imboy_schema_version")}
            for fname in files:
                version = int(fname[:4])
                if version in done:
                    continue
                with open(os.path.join(folder, fname), encoding="utf-8") as fh:
                    statements = split_sql(fh.read())
                if self._apply(version, fname, statements):
                    applied.append(fname)
                    log.info("applied migration %s", fname)
        self.applied.extend(applied)
        return applied

    def _apply(self, version: int, fname: str, statements: list[str]) -> bool:
        """Apply one migration file; False if another process just did.

        MySQL commits DDL implicitly, so each statement stands alone and a
        re-run after a crash skips what already exists (the GET_LOCK of
        `_migration_lock` keeps two processes apart).  SQLite runs the whole
        file in one BEGIN IMMEDIATE transaction, and looks at the version
        table again inside it: a second process starting at the same time
        waits for the first and then finds the work done.
        """
        with self.transaction(f"migrate.{fname}") as tx:
            if tx.scalar("SELECT COUNT(*) FROM imboy_schema_version WHERE version = %s", (version,)):
                return False
            for stmt in statements:
                if self.dialect == "mysql":
                    try:
                        tx._cur.execute(stmt)
                    except pymysql.err.MySQLError as exc:
                        if exc.args and exc.args[0] in _ALREADY_DONE:
                            continue
                        raise
                else:
                    tx._cur.execute(stmt)
            tx.execute("INSERT INTO imboy_schema_version (version, name, applied_at) VALUES (%s, %s, %s)",
                       (version, fname, int(time.time() * 1000)))
        return True

    @contextmanager
    def _migration_lock(self) -> Iterator[None]:
        if self.dialect != "mysql":
            yield
            return
        # A connection of its own, outside the pool, so a pool of one still
        # has its slot for the migration itself.
        conn = self._pool._connect()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT GET_LOCK('imboy_migrate', 60) AS got")
                if not cur.fetchone()["got"]:
                    raise ServiceUnavailable("Could not take the migration lock")
            try:
                yield
            finally:
                with conn.cursor() as cur:
                    cur.execute("SELECT RELEASE_LOCK('imboy_migrate')")
        finally:
            _close_quietly(conn)


def split_sql(text: str) -> list[str]:
    """Split a migration file into statements (no procedures, `;` ends one)."""
    lines = [ln for ln in text.splitlines() if not ln.strip().startswith("--")]
    parts = (s.strip().rstrip(";").strip() for s in "\n".join(lines).split(";\n"))
    return [p for p in parts if p]
