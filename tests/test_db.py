"""imboy.db under concurrency: the MySQL pool (MariaDB) and SQLite.

These use `Database` directly, with a small pool, many greenlets, and a
second connection that kills the pool's connections the way a server
restart or an operator would.
"""
from __future__ import annotations

import sqlite3
from urllib.parse import unquote, urlparse

import gevent
import gevent.event
import pymysql
import pytest

from imboy.db import Database, _mariadb_returning
from imboy.errors import ServiceUnavailable


def admin_connection(url: str) -> pymysql.connections.Connection:
    """A connection outside the pool, as an operator's console."""
    parsed = urlparse(url)
    return pymysql.connect(host=parsed.hostname, port=parsed.port or 3306, user=unquote(parsed.username or ""),
                           password=unquote(parsed.password or ""), autocommit=True, connect_timeout=5)


def kill(url: str, connection_ids) -> None:
    conn = admin_connection(url)
    try:
        with conn.cursor() as cur:
            for cid in connection_ids:
                cur.execute("KILL %s", (cid,))
    finally:
        conn.close()


def connection_id(tx) -> int:
    return int(tx.scalar("SELECT CONNECTION_ID()"))


@pytest.fixture
def make_db():
    made = []

    def make(url: str, **kwargs) -> Database:
        db = Database(url, **kwargs)
        made.append(db)
        return db

    yield make
    for db in made:
        db.close()


@pytest.fixture
def counter_table(mysql_url, make_db):
    """A table `counter` with rows (1, 0) and (2, 0)."""
    db = make_db(mysql_url)
    with db.transaction("test.setup") as tx:
        tx.execute("CREATE TABLE counter (id INT PRIMARY KEY, n INT NOT NULL) ENGINE=InnoDB")
        tx.execute("INSERT INTO counter (id, n) VALUES (1, 0), (2, 0)")
    return mysql_url


def hold(db: Database, started: gevent.event.Event, release: gevent.event.Event, seen: list) -> None:
    """A transaction that keeps its connection until `release` is set."""
    def body(tx):
        seen.append(connection_id(tx))
        started.set()
        release.wait(10)
    db.run("test.hold", body)


# --- MySQL pool -----------------------------------------------------------------------
def test_many_greenlets_small_pool_no_connection_shared(mysql_url, make_db):
    db = make_db(mysql_url, pool_size=3, pool_timeout=20)
    active: set[int] = set()
    peak = []
    done = []

    def work(i: int) -> None:
        def body(tx):
            cid = connection_id(tx)
            assert cid not in active, "connection shared by two transactions"
            active.add(cid)
            peak.append(len(active))
            tx.scalar("SELECT SLEEP(0.01)")
            assert connection_id(tx) == cid
            active.discard(cid)
            return cid
        done.append(db.run("test.work", body))

    jobs = [gevent.spawn(work, i) for i in range(50)]
    gevent.joinall(jobs, timeout=30, raise_error=True)
    assert len(done) == 50
    assert len(set(done)) <= 3 and max(peak) == 3
    assert db.pool_in_use == 0 and db.pool_size == 3


def test_an_exhausted_pool_times_out_with_a_clear_error(mysql_url, make_db):
    db = make_db(mysql_url, pool_size=2, pool_timeout=0.2)
    release = gevent.event.Event()
    started = [gevent.event.Event(), gevent.event.Event()]
    seen: list[int] = []
    holders = [gevent.spawn(hold, db, ev, release, seen) for ev in started]
    for ev in started:
        assert ev.wait(5)
    assert db.pool_in_use == 2
    with pytest.raises(ServiceUnavailable) as info:
        db.run("test.starved", lambda tx: tx.scalar("SELECT 1"))
    assert info.value.msg == "Database busy, try again" and info.value.code == 1
    release.set()
    gevent.joinall(holders, timeout=5, raise_error=True)
    assert db.pool_in_use == 0
    assert db.run("test.after", lambda tx: tx.scalar("SELECT 1")) == 1


def test_a_timeout_or_an_exception_gives_the_connection_back(counter_table, make_db):
    db = make_db(counter_table, pool_size=2, pool_timeout=2)

    # gevent.Timeout while the server is busy with the statement.
    with pytest.raises(gevent.Timeout):
        with gevent.Timeout(0.1):
            db.run("test.slow", lambda tx: tx.scalar("SELECT SLEEP(3)"))
    assert db.pool_in_use == 0

    # gevent.Timeout between statements, after a write: not committed.
    def write_then_wait(tx):
        tx.execute("UPDATE counter SET n = 99 WHERE id = 1")
        gevent.sleep(3)
    with pytest.raises(gevent.Timeout):
        with gevent.Timeout(0.1):
            db.run("test.stuck", write_then_wait)
    assert db.pool_in_use == 0

    # An ordinary exception: rolled back, and the connection is kept.
    kept = []

    def write_then_fail(tx):
        kept.append(connection_id(tx))
        tx.execute("UPDATE counter SET n = 42 WHERE id = 1")
        raise ValueError("boom")
    with pytest.raises(ValueError):
        db.run("test.fail", write_then_fail)
    assert db.pool_in_use == 0
    assert db.run("test.same", connection_id) == kept[0]
    assert db.run("test.read", lambda tx: tx.scalar("SELECT n FROM counter WHERE id = 1")) == 0

    # The pool still has both of its connections to give, at once.
    release = gevent.event.Event()
    started = [gevent.event.Event(), gevent.event.Event()]
    seen: list[int] = []
    holders = [gevent.spawn(hold, db, ev, release, seen) for ev in started]
    for ev in started:
        assert ev.wait(5)
    assert len(set(seen)) == 2
    release.set()
    gevent.joinall(holders, timeout=5, raise_error=True)
    assert db.pool_in_use == 0


def test_connections_killed_by_the_server_are_replaced(mysql_url, make_db):
    db = make_db(mysql_url, pool_size=3, pool_timeout=5)
    release = gevent.event.Event()
    started = [gevent.event.Event() for _ in range(3)]
    seen: list[int] = []
    holders = [gevent.spawn(hold, db, ev, release, seen) for ev in started]
    for ev in started:
        assert ev.wait(5)
    release.set()
    gevent.joinall(holders, timeout=5, raise_error=True)
    assert len(set(seen)) == 3  # three idle connections in the pool now

    kill(mysql_url, seen)
    for _ in range(5):
        assert db.run("test.after_kill", connection_id) not in seen
    jobs = [gevent.spawn(db.run, "test.concurrent", connection_id) for _ in range(6)]
    gevent.joinall(jobs, timeout=10, raise_error=True)
    assert not {job.value for job in jobs} & set(seen)
    assert db.pool_in_use == 0


def test_a_connection_lost_mid_transaction_is_service_unavailable(counter_table, make_db):
    db = make_db(counter_table, pool_size=2)

    def lose_it(tx):
        tx.execute("UPDATE counter SET n = n + 1 WHERE id = 1")
        kill(counter_table, [connection_id(tx)])
        tx.execute("UPDATE counter SET n = n + 1 WHERE id = 2")

    with pytest.raises(ServiceUnavailable) as info:
        db.run("test.lost", lose_it)
    assert info.value.msg == "Database unavailable"
    assert isinstance(info.value.__cause__, pymysql.err.MySQLError)
    assert db.pool_in_use == 0
    # Nothing of it was committed, and it was not run a second time.
    rows = db.run("test.read", lambda tx: tx.all("SELECT id, n FROM counter ORDER BY id"))
    assert [r["n"] for r in rows] == [0, 0]


def test_an_unreachable_server_is_service_unavailable(make_db):
    db = make_db("mysql://root@127.0.0.1:1/imboy", pool_size=2, connect_timeout=2)
    for _ in range(3):
        with pytest.raises(ServiceUnavailable) as info:
            db.run("test.down", lambda tx: tx.scalar("SELECT 1"))
        assert info.value.msg == "Database unavailable"
    assert db.pool_in_use == 0


def test_a_deadlock_victim_is_run_again(counter_table, make_db):
    db = make_db(counter_table, pool_size=4)
    first_done = {1: gevent.event.Event(), 2: gevent.event.Event()}

    def crosswise(first: int, second: int):
        def body(tx):
            tx.execute("UPDATE counter SET n = n + 1 WHERE id = %s", (first,))
            first_done[first].set()
            first_done[second].wait(5)
            tx.execute("UPDATE counter SET n = n + 1 WHERE id = %s", (second,))
        db.run("test.crosswise", body)

    jobs = [gevent.spawn(crosswise, 1, 2), gevent.spawn(crosswise, 2, 1)]
    gevent.joinall(jobs, timeout=20, raise_error=True)
    rows = db.run("test.read", lambda tx: tx.all("SELECT id, n FROM counter ORDER BY id"))
    assert [r["n"] for r in rows] == [2, 2]
    assert db.pool_in_use == 0


# --- both backends ---------------------------------------------------------------------
def test_executemany_sends_one_multi_row_insert(counter_table, make_db):
    """A batch of rows is one statement on the server, not one per row."""
    db = make_db(counter_table)

    def body(tx):
        before = int(tx.one("SHOW SESSION STATUS LIKE 'Com_insert'")["Value"])
        tx.executemany("INSERT INTO counter (id, n) VALUES (%s, %s)", [(i, i) for i in range(10, 60)])
        return int(tx.one("SHOW SESSION STATUS LIKE 'Com_insert'")["Value"]) - before

    assert db.run("test.many", body) == 1
    assert db.run("test.count", lambda tx: tx.scalar("SELECT COUNT(*) FROM counter")) == 52


def test_executemany_refuses_what_would_be_one_statement_per_row(database_url, make_db):
    """A constant among the VALUES makes PyMySQL fall back to a statement per row: refused."""
    db = make_db(database_url)
    with pytest.raises(ValueError, match="only %s placeholders"):
        db.run("test.many", lambda tx: tx.executemany("INSERT INTO t (a, b) VALUES (%s, 0)", [(1,), (2,)]))


def test_a_nested_transaction_is_refused_at_once(database_url, make_db):
    db = make_db(database_url, pool_size=2, pool_timeout=5)

    def outer(tx):
        return db.run("test.inner", lambda inner: inner.scalar("SELECT 1"))

    with pytest.raises(RuntimeError, match="inside another transaction"):
        db.run("test.outer", outer)
    assert db.pool_in_use == 0
    assert db.run("test.after", lambda tx: tx.scalar("SELECT 1")) == 1


def test_sqlite_transactions_of_many_greenlets_run_one_at_a_time(tmp_path, make_db):
    db = make_db(f"sqlite:///{tmp_path}/db.sqlite3", pool_timeout=20)
    with db.transaction("test.setup") as tx:
        tx.execute("CREATE TABLE counter (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)")
        tx.execute("INSERT INTO counter (id, n) VALUES (1, 0)")
    inside = []
    peak = []

    def increment(tx):
        inside.append(1)
        peak.append(len(inside))
        n = tx.scalar("SELECT n FROM counter WHERE id = 1")
        gevent.sleep(0.001)  # let every other greenlet try to get in
        tx.execute("UPDATE counter SET n = %s WHERE id = 1", (n + 1,))
        inside.pop()

    jobs = [gevent.spawn(db.run, "test.increment", increment) for _ in range(40)]
    gevent.joinall(jobs, timeout=30, raise_error=True)
    assert db.run("test.read", lambda tx: tx.scalar("SELECT n FROM counter WHERE id = 1")) == 40
    assert max(peak) == 1
    assert db.pool_in_use == 0

    # A Timeout inside one of them: rolled back, the next one works.
    def stuck(tx):
        tx.execute("UPDATE counter SET n = 0 WHERE id = 1")
        gevent.sleep(3)
    with pytest.raises(gevent.Timeout):
        with gevent.Timeout(0.05):
            db.run("test.stuck", stuck)
    assert db.run("test.read", lambda tx: tx.scalar("SELECT n FROM counter WHERE id = 1")) == 40


def test_sqlite_waiting_for_another_process_lock_leaves_the_hub_free(tmp_path, make_db):
    """BEGIN IMMEDIATE waits for a lock another process holds (an operator's CLI command);
    every other greenlet keeps running meanwhile, and the transaction goes through once the
    lock is free.  One interrupted while it waits leaves nothing behind."""
    path = tmp_path / "db.sqlite3"
    db = make_db(f"sqlite:///{path}", pool_timeout=20, query_timeout=10)
    with db.transaction("test.setup") as tx:
        tx.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
    operator = sqlite3.connect(path, isolation_level=None)
    operator.execute("BEGIN IMMEDIATE")
    # Interrupted while waiting: a time-out, not a stuck connection.
    with pytest.raises(gevent.Timeout):
        with gevent.Timeout(0.05):
            db.run("test.gave_up", lambda tx: tx.execute("INSERT INTO notes (body) VALUES (%s)", ("gave up",)))
    assert db.pool_in_use == 0
    writer = gevent.spawn(db.run, "test.write",
                          lambda tx: tx.execute("INSERT INTO notes (body) VALUES (%s)", ("waited",)))
    ticks = []
    ticker = gevent.spawn(lambda: [ticks.append(gevent.sleep(0.01)) for _ in range(20)])
    ticker.join(timeout=5)
    # The other greenlet ran to its end while the writer still waits for the lock.
    assert len(ticks) == 20
    assert not writer.ready()
    operator.execute("COMMIT")
    operator.close()
    writer.get(timeout=10)
    assert db.run("test.after", lambda tx: tx.execute("INSERT INTO notes (body) VALUES (%s)", ("after",))) == 1
    bodies = db.run("test.read", lambda tx: [r["body"] for r in tx.all("SELECT body FROM notes ORDER BY id")])
    assert bodies == ["waited", "after"]
    assert db.pool_in_use == 0


def test_transactions_back_to_back_do_not_starve_a_waiting_greenlet(database_url, make_db):
    """A commit lane running batch after batch on the only connection: another greenlet
    asking for it gets it next, not a 'Database busy' after the pool time-out."""
    db = make_db(database_url, pool_size=1, pool_timeout=2)
    running = [True]
    batches = []

    def lane():
        while running[0]:
            db.run("test.batch", lambda tx: (tx.scalar("SELECT 1"), gevent.sleep(0.005)))
            batches.append(1)

    worker = gevent.spawn(lane)
    try:
        gevent.sleep(0.05)
        assert batches, "the lane is running"
        assert db.run("test.other", lambda tx: tx.scalar("SELECT 2")) == 2
        assert db.run("test.other", lambda tx: tx.scalar("SELECT 3")) == 3
    finally:
        running[0] = False
        worker.join(timeout=5)
    assert worker.successful()
    assert db.pool_in_use == 0


def test_insert_returning_is_used_where_the_server_has_it():

    assert _mariadb_returning("5.5.5-10.11.19-MariaDB-0+deb12u1")  # MariaDB to an old client
    assert _mariadb_returning("11.4.2-MariaDB-log") and _mariadb_returning("10.5.0-MariaDB")
    assert not _mariadb_returning("5.5.5-10.4.32-MariaDB") and not _mariadb_returning("8.0.36")
    assert not _mariadb_returning("8.4.0-commercial") and not _mariadb_returning("")
