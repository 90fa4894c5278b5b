"""The gunicorn worker class named in gunicorn.conf.py.

gevent-websocket's worker with imboy's handler, plus a graceful exit.  On
SIGTERM (gunicorn's stop, a SIGHUP reload, worker restarts) the worker first
stops accepting, so reconnecting clients land on another worker or host,
then closes every WebSocket with 1001 and clears this node's presence in
Redis; gunicorn's own loop then lets in-flight requests and database writes
finish within `graceful_timeout`.  SIGINT/SIGQUIT (quick shutdown) still
send the 1001s and clear presence before exiting.
"""
from __future__ import annotations

import logging
from typing import Any

import gevent
from geventwebsocket.gunicorn.workers import GeventWebSocketWorker

from .server import lean_greenlets, pace_accepts, tune_gc
from .ws.handler import ImboyWebSocketHandler

log = logging.getLogger("imboy")


class ImboyWorker(GeventWebSocketWorker):
    wsgi_handler = ImboyWebSocketHandler

    def run(self) -> None:
        # Keep the servers gunicorn creates, so an exit can stop accepting at once
        # instead of at the next tick of gunicorn's one-second loop.
        self._servers: list[Any] = []
        self._draining = False
        lean_greenlets()
        make = self.server_class

        def server(*args: Any, **kwargs: Any) -> Any:
            # No pywsgi access line: it would print a browser's token from the query string
            # (`python wsgi.py` has none either; imboy logs HTTP requests itself, redacted).
            kwargs["log"] = None
            created = pace_accepts(make(*args, **kwargs))
            self._servers.append(created)
            return created

        self.server_class = server
        tune_gc()
        super().run()

    def _drain(self) -> None:
        if getattr(self, "_draining", True):
            return
        self._draining = True
        for server in self._servers:
            try:
                server.close()
            except Exception:  # already closed by gunicorn's loop
                pass
        imboy = getattr(self.wsgi, "extensions", {}).get("imboy")
        if imboy is not None:
            log.info("worker %s shutting down: closing WebSockets with 1001", self.pid)
            imboy.shutdown()

    def handle_exit(self, sig: int, frame: Any) -> None:
        super().handle_exit(sig, frame)
        # Not in the signal handler itself: closing needs the hub.
        gevent.spawn(self._drain)

    def handle_quit(self, sig: int, frame: Any) -> None:
        def quit_() -> None:
            self._drain()
            gevent.sleep(0.2)  # let the close frames go out
            GeventWebSocketWorker.handle_quit(self, sig, frame)

        self.alive = False
        gevent.spawn(quit_)
