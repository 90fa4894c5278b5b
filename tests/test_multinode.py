"""Several server processes behave as one (issue 5), through real sockets.

Two `python wsgi.py` processes on two ports stand for two hosts; they share
one MariaDB database and one Redis database.  Destructive scenarios (kill -9,
SIGTERM, Redis restart) start processes of their own; gunicorn runs with two
workers.  Presence TTL is 3 s and the ack retry schedule 0.5 s steps.
"""
from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid

import gevent
import pytest

from .conftest import create_mysql_db, drop_mysql_db
from .multinode_support import (PRESENCE_TTL, REPO, Clients, FreezableProxy, PrivateRedis, Seed,
                                ServerProcess, acked, claim_redis_db, drain, expect_close,
                                expect_msg, expect_presence, observer_online, presence, release_redis_db, send_c2c, server_env,
                                wait_for, wait_registered)


# --- module fixtures: one database, one Redis database, two servers -------------------------
@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("multinode")


@pytest.fixture(scope="module")
def redis_db():
    url, client = claim_redis_db()
    yield url, client
    release_redis_db(client)


@pytest.fixture(scope="module")
def database():
    url = create_mysql_db()
    yield url
    drop_mysql_db(url)


@pytest.fixture(scope="module")
def seed(database, workdir, rsa_key_path):
    """Creates the schema (migrations) before any server starts, then the test data."""
    seed = Seed(database, workdir / "seed", rsa_key_path)
    yield seed
    seed.close()


@pytest.fixture(scope="module")
def spawn(seed, database, redis_db, workdir, rsa_key_path):
    """spawn(name, redis_url=..., gunicorn=False, **env) -> a started ServerProcess."""
    procs: list[ServerProcess] = []

    def make(name: str, redis_url: str | None = None, gunicorn: bool = False, ready: bool = True,
             **extra: str) -> ServerProcess:
        env = server_env(database, redis_url or redis_db[0], workdir / name, rsa_key_path, **extra)
        proc = ServerProcess(name, env, workdir, gunicorn=gunicorn).start()
        procs.append(proc)
        return proc.ready() if ready else proc

    yield make
    for proc in procs:
        proc.stop()


@pytest.fixture(scope="module")
def cluster(spawn):
    """Servers A and B (two hosts), started together."""
    a, b = spawn("A", ready=False), spawn("B", ready=False)
    return a.ready(), b.ready()


@pytest.fixture
def clients():
    c = Clients()
    yield c
    c.close()


@pytest.fixture
def rds(redis_db):
    return redis_db[1]


@pytest.fixture
def rurl(redis_db):
    return redis_db[0]


def mid() -> str:
    return uuid.uuid4().hex[:20]


# --- two servers, users on each ---------------------------------------------------------------
def test_c2c_both_ways(cluster, seed, clients, rds):
    A, B = cluster
    a, b = seed.users(2)
    seed.friends((a, b))
    wa = clients.connect(A, a)
    wb = clients.connect(B, b)
    assert wait_registered(rds, a) != wait_registered(rds, b)

    m1 = mid()
    send_c2c(wa, b, m1, "from A")
    got = expect_msg(wb, "C2C", m1)
    assert (got["from"], got["to"], got["payload"]) == (a.hashid, b.hashid,
                                                        {"msg_type": "text", "text": "from A"})
    acked(wb, m1)

    m2 = mid()
    send_c2c(wb, a, m2, "from B")
    got = expect_msg(wa, "C2C", m2)
    assert (got["from"], got["payload"]["text"]) == (b.hashid, "from B")
    acked(wa, m2)
    # Acked on both sides: no more retry copies (they come every 0.5 s otherwise).
    wb.nothing(1.1)
    wa.nothing(0.1)


def test_connections_register_after_redis_forgot_the_scripts(cluster, seed, clients, rds):
    """Registrations go to Redis in pipelines of the scripts' hashes: a Redis that lost its
    scripts (restarted, SCRIPT FLUSH) gets them again and nobody is left unregistered."""
    A, B = cluster
    a, b, c = seed.users(3)
    seed.friends((a, b), (a, c))
    wa = clients.connect(A, a)
    wait_registered(rds, a)
    rds.script_flush()
    wb, wc = clients.connect(B, b), clients.connect(A, c)
    assert wait_registered(rds, b) != wait_registered(rds, c)
    for ws, user in ((wb, b), (wc, c)):
        m = mid()
        send_c2c(wa, user, m)
        expect_msg(ws, "C2C", m)
        acked(ws, m)
    # Registered by the pipelines themselves, not by a resync after a failure.
    assert "redis unreachable" not in A.log() + B.log()


def test_ack_on_one_node_stops_retries_on_the_other(cluster, seed, clients, rds):
    A, B = cluster
    a, b = seed.users(2)
    seed.friends((a, b))
    wa = clients.connect(A, a)
    b_web = clients.connect(A, b, "web")
    b_ios = clients.connect(B, b, "ios")
    wait_registered(rds, b, "ios")
    m = mid()
    send_c2c(wa, b, m)
    expect_msg(b_web, "C2C", m)
    expect_msg(b_ios, "C2C", m)
    acked(b_ios, m)
    # Server B publishes the cancel and server A stops the retries (at 0.5, 1, 1.5 and 2 s
    # otherwise): a copy already on its way is let through, none comes after.
    drain(b_web, 1.0)
    b_web.nothing(1.2)


def test_c2g_fan_out_to_members_on_both_nodes(cluster, seed, clients, rds):
    A, B = cluster
    owner, b, c, d = seed.users(4)
    gid = seed.group(owner, [b, c, d])
    w_owner = clients.connect(A, owner)
    readers = [clients.connect(B, b), clients.connect(A, c), clients.connect(B, d, "web"),
               clients.connect(A, d, "ios")]
    wait_registered(rds, d, "ios")
    wait_registered(rds, b)
    m = mid()
    w_owner.send_json({"id": m, "type": "C2G", "to": gid, "payload": {"text": "all"},
                       "created_at": 1})
    expect_msg(w_owner, "C2G_SERVER_ACK", m)
    for ws in readers:
        got = expect_msg(ws, "C2G", m)
        assert (got["from"], got["to"], got["payload"]) == (owner.hashid, gid, {"text": "all"})
    for ws in readers:
        ws.send_json({"id": m, "type": "C2G_CLIENT_ACK", "to": gid})
    w_owner.nothing(0.3)


def test_revoke_across_nodes(cluster, seed, clients, rds, rurl):
    A, B = cluster
    a, b = seed.users(2)
    seed.friends((a, b))
    wa = clients.connect(A, a)
    wb = clients.connect(B, b)
    wait_registered(rds, b)
    m = mid()
    send_c2c(wa, b, m)
    expect_msg(wb, "C2C", m)
    wa.send_json({"id": m, "type": "C2C_REVOKE", "to": b.hashid})
    revoke = expect_msg(wb, "C2C_REVOKE", m)
    assert (revoke["from"], revoke["to"]) == (a.hashid, b.hashid)
    wb.send_json({"id": m, "type": "C2C_REVOKE_ACK", "to": a.hashid})
    ack = expect_msg(wa, "C2C_REVOKE_ACK", m)
    assert (ack["from"], ack["to"]) == (b.hashid, a.hashid)

    # Recipient gone from every node: the revoker is answered at once.
    wb.close()
    wait_for(lambda: not observer_online(rurl, [b]), 5, "b offline")
    m2 = mid()
    send_c2c(wa, b, m2)
    wa.send_json({"id": m2, "type": "C2C_REVOKE", "to": b.hashid})
    ack = expect_msg(wa, "C2C_REVOKE_ACK", m2)
    assert ack["from"] == b.hashid


def test_presence_first_and_last_connection_across_nodes(cluster, seed, clients, rds):
    A, B = cluster
    a, f = seed.users(2)
    seed.friends((a, f))
    wa = clients.connect(A, a)
    wait_registered(rds, a)
    f_web = clients.connect(B, f, "web")
    expect_presence(wa, f, "online")
    f_ios = clients.connect(A, f, "ios")
    wait_registered(rds, f, "ios")
    f_web.close()
    wait_for(lambda: "web" not in presence(rds, f), 5, "f/web unregistered")
    wa.nothing(0.6)  # still online on the other node: neither "online" again nor "offline"
    f_ios.close()
    expect_presence(wa, f, "offline")


def test_second_device_on_the_other_node_kicks_the_first(cluster, seed, clients, rds):
    A, B = cluster
    u, w = seed.users(2)
    seed.friends((u, w))
    ww = clients.connect(B, w)
    wait_registered(rds, w)
    old = clients.connect(A, u)
    expect_presence(ww, u, "online")
    new = clients.connect(B, u)
    kick = old.expect(lambda f: isinstance(f, dict) and f.get("type") == "S2C"
                      and f["payload"]["msg_type"] == "786")
    assert kick.get("code") == 786
    assert expect_close(old) == 4786
    m = mid()
    send_c2c(ww, u, m)
    expect_msg(new, "C2C", m)
    # The friend saw no offline/online flicker: u stayed online throughout.
    ww.nothing(0.6)
    assert presence(rds, u)["web"] == wait_registered(rds, w)


def test_online_count_and_friend_list_agree_on_every_node(cluster, seed, clients, rds):
    A, B = cluster
    u, on_b, off, hidden = seed.users(4)
    seed.friends((u, on_b), (u, off), (u, hidden))
    seed.imboy.users.change_state(hidden.id, "hide")

    def count(server):
        return int(server.get("/conversation/online")["msg"])

    # Other tests' sockets are closed; their servers unregister them within moments.
    wait_for(lambda: count(A) == count(B) == 0, 5, "no one online")
    clients.connect(A, u)
    clients.connect(B, on_b, "web")
    clients.connect(A, on_b, "ios")
    clients.connect(A, hidden)
    wait_for(lambda: count(A) == count(B) == 3, 5, "3 online on both servers")
    for server in (A, B):
        body = server.get("/friend/list", u.token)
        assert body["code"] == 0
        status = {f["id"]: f["status"] for f in body["payload"]["friend"]}
        assert status == {on_b.hashid: "online", off.hashid: "offline", hidden.hashid: "offline"}


# --- gunicorn -------------------------------------------------------------------------------
def test_gunicorn_two_workers_route_between_workers_and_restart_with_1001(spawn, seed, clients,
                                                                          rds):
    g = spawn("gunicorn", gunicorn=True, IMBOY_WORKERS="2", IMBOY_PRESENCE_TTL="30",
              IMBOY_GRACEFUL_TIMEOUT="10")
    placed: dict[str, tuple] = {}
    # The kernel picks the worker; on a busy machine the second one may still be
    # starting when the first answers, so keep connecting for a while.
    deadline = time.monotonic() + 20
    for user in seed.users(64):
        ws = clients.connect(g, user)
        node = wait_registered(rds, user)
        if node in placed:
            ws.close()
        placed.setdefault(node, (user, ws))
        if len(placed) == 2 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(placed) == 2, "every connection landed on the same worker"
    (u1, w1), (u2, w2) = placed.values()
    seed.friends((u1, u2))
    m = mid()
    send_c2c(w1, u2, m)
    expect_msg(w2, "C2C", m)
    acked(w2, m)
    m = mid()
    send_c2c(w2, u1, m)
    expect_msg(w1, "C2C", m)
    acked(w1, m)

    # SIGHUP: gunicorn replaces its workers; the old ones say 1001 and forget their presence
    # at once (a TTL of 30 s has not run out), and clients come back to the new ones.
    g.signal(signal.SIGHUP)
    assert expect_close(w1, 10) == 1001
    assert expect_close(w2, 10) == 1001
    wait_for(lambda: not any(rds.exists(f"imboy:alive:{n}") for n in placed), 10,
             "the old workers to clear their presence")
    assert not set(placed) & rds.smembers("imboy:nodes")
    g.ready()  # the new workers booted (the old ones no longer accept)
    w1, w2 = clients.connect(g, u1), clients.connect(g, u2)
    nodes = {wait_registered(rds, u1), wait_registered(rds, u2)}
    assert not nodes & set(placed)
    m = mid()
    send_c2c(w1, u2, m)
    expect_msg(w2, "C2C", m)

    g.signal(signal.SIGTERM)
    assert expect_close(w1, 10) == 1001
    assert expect_close(w2, 10) == 1001
    assert g.wait(20) == 0
    for node in nodes:
        assert not rds.exists(f"imboy:alive:{node}") and node not in rds.smembers("imboy:nodes")
    assert presence(rds, u1) == presence(rds, u2) == {}


def test_gunicorn_refuses_several_workers_without_redis(workdir, database, rsa_key_path):
    env = server_env(database, None, workdir / "refuse", rsa_key_path, IMBOY_WORKERS="2")
    run = subprocess.run([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=30)
    assert run.returncode != 0
    assert "2 workers (IMBOY_WORKERS) need IMBOY_REDIS_URL" in run.stdout + run.stderr


def test_gunicorn_one_worker_without_redis_on_sqlite(workdir, rsa_key_path, seed):
    env = server_env(f"sqlite:///{workdir}/solo.sqlite3", None, workdir / "solo", rsa_key_path,
                     IMBOY_WORKERS="1")
    g = ServerProcess("solo", env, workdir, gunicorn=True).start()
    try:
        g.ready()
        assert g.get("/init")["code"] == 0
    finally:
        g.signal(signal.SIGTERM)
        assert g.wait(20) == 0


# --- failures ---------------------------------------------------------------------------------
def test_kill_9_users_reconnect_elsewhere_and_presence_expires(cluster, spawn, seed, clients, rds,
                                                               rurl):
    A, _ = cluster
    victim = spawn("victim")
    x, z, y, w = seed.users(4)
    seed.friends((y, x), (w, z))
    wy = clients.connect(A, y)
    wx = clients.connect(victim, x)
    clients.connect(victim, z)
    wait_registered(rds, z)
    m1 = mid()
    send_c2c(wy, x, m1)
    expect_msg(wx, "C2C", m1)  # received, never acked

    victim.signal(signal.SIGKILL)
    victim.wait()
    killed = time.monotonic()
    m2 = mid()
    send_c2c(wy, x, m2)  # acked by A while x has no live socket anywhere

    wx2 = clients.connect(A, x)
    assert expect_msg(wx2, "C2C", m1)["from"] == y.hashid
    expect_msg(wx2, "C2C", m2)

    # z never came back: the dead node's entries stop counting within the TTL, for the
    # surviving server as for anyone reading Redis.
    def z_status() -> str:
        return A.get("/friend/list", w.token)["payload"]["friend"][0]["status"]

    wait_for(lambda: z_status() == "offline", PRESENCE_TTL + 2, "z offline on A", interval=0.1)
    assert time.monotonic() - killed <= PRESENCE_TTL + 1  # slack for a loaded test machine
    assert observer_online(rurl, [z, x]) == {x.id}


def test_sigterm_closes_with_1001_and_nothing_acked_is_lost(cluster, spawn, seed, clients, rds):
    _, B = cluster
    victim = spawn("sigterm", IMBOY_PRESENCE_TTL="30")
    s, t = seed.users(2)
    seed.friends((s, t))
    wt = clients.connect(B, t)
    ws = clients.connect(victim, s)
    node = wait_registered(rds, s)
    m1 = mid()
    send_c2c(wt, s, m1)
    expect_msg(ws, "C2C", m1)  # not acked

    victim.signal(signal.SIGTERM)
    assert expect_close(ws) == 1001
    m2 = mid()
    send_c2c(wt, s, m2)
    assert victim.wait() == 0
    assert not rds.exists(f"imboy:alive:{node}")  # cleared at once, not after the TTL

    ws2 = clients.connect(B, s)
    expect_msg(ws2, "C2C", m1)
    expect_msg(ws2, "C2C", m2)


def test_redis_restart_during_traffic(spawn, seed, clients, workdir):
    private = PrivateRedis(workdir)
    private.start()
    E = spawn("E", redis_url=private.url, ready=False)
    F = spawn("F", redis_url=private.url, ready=False)
    try:
        _redis_restart_scenario(E.ready(), F.ready(), seed, clients, private)
    finally:
        E.stop(), F.stop()
        private.kill()


def _redis_restart_scenario(E, F, seed, clients, private):
    rds = private.client()
    p, q, r = seed.users(3)
    seed.friends((p, q), (p, r))
    wq = clients.connect(F, q)
    wr = clients.connect(E, r)
    wp = clients.connect(E, p, "web")
    wp2 = clients.connect(E, p, "ios")
    wait_registered(rds, p, "ios")
    wait_registered(rds, q)

    received: list[str] = []

    def read_q():
        while True:
            frame = wq.recv(30)
            if isinstance(frame, dict) and frame.get("type") == "C2C":
                received.append(frame["id"])
                wq.send_json({"id": frame["id"], "type": "C2C_CLIENT_ACK"})

    acked: list[str] = []
    running = True

    def traffic():
        while running:
            m = "t" + mid()
            send_c2c(wp, q, m)
            acked.append(m)
            gevent.sleep(0.03)

    reader, sender = gevent.spawn(read_q), gevent.spawn(traffic)
    try:
        wait_for(lambda: len(received) >= 3, 5, "live traffic before the restart")
        private.kill()
        # Local delivery continues while Redis is down.
        m = mid()
        send_c2c(wp2, r, m)
        expect_msg(wr, "C2C", m)
        gevent.sleep(1.0)
        during = len(acked)
        private.start()

        def recovered() -> bool:
            nodes = rds.smembers("imboy:nodes")
            subs = dict(rds.pubsub_numsub(*[f"imboy:node:{n}" for n in nodes])) if nodes else {}
            return (len(nodes) == 2 and all(subs.values())
                    and presence(rds, q) and len(presence(rds, p)) == 2)

        wait_for(recovered, 10, "nodes re-registered and resubscribed")
        # Cross-node delivery works again without restarting any server.
        after = len(acked)
        wait_for(lambda: set(acked[after:]) & set(received), 10,
                 "live cross-node delivery after the restart")
    finally:
        running = False
        sender.join(5)
        reader.kill()
    assert sender.successful()
    assert len(acked) > during > 3

    # Whatever was acked while the push could not cross is still pending: reconnect gets it.
    wq.close()
    wq2 = clients.connect(F, q)
    for m in [m for m in acked if m not in received]:
        expect_msg(wq2, "C2C", m)
    log = E.log() + F.log()
    assert "redis subscriber lost" in log and "resubscribed" in log


def test_silently_dead_subscription_is_rebuilt(cluster, spawn, seed, clients, redis_db):
    """The best-known failure of this design: a subscriber connection that hangs without an
    error.  The node's own pings stop arriving, so it resubscribes and delivery resumes."""
    _, B = cluster
    url, rds = redis_db
    proxy = FreezableProxy(("127.0.0.1", 6379))
    frozen = None
    try:
        node_url = f"redis://127.0.0.1:{proxy.port}/{url.rsplit('/', 1)[1]}"
        frozen = spawn("frozen", redis_url=node_url)
        p, q = seed.users(2)
        seed.friends((p, q))
        wp = clients.connect(B, p)
        wq = clients.connect(frozen, q)
        wait_registered(rds, q)
        m = mid()
        send_c2c(wp, q, m)
        expect_msg(wq, "C2C", m)
        wq.send_json({"id": m, "type": "C2C_CLIENT_ACK"})

        proxy.freeze()
        sent = []

        def live_again() -> bool:
            sent.append(mid())
            send_c2c(wp, q, sent[-1])
            try:
                wq.expect(lambda f: isinstance(f, dict) and f.get("id") in sent, 0.3)
                return True
            except AssertionError:
                return False

        wait_for(live_again, 15, "delivery through a rebuilt subscription", interval=0)
        assert len(sent) > 1  # the frozen subscription did drop messages for a while
        assert "redis subscriber lost (no message for" in frozen.log()
        # The ones it dropped are still pending.
        wq.close()
        wq2 = clients.connect(B, q)
        for m in sent:
            expect_msg(wq2, "C2C", m)
    finally:
        proxy.stop()
        if frozen is not None:
            frozen.stop()


def test_gunicorn_metrics_merge_every_worker(spawn, seed, clients, rds):
    """/metrics under gunicorn counts the connections of all workers, whichever one answers."""
    g = spawn("gunicorn-metrics", gunicorn=True, IMBOY_WORKERS="2", IMBOY_METRICS_TOKEN="scrape-me")
    placed: dict[str, object] = {}
    for user in seed.users(16):
        ws = clients.connect(g, user)
        node = wait_registered(rds, user)
        if node in placed:
            ws.close()
        placed.setdefault(node, ws)
        if len(placed) == 2:
            break
    assert len(placed) == 2, "every connection landed on the same worker"

    def open_connections() -> float:
        req = urllib.request.Request(g.url + "/metrics", headers={"authorization": "Bearer scrape-me"})
        with urllib.request.urlopen(req, timeout=5) as resp:
            text = resp.read().decode()
        return sum(float(v) for v in re.findall(r'^imboy_ws_connections\{device="[a-z]+"\} ([0-9.]+)$',
                                                 text, re.M))

    # Several scrapes reach both workers; each must see both connections.
    wait_for(lambda: open_connections() == 2, 10, "both workers' connections in /metrics")
    assert [open_connections() for _ in range(6)] == [2.0] * 6
