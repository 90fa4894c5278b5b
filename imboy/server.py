"""`python wsgi.py`: gevent's WSGI server with the imboy WebSocket handler."""
from __future__ import annotations

import gc
import logging
import signal
from typing import Any

import gevent
from gevent.pywsgi import WSGIServer

from .ws.handler import ImboyWebSocketHandler

log = logging.getLogger("imboy")


def lean_greenlets() -> None:
    """Stop gevent from recording who spawned each greenlet, and from where.

    The record (`spawning_greenlet`, `spawn_tree_locals`, `spawning_stack`:
    a debugging aid for `gevent.util.format_run_info`) costs about 600 bytes
    per greenlet: per connection for as long as it lives, and again for every
    writer or task spawned.  The setting is process-wide and read at each spawn.
    """
    gevent.config.track_greenlet_tree = False


# The cyclic collector's thresholds for a serving process (CPython's default: 700, 10, 10).
GC_THRESHOLDS = (10_000, 50, 100)


def tune_gc() -> None:
    """Make the cyclic garbage collector cheap for a process full of long-lived connections.

    Every connection keeps a dozen tracked objects (greenlet, socket, watchers,
    retry entries), and message traffic allocates container objects by the
    million, so with CPython's defaults a collection ran every 700
    allocations and a full one walked every connection: during a burst of
    group messages to 1,000 members the collector took 2.1 of 11.5 seconds
    (11 full collections of about 110 ms each).  What the process built
    before serving (the app, its modules) is frozen out of collections,
    young objects are collected after 10,000 allocations instead of 700 (most
    have been freed by reference counting by then), and older generations
    far less often: 0.5 s in the same burst, with no full collection.  A
    larger first threshold saves more (50,000: 0.1 s) but each young
    collection then pauses the process for about 25 ms, which showed in the
    one-to-one latency p99 (20 -> 36 ms at 1,060 msgs/s).
    """
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


# Connections accepted per turn of the event loop (gevent's default: 100).
MAX_ACCEPT = 10


def pace_accepts(server: Any) -> Any:
    """Accept a reconnect storm a few connections at a time.

    gevent accepts up to 100 waiting connections per loop turn and starts a
    greenlet for each; in a storm of 20,000 clients every turn then began 100
    handshakes that competed for the same database and Redis round trips, so
    many were refused as busy (503) or passed the client's 10-second time-out
    and were tried again.  With 10 per turn the handshakes already started
    finish first and the rest wait in the kernel's listen queue (backlog
    4,096): all 20,000 were back in 19-21 s instead of 44 s (43,260 retries
    -> 436-1,538; bench/RESULTS.md).  1 and 30 per turn were no better than 100.
    """
    server.max_accept = MAX_ACCEPT
    return server


def make_server(app: Any, host: str, port: int, access_log: bool = False) -> WSGIServer:
    lean_greenlets()
    # A listen backlog far above gevent's 128: reconnect storms arrive at once.
    return pace_accepts(WSGIServer((host, port), app, handler_class=ImboyWebSocketHandler, backlog=4096,
                                   log=logging.getLogger("imboy.access") if access_log else None,
                                   error_log=logging.getLogger("imboy.http")))


def serve(app: Any) -> None:
    """Serve until SIGTERM or SIGINT, then close WebSockets with 1001."""
    imboy = app.extensions["imboy"]
    config = imboy.config
    server = make_server(app, config["HOST"], config["PORT"])

    def stop() -> None:
        log.info("shutting down")
        server.stop_accepting()
        imboy.shutdown()
        server.stop(timeout=5)

    gevent.signal_handler(signal.SIGTERM, stop)
    gevent.signal_handler(signal.SIGINT, stop)
    gevent.signal_handler(signal.SIGHUP, stop)
    log.info("imboy listening on %s:%s (%s)", config["HOST"], config["PORT"], imboy.db.dialect)
    tune_gc()
    server.serve_forever()
