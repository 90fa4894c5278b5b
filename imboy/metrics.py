"""Prometheus metrics: one `Metrics` per app, multi-process aware.

Under gunicorn, `gunicorn.conf.py` sets PROMETHEUS_MULTIPROC_DIR before any
worker starts, prometheus-client writes each worker's values to files there,
and `/metrics` merges them (gauges of live workers summed).  Without it the
values live in this app's own registry.  The pending-store depth is read
from the database when scraped (cached briefly), since it is shared state
rather than something a process counts.
"""
from __future__ import annotations

import os
import time
from typing import Any, Callable

from gevent import monkey
from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram,
                               generate_latest)
from prometheus_client import values as _values
from prometheus_client.core import GaugeMetricFamily

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir")


def _native_locks() -> None:
    """Give metric values the interpreter's own lock instead of gevent's.

    prometheus-client guards every value with `threading.Lock`, which gevent's
    monkey-patching turns into a greenlet-aware lock written in Python: with a
    counter or two per frame, taking it was about a tenth of the server's CPU
    in a group-message burst.  An update never yields to another greenlet
    while holding the lock, so the native lock (a few dozen nanoseconds) is
    enough, and it still guards against real threads (the thread pool).
    Values made from here on use it; the multi-process value class is made
    again so that its shared lock is native too.
    """
    native = monkey.get_original("_thread", "allocate_lock")
    if _values.Lock is native:
        return
    _values.Lock = native
    _values.ValueClass = _values.get_value_class()


class _PendingCollector:
    """`imboy_pending_messages`: depth of the pending store, read at scrape time."""

    def __init__(self, read: Callable[[], dict[str, int]], ttl: float = 10.0) -> None:
        self._read = read
        self._ttl = ttl
        self._cache: tuple[float, dict[str, int]] = (0.0, {})

    def collect(self):
        stamp, values = self._cache
        if time.monotonic() - stamp > self._ttl:
            try:
                values = self._read()
            except Exception:
                values = {}
            self._cache = (time.monotonic(), values)
        family = GaugeMetricFamily("imboy_pending_messages", "Messages waiting for a client ack",
                                   labels=["kind"])
        for kind, value in sorted(values.items()):
            family.add_metric([kind], value)
        yield family


class Metrics:
    def __init__(self) -> None:
        self.multiprocess = multiprocess_dir() is not None
        _native_locks()
        self.registry = CollectorRegistry()
        r = self.registry
        live = {"multiprocess_mode": "livesum"}
        self.connections = Gauge("imboy_ws_connections", "Open WebSocket connections", ["device"],
                                 registry=r, **live)
        self.handshakes = Counter("imboy_ws_handshakes", "WebSocket handshakes by outcome", ["outcome"],
                                  registry=r)
        self.frames_in = Counter("imboy_ws_frames_in", "Frames received, by type", ["type"], registry=r)
        self.frames_out = Counter("imboy_ws_frames_out", "Frames sent, by type", ["type"], registry=r)
        self.acks = Counter("imboy_acks", "Acknowledgements, by kind", ["kind"], registry=r)
        self.retries = Counter("imboy_retries", "Messages pushed again for want of an ack", registry=r)
        self.delivery_latency = Histogram("imboy_delivery_latency_seconds",
                                          "Server receipt to the recipient's ack", ["kind"],
                                          buckets=LATENCY_BUCKETS, registry=r)
        self.pool_in_use = Gauge("imboy_db_pool_in_use", "Database connections checked out",
                                 registry=r, **live)
        self.pool_wait = Histogram("imboy_db_pool_wait_seconds", "Time waiting for a database connection",
                                   buckets=LATENCY_BUCKETS, registry=r)
        self.pubsub_lag = Histogram("imboy_redis_pubsub_lag_seconds",
                                    "Publish to receipt of cross-node messages",
                                    buckets=LATENCY_BUCKETS, registry=r)
        self.errors = Counter("imboy_errors", "Refusals sent to clients, by protocol code and channel",
                              ["code", "channel"], registry=r)
        self._pending: _PendingCollector | None = None

    def watch_pending(self, read: Callable[[], dict[str, int]]) -> None:
        self._pending = _PendingCollector(read)
        if not self.multiprocess:
            self.registry.register(self._pending)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        if not self.multiprocess:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        from prometheus_client import multiprocess

        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged)
        if self._pending is not None:
            merged.register(self._pending)
        return generate_latest(merged), CONTENT_TYPE_LATEST

