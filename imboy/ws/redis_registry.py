"""The registry for several workers and hosts, shared through Redis.

Same interface as `LocalRegistry` (which it wraps for this node's own
sockets), so the router and services do not change.  In Redis:

- `imboy:presence:<uid>`: hash device -> "<node>|<conn id>", one entry per
  connection of the user anywhere;
- `imboy:alive:<node>`: a key with a time-to-live that the node's heartbeat
  refreshes; entries of a node whose key expired are ignored (and purged),
  so a node that dies stops counting as online within `PRESENCE_TTL`;
- `imboy:nodeusers:<node>`: the users with a connection on that node (counts);
- `imboy:nodes`: every node that registered, live or not yet purged;
- channel `imboy:node:<node>`: pushes, retry cancels and kicks for the node.

A push to a user connected here never goes through pub/sub.  Redis is never
on the path that makes a message durable: when it is down, local delivery
goes on, cross-node pushes are skipped and the pending store delivers them
at the recipient's next connect (or when `on_resubscribed` re-flushes).
Every Redis call has a socket time-out and at most one retry; after a
failure the registry works locally until the heartbeat reaches Redis again,
then re-registers this node's connections (a restarted Redis knows nothing).
The atomic steps are the Lua scripts of `redis_scripts`.
"""
from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from typing import TYPE_CHECKING, Any, Callable, Iterable

import gevent
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from ..batching import LINGER, Batches
from ..jsonutil import dumps, loads
from .redis_scripts import ADD, PURGE, REMOVE, SYNC
from .registry import LocalRegistry

if TYPE_CHECKING:
    from .connection import Connection

log = logging.getLogger("imboy.redis")

P = "imboy:"
REDIS_TIMEOUT = 2.0
SYNC_CHUNK = 500


def _node_of(entry: str) -> str:
    return entry.partition("|")[0]


class RedisRegistry:
    """Presence and routing across nodes; this node's sockets in a LocalRegistry."""

    def __init__(self, url: str, presence_ttl: float = 15.0, node_id: str | None = None,
                 metrics: Any = None) -> None:
        self.local = LocalRegistry()
        self.metrics = metrics
        self.node = node_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.ttl = max(1.0, float(presence_ttl))
        # The alive key lives 2/3 of the TTL and is refreshed 4 times in that span; other nodes
        # re-read liveness at each of their beats: a dead node is ignored within 5/6 of the TTL.
        self.beat = self.ttl / 6
        self._alive_ms = int(self.ttl * 2000 / 3)
        common = dict(socket_connect_timeout=REDIS_TIMEOUT, socket_keepalive=True,
                      decode_responses=True, retry=Retry(NoBackoff(), 1))
        self.redis = redis.Redis.from_url(url, socket_timeout=REDIS_TIMEOUT, **common)
        self._sub_client = redis.Redis.from_url(url, socket_timeout=REDIS_TIMEOUT, **common)
        self._add = self.redis.register_script(ADD)
        self._remove = self.redis.register_script(REMOVE)
        self._sync = self.redis.register_script(SYNC)
        self._purge = self.redis.register_script(PURGE)
        self._live_nodes: set[str] = {self.node}
        self._dead_nodes: set[str] = set()
        self._greenlets: list[gevent.Greenlet] = []
        self._touched: set[int] | None = None  # users changed while a resync runs
        # Pushes and retry cancels for other nodes, gathered and sent in batches
        # by one greenlet each (so one user's pushes keep their order).
        # op -> [(uid, item)]: what waits to be forwarded to the nodes where uid is connected.
        self._outbox: dict[str, list[tuple[int, list[Any]]]] = {"push_batch": [], "cancel_many": []}
        self._forwarding: set[str] = set()
        # Registrations and unregistrations of many connections at once (a reconnect storm)
        # go to Redis in one pipeline, in the order they were made.
        self._changes: Batches[tuple[Any, list[str], list[Any]], Any] = Batches(self._change_many, SYNC_CHUNK, linger=LINGER)
        self._last_heard = 0.0
        #: Set by the composition root: close a connection replaced on another node (786).
        self.on_kick: Callable[["Connection"], None] | None = None
        #: Optional: called with this node's connections after the subscriber came back from
        #: a loss, so pushes published meanwhile can be re-sent from the pending store.
        self.on_resubscribed: Callable[[list["Connection"]], None] | None = None
        self.redis_ok = False
        self._ever_ok = False
        self.listener_restarts = 0

    # lifecycle -------------------------------------------------------------
    def start(self) -> None:
        self._heartbeat_once()
        if not self.redis_ok:
            log.error("redis unreachable at start: serving this node's users only until it "
                      "answers")
        self._greenlets = [gevent.spawn(self._heartbeat_loop), gevent.spawn(self._listen_loop)]

    def stop(self) -> None:
        """Forget this node in Redis at once (graceful shutdown: its users go elsewhere)."""
        gevent.killall(self._greenlets, block=True, timeout=1)
        self._greenlets = []
        try:
            pipe = self.redis.pipeline(transaction=True)
            pipe.delete(P + f"alive:{self.node}")
            self._purge(keys=[P + f"nodeusers:{self.node}"], args=[self.node, P], client=pipe)
            pipe.execute()
        except redis.RedisError as exc:
            log.warning("could not clear this node's presence: %s", exc)

    def _entry(self, conn: "Connection") -> str:
        return f"{self.node}|{conn.id}"

    def _failed(self, what: str, exc: Exception) -> None:
        """Work locally until the heartbeat reaches Redis again (then it resyncs)."""
        if self.redis_ok:
            log.error("redis unreachable (%s: %s): cross-node delivery paused, local delivery "
                      "continues", what, exc)
        self.redis_ok = False

    # heartbeat ---------------------------------------------------------------
    def _heartbeat_once(self) -> None:
        try:
            pipe = self.redis.pipeline(transaction=False)
            pipe.set(P + f"alive:{self.node}", "1", px=self._alive_ms, get=True)
            pipe.sadd(P + "nodes", self.node)
            pipe.smembers(P + "nodes")
            # Proves our subscription end to end (see _listen_loop).
            pipe.publish(P + f"node:{self.node}", '{"op":"ping"}')
            previous, _, nodes, _ = pipe.execute()
            self._refresh_nodes(sorted(nodes))
            if previous is None or not self.redis_ok:
                # Redis restarted, forgot us, or missed what happened while unreachable.
                self._resync()
                if not self.redis_ok:
                    (log.warning if self._ever_ok else log.info)(
                        "redis reachable; node %s registered", self.node)
            self.redis_ok = self._ever_ok = True
        except redis.RedisError as exc:
            self._failed("heartbeat", exc)

    def _refresh_nodes(self, nodes: list[str]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for node in nodes:
            pipe.exists(P + f"alive:{node}")
        flags = pipe.execute()
        live = {n for n, f in zip(nodes, flags) if f}
        dead = {n for n in nodes if n not in live and n != self.node}
        for node in dead:
            purged = self._purge(keys=[P + f"nodeusers:{node}"], args=[node, P])
            if purged >= 0:
                log.info("node %s stopped beating; forgot its %d users", node, purged)
        self._live_nodes = live | {self.node}
        self._dead_nodes = dead

    def _resync(self) -> None:
        """Make Redis hold exactly this node's connections (after a restart or an outage)."""
        self._touched = set()
        try:
            known = {int(u) for u in self.redis.smembers(P + f"nodeusers:{self.node}")}
            todo = sorted(known | set(self.local.online_uids()))
            for _ in range(10):  # later passes: users who (dis)connected meanwhile
                for i in range(0, len(todo), SYNC_CHUNK):
                    self._sync_users(todo[i:i + SYNC_CHUNK])
                todo, self._touched = sorted(self._touched), set()
                if not todo:
                    break
            here = set(self.local.online_uids())
            pipe = self.redis.pipeline(transaction=False)
            gone = known - here
            if gone:
                pipe.srem(P + f"nodeusers:{self.node}", *gone)
            if here:
                pipe.sadd(P + f"nodeusers:{self.node}", *here)
            pipe.execute()
        finally:
            self._touched = None
        if here:
            log.info("registered %d users of node %s in redis", len(here), self.node)

    def _sync_users(self, uids: list[int]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        sent: list[list["Connection"]] = []
        for uid in uids:
            conns = self.local.connections(uid)
            args: list[Any] = [self.node, P + "alive:"]
            for conn in conns:
                args += [conn.device, self._entry(conn)]
            self._sync(keys=[P + f"presence:{uid}"], args=args, client=pipe)
            sent.append(conns)
        for conns, lost in zip(sent, pipe.execute()):
            for conn in conns:
                if (conn.device in lost and self.on_kick is not None
                        and conn in self.local.connections(conn.uid)):
                    # Its device was taken on another node while Redis could not tell us.
                    self.on_kick(conn)

    def _heartbeat_loop(self) -> None:
        while True:
            gevent.sleep(self.beat)
            try:
                self._heartbeat_once()
            except Exception:
                log.exception("redis heartbeat failed")

    # subscriber --------------------------------------------------------------
    def _listen_loop(self) -> None:
        """Supervised subscriber: reconnects and resubscribes after any failure.

        The heartbeat publishes a ping to our own channel; a subscription that
        hears nothing for several beats is presumed dead and rebuilt, so a
        silently broken connection cannot stop cross-node delivery for good.
        """
        channel = P + f"node:{self.node}"
        silence = max(3 * self.beat, 2.0)
        lost = False
        while True:
            pubsub = self._sub_client.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(channel)
                pubsub.get_message(timeout=REDIS_TIMEOUT)  # the subscribe confirmation
                self._last_heard = time.monotonic()
                if lost:
                    lost = False
                    log.warning("redis subscriber resubscribed to %s", channel)
                    self._resubscribed()
                while True:
                    message = pubsub.get_message(timeout=1.0)
                    if message is not None:
                        self._last_heard = time.monotonic()
                        if message.get("type") == "message":
                            self._on_message(message["data"])
                    elif self.redis_ok and time.monotonic() - self._last_heard > silence:
                        raise redis.ConnectionError(f"no message for {silence:.1f}s")
            except (redis.RedisError, OSError) as exc:
                self.listener_restarts += 1
                if not lost:
                    log.error("redis subscriber lost (%s); reconnecting", exc)
                lost = True
            except Exception:
                self.listener_restarts += 1
                lost = True
                log.exception("redis subscriber failed; restarting")
            finally:
                try:
                    pubsub.close()
                except Exception:
                    pass
            gevent.sleep(min(0.5, self.beat))

    def _resubscribed(self) -> None:
        if self.on_resubscribed is None:
            return
        try:
            self.on_resubscribed(self.local.all_connections())
        except Exception:
            log.exception("on_resubscribed failed")

    def _on_message(self, data: str) -> None:
        try:
            msg = loads(data)
            op = msg["op"]
            if op == "ping":
                return
            if self.metrics is not None and "ts" in msg:
                self.metrics.pubsub_lag.observe(max(0.0, time.time() - float(msg["ts"])))
            if op == "push_many":
                self.local.push_many([int(u) for u in msg["uids"]], msg["frame"], msg.get("key"))
                return
            if op == "push_batch":
                for uid, frame, key in msg["items"]:
                    self.local.push(int(uid), frame, key)
                return
            if op == "cancel_many":
                for uid, key in msg["items"]:
                    self.local.cancel_retry(int(uid), key)
                return
            uid = int(msg["uid"])
            if op == "push":
                self.local.push(uid, msg["frame"], msg.get("key"))
            elif op == "cancel":
                self.local.cancel_retry(uid, msg["key"])
            elif op == "kick":
                for conn in self.local.connections(uid):
                    if (conn.device == msg.get("device") and conn.id == msg.get("conn")
                            and self.on_kick is not None):
                        self.on_kick(conn)
        except (ValueError, KeyError, TypeError):
            log.warning("ignored a malformed node message")
        except Exception:
            log.exception("node message failed")

    # membership -----------------------------------------------------------------
    def add(self, conn: "Connection") -> tuple[bool, "Connection | None"]:
        first_here, old_local = self.local.add(conn)
        if self._touched is not None:
            self._touched.add(conn.uid)
        if not self.redis_ok:
            return first_here, old_local
        try:
            old_entry, live = self._changes.run((
                self._add, [P + f"presence:{conn.uid}", P + f"nodeusers:{self.node}"],
                [conn.device, self._entry(conn), P + "alive:", conn.uid, "1" if first_here else "0"]))
        except redis.RedisError as exc:
            self._failed("add", exc)
            return first_here, old_local
        if old_entry and old_local is None:
            node, _, conn_id = old_entry.partition("|")
            if node != self.node:
                self._publish(node, {"op": "kick", "uid": conn.uid, "device": conn.device,
                                     "conn": int(conn_id or 0)})
        # First anywhere: no live connection of the user before this one, here or elsewhere.
        return first_here and int(live) == 0, old_local

    def remove(self, conn: "Connection") -> bool:
        last_here = self.local.remove(conn)
        if self._touched is not None:
            self._touched.add(conn.uid)
        if not self.redis_ok:
            return last_here
        try:
            live = self._changes.run((
                self._remove, [P + f"presence:{conn.uid}", P + f"nodeusers:{self.node}"],
                [conn.device, self._entry(conn), P + "alive:", conn.uid, "1" if last_here else "0"]))
        except redis.RedisError as exc:
            self._failed("remove", exc)
            return last_here
        return last_here and int(live) == 0

    def _change_many(self, changes: list[tuple[Any, list[str], list[Any]]]) -> list[Any]:
        """Run each (script, keys, args) in one pipeline; a script Redis lost (a restart) is
        loaded again and only the calls it failed are run again."""
        results: list[Any] = [None] * len(changes)
        todo = list(range(len(changes)))
        for attempt in range(2):
            pipe = self.redis.pipeline(transaction=False)
            for i in todo:
                script, keys, args = changes[i]
                pipe.evalsha(script.sha, len(keys), *keys, *args)
            missing: list[int] = []
            for i, result in zip(todo, pipe.execute(raise_on_error=False)):
                if isinstance(result, redis.exceptions.NoScriptError) and not attempt:
                    missing.append(i)
                elif isinstance(result, Exception):
                    raise result
                else:
                    results[i] = result
            if not missing:
                break
            for script in {changes[i][0] for i in missing}:
                self.redis.script_load(script.script)
            todo = missing
        return results

    # queries -----------------------------------------------------------------------
    def _is_live(self, node: str) -> bool:
        """Known from the last heartbeat; a node seen for the first time is looked up."""
        if node in self._live_nodes:
            return True
        if node in self._dead_nodes:
            return False
        try:
            if self.redis.exists(P + f"alive:{node}"):
                self._live_nodes.add(node)
                return True
        except redis.RedisError as exc:
            self._failed("exists", exc)
        return False

    def _remote(self, uid: int) -> dict[str, set[str]]:
        """node -> devices of `uid` connected on other live nodes."""
        if not self.redis_ok:
            return {}
        try:
            entries = self.redis.hgetall(P + f"presence:{uid}")
        except redis.RedisError as exc:
            self._failed("lookup", exc)
            return {}
        return self._other_nodes(entries)

    def _other_nodes(self, entries: dict[str, str]) -> dict[str, set[str]]:
        nodes: dict[str, set[str]] = {}
        for device, entry in entries.items():
            node = _node_of(entry)
            if node != self.node and self._is_live(node):
                nodes.setdefault(node, set()).add(device)
        return nodes

    def _remote_many(self, uids: list[int]) -> dict[str, list[int]]:
        """node -> the users of `uids` with a connection on that other live node (pipelined)."""
        if not self.redis_ok or not uids:
            return {}
        found: dict[str, list[int]] = {}
        try:
            for start in range(0, len(uids), SYNC_CHUNK):
                chunk = uids[start:start + SYNC_CHUNK]
                pipe = self.redis.pipeline(transaction=False)
                for uid in chunk:
                    pipe.hgetall(P + f"presence:{uid}")
                for uid, entries in zip(chunk, pipe.execute()):
                    for node in self._other_nodes(entries):
                        found.setdefault(node, []).append(uid)
        except redis.RedisError as exc:
            self._failed("lookup", exc)
        return found

    def connections(self, uid: int) -> list["Connection"]:
        return self.local.connections(uid)

    def all_connections(self) -> list["Connection"]:
        return self.local.all_connections()

    def is_online(self, uid: int) -> bool:
        return self.local.is_online(uid) or bool(self._remote(uid))

    def online(self, uids: Iterable[int]) -> set[int]:
        uids = list(uids)
        found = self.local.online(uids)
        rest = [u for u in uids if u not in found]
        if not rest or not self.redis_ok:
            return found
        try:
            pipe = self.redis.pipeline(transaction=False)
            for uid in rest:
                pipe.hvals(P + f"presence:{uid}")
            for uid, values in zip(rest, pipe.execute()):
                if any(self._is_live(_node_of(v)) for v in values):
                    found.add(uid)
        except redis.RedisError as exc:
            self._failed("online", exc)
        return found

    def online_uids(self) -> list[int]:
        here = set(self.local.online_uids())
        if not self.redis_ok:
            return sorted(here)
        try:
            nodes = [n for n in sorted(self.redis.smembers(P + "nodes")) if self._is_live(n)]
            keys = [P + f"nodeusers:{n}" for n in nodes if n != self.node]
            elsewhere = {int(u) for u in self.redis.sunion(keys)} if keys else set()
            return sorted(here | elsewhere)
        except redis.RedisError as exc:
            self._failed("online_uids", exc)
            return sorted(here)

    def count(self) -> int:
        return len(self.online_uids())

    # delivery ------------------------------------------------------------------------
    def _publish(self, node: str, message: dict[str, Any]) -> int:
        """Returns how many subscribers got it (0: that node is not listening right now)."""
        try:
            message["ts"] = time.time()
            return int(self.redis.publish(P + f"node:{node}", dumps(message)))
        except redis.RedisError as exc:
            # The pending store still holds anything that mattered.
            self._failed("publish", exc)
            return 0

    def push(self, uid: int, frame: str, retry_key: str | None = None) -> int:
        reached = self.local.push(uid, frame, retry_key)
        for node, devices in self._remote(uid).items():
            if self._publish(node, {"op": "push", "uid": uid, "frame": frame, "key": retry_key}):
                reached += len(devices)
        return reached

    def push_many(self, uids: list[int], frame: str, retry_key: str | None = None) -> int:
        """`push` to many users (a group's members): one Redis round trip per 500 users
        and one message per other node, instead of a lookup and a message per user."""
        reached = self.local.push_many(uids, frame, retry_key)
        for node, node_uids in self._remote_many(uids).items():
            self._publish(node, {"op": "push_many", "uids": node_uids, "frame": frame, "key": retry_key})
        return reached

    def cancel_retry(self, uid: int, retry_key: str) -> None:
        """Stop the retries of `retry_key` here at once, and on other nodes a moment later.

        Acks come in bursts and each would otherwise ask Redis where the
        user's other devices are: the cancels for other nodes are gathered
        and sent together (one pipelined lookup, one message per node).  The
        first retry is seconds away, so the short delay changes nothing.
        """
        self.local.cancel_retry(uid, retry_key)
        if not self.redis_ok:
            return
        self._forward_soon("cancel_many", uid, [uid, retry_key])

    def push_soon(self, uid: int, frame: str, retry_key: str | None = None) -> None:
        """`push`, with the copies for other nodes sent a moment later in a batch.

        The commit of a batch of messages pushes them all at once; asking
        Redis for each recipient in turn would hold every later message of
        the batch behind those round trips.  Local connections get the frame
        at once; the other nodes' lookups are pipelined, one message per node.
        """
        self.local.push(uid, frame, retry_key)
        if self.redis_ok:
            self._forward_soon("push_batch", uid, [uid, frame, retry_key])

    def _forward_soon(self, op: str, uid: int, item: list[Any]) -> None:
        """Queue `item` for the other nodes where `uid` is connected; one greenlet per op
        sends the queue in order (so one user's pushes keep their order)."""
        self._outbox[op].append((uid, item))
        if op not in self._forwarding:
            self._forwarding.add(op)
            gevent.spawn(self._forward, op)

    def _forward(self, op: str) -> None:
        try:
            while self._outbox[op]:
                queue = self._outbox[op]
                batch, self._outbox[op] = queue[:SYNC_CHUNK], queue[SYNC_CHUNK:]
                nodes_of: dict[int, list[str]] = {}
                for node, uids in self._remote_many(list({uid for uid, _ in batch})).items():
                    for uid in uids:
                        nodes_of.setdefault(uid, []).append(node)
                items: dict[str, list[list[Any]]] = {}
                for uid, item in batch:
                    for node in nodes_of.get(uid, ()):
                        items.setdefault(node, []).append(item)
                for node, node_items in items.items():
                    self._publish(node, {"op": op, "items": node_items})
        finally:
            self._forwarding.discard(op)
