"""Group commit: concurrent writes share one transaction and one durable commit.

Each message is acknowledged only after the commit that stored it, and a
commit costs a disk flush and a round trip per statement; with many senders
at once, one transaction whose few statements each cover the whole batch
(one SELECT ... IN, one multi-row INSERT) is what lets throughput grow with
load.  The batch function gets the transaction and the items and returns one
outcome per item, in order: a value, or an ImboyError for that item alone
(an item refused that way must have written nothing).

Nothing waits to fill a batch: the first item runs at once, and whatever
arrives while a transaction runs goes into the next one.  Batches run one
after another, in arrival order, and outcomes are delivered in item order,
so one sender's messages keep their order.

With `lanes` > 1, items go to one of several such queues by `lane(item)`
(the message id, say), each committing on its own database connection:
while one lane waits for the database another prepares its batch.  Items
with the same lane key stay in order; the caller must not need more (a
sender's messages all go to the lane of its user id).  Two lanes (or two
nodes) may insert the same unique key at once; the batch that loses is run
once more and then finds the other's row.

`run` blocks the caller until its item is committed; `submit` returns at
once and calls `done(ok, value)` from the committing greenlet (a reading
loop goes on with its next frame meanwhile).  `submit` blocks only while the
queue holds more than `max_queue` items: that is the back pressure.

With `linger`, a lane that is busy (its last batch ended less than
BUSY_WINDOW ago) waits that long before taking the next batch, so that
batches grow under a steady stream of small requests (each handshake of a
reconnect storm, say) instead of costing a transaction each; an idle lane
still runs its first item at once.

Reads that many connections make at once (the handshake's user check, the
pending store at connect) share transactions the same way, and `Batches`
does it for what is not the database (pipelined Redis calls).
"""
from __future__ import annotations

import logging
import time
from collections import deque
from typing import Any, Callable, Generic, Sequence, TypeVar

import gevent
import pymysql
from gevent.event import AsyncResult, Event

from .db import Database, Tx, is_duplicate_key
from .errors import ImboyError

log = logging.getLogger("imboy.db")
# A lane whose last batch ended this recently is busy: with `linger`, its next batch waits.
BUSY_WINDOW = 0.05
#: The wait of batches on a connection's way in (handshakes), where 10 ms is unnoticed.
LINGER = 0.01

I = TypeVar("I")
T = TypeVar("T")
Done = Callable[[bool, Any], None]


class Batches(Generic[I, T]):
    """Items of many greenlets handled together: `handle(items)` returns one outcome per item.

    The batching of `GroupCommit` without the database: a queue and the
    greenlet that drains it batch after batch (for pipelined Redis calls,
    say).  An outcome that is an ImboyError fails that item alone; an
    exception from `handle` fails the whole batch.
    """

    def __init__(self, handle: Callable[[list[I]], Sequence[Any]], max_items: int = 256,
                 max_queue: int = 8192, linger: float = 0.0) -> None:
        self._lane: _Lane[I, T] = _Lane(handle, max_items, max_queue, linger)

    def run(self, item: I) -> T:
        """Handle `item` in the next batch and return its outcome."""
        return _wait(self._lane, item)

    def submit(self, item: I, done: Done) -> None:
        self._lane.submit(item, done)


class GroupCommit(Generic[I, T]):
    def __init__(self, db: Database, name: str, batch: Callable[[Tx, Sequence[I]], list[Any]],
                 max_items: int = 256, max_queue: int = 8192, lanes: int = 1,
                 lane: Callable[[I], Any] | None = None, linger: float = 0.0) -> None:
        def commit(items: list[I]) -> list[Any]:
            try:
                return db.run(name, batch, items)
            except pymysql.err.IntegrityError as exc:
                if not is_duplicate_key(exc):
                    raise
                # Another lane (or node) committed the same key first: run the
                # batch again, it now sees that row (a resend, or an id in use).
                return db.run(name, batch, items)

        self._lanes = [_Lane(commit, max_items, max_queue, linger) for _ in range(max(1, lanes))]
        self._lane = lane

    def run(self, item: I) -> T:
        """Store `item` in the next batch and return its outcome once committed."""
        return _wait(self, item)

    def submit(self, item: I, done: Done) -> None:
        """Queue `item`; `done(True, value)` or `done(False, exception)` follows its commit."""
        lanes = self._lanes
        lane = lanes[hash(self._lane(item)) % len(lanes)] if len(lanes) > 1 and self._lane else lanes[0]
        lane.submit(item, done)


def _wait(queue: Any, item: Any) -> Any:
    waiter = AsyncResult()
    queue.submit(item, lambda ok, value: waiter.set(value) if ok else waiter.set_exception(value))
    return waiter.get()


class _Lane(Generic[I, T]):
    """One queue of items and the greenlet that handles them, batch after batch."""

    def __init__(self, handle: Callable[[list[I]], Sequence[Any]], max_items: int, max_queue: int,
                 linger: float) -> None:
        self.handle = handle
        self.max_items = max_items
        self.max_queue = max_queue
        self.linger = linger
        self._last = -BUSY_WINDOW  # when the last batch ended
        self._queue: deque[tuple[I, Done]] = deque()
        self._worker: gevent.Greenlet | None = None
        self._room: Event | None = None

    def submit(self, item: I, done: Done) -> None:
        while len(self._queue) >= self.max_queue:
            if self._room is None:
                self._room = Event()
            self._room.wait()
        self._queue.append((item, done))
        if self._worker is None:
            self._worker = gevent.spawn(self._drain)

    def _drain(self) -> None:
        queue = self._queue
        try:
            while queue:
                if (self.linger and len(queue) < self.max_items
                        and time.monotonic() - self._last < BUSY_WINDOW):
                    gevent.sleep(self.linger)
                count = min(self.max_items, len(queue))
                self._handle([queue.popleft() for _ in range(count)])
                self._last = time.monotonic()
                if self._room is not None and len(queue) < self.max_queue:
                    self._room.set()
                    self._room = None
        except BaseException as exc:  # killed: nobody may wait forever
            while queue:
                _finish(queue.popleft()[1], False, exc)
            raise
        finally:
            self._worker = None
            if self._room is not None:
                self._room.set()
                self._room = None

    def _handle(self, entries: list[tuple[I, Done]]) -> None:
        try:
            outcomes = self.handle([item for item, _ in entries])
        except BaseException as exc:
            # Not committed: no write of this batch is durable, so none is acknowledged.
            error = exc if isinstance(exc, Exception) else RuntimeError("interrupted")
            for _, done in entries:
                _finish(done, False, error)
            if not isinstance(exc, Exception):
                raise
            return
        for outcome, (_, done) in zip(outcomes, entries):
            _finish(done, not isinstance(outcome, ImboyError), outcome)


def _finish(done: Done, ok: bool, value: Any) -> None:
    try:
        done(ok, value)
    except Exception:
        log.exception("a group commit callback failed")
