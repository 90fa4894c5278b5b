"""Group commit: concurrent writes share one transaction and one durable commit.

Each message is acknowledged only after the commit that stored it, and a
commit costs a disk flush; with many senders at once, flushing once for all
of them is what lets throughput grow with load.  A caller submits a function
of the transaction and blocks until the batch holding it has committed.
Nothing waits to fill a batch: the first write runs at once, and whatever
arrives while a transaction runs goes into the next one.  Batches run one
after another, in arrival order, so one sender's messages (whose connection
waits for each result before reading the next frame) keep their order.
"""
from __future__ import annotations

from collections import deque
from typing import Any, Callable, TypeVar

import gevent
from gevent.event import AsyncResult

from .db import Database, Tx
from .errors import ImboyError

T = TypeVar("T")


class GroupCommit:
    def __init__(self, db: Database, name: str, max_items: int = 256) -> None:
        self.db = db
        self.name = name
        self.max_items = max_items
        self._queue: deque[tuple[Callable[[Tx], Any], AsyncResult]] = deque()
        self._worker: gevent.Greenlet | None = None

    def run(self, fn: Callable[[Tx], T]) -> T:
        """Run `fn(tx)` in the next batch; its ImboyError is raised here alone.

        `fn` must raise an ImboyError only before it writes anything, since
        the other writes of its batch are committed all the same.
        """
        waiter = AsyncResult()
        self._queue.append((fn, waiter))
        if self._worker is None:
            self._worker = gevent.spawn(self._drain)
        return waiter.get()

    def _drain(self) -> None:
        try:
            while self._queue:
                count = min(self.max_items, len(self._queue))
                self._commit([self._queue.popleft() for _ in range(count)])
        except BaseException as exc:  # killed: nobody may wait forever
            while self._queue:
                self._queue.popleft()[1].set_exception(exc)
            raise
        finally:
            self._worker = None

    def _commit(self, items: list[tuple[Callable[[Tx], Any], AsyncResult]]) -> None:
        outcomes: list[tuple[bool, Any]] = []

        def work(tx: Tx) -> None:
            outcomes.clear()  # the database may run this again (deadlock, lost connection)
            for fn, _ in items:
                try:
                    outcomes.append((True, fn(tx)))
                except ImboyError as exc:
                    outcomes.append((False, exc))

        try:
            self.db.run(self.name, work)
        except BaseException as exc:
            # Not committed: no write of this batch is durable, so none is acknowledged.
            for _, waiter in items:
                waiter.set_exception(exc if isinstance(exc, Exception) else RuntimeError("interrupted"))
            if not isinstance(exc, Exception):
                raise
            return
        for (ok, value), (_, waiter) in zip(outcomes, items):
            if ok:
                waiter.set(value)
            else:
                waiter.set_exception(value)
