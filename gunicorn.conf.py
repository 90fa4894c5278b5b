"""Production serving: `gunicorn -c gunicorn.conf.py wsgi:app`.

Each worker is a gevent process whose handler is imboy's WebSocket handler,
so HTTP and WebSocket share one port.  Settings come from IMBOY_* variables.
"""
import os
import re

_port = os.environ.get("IMBOY_PORT", "9800")
_host = os.environ.get("IMBOY_HOST", "0.0.0.0")

bind = os.environ.get("IMBOY_BIND", f"{_host}:{_port}")
workers = int(os.environ.get("IMBOY_WORKERS") or os.cpu_count() or 1)
worker_class = "imboy.gunicorn_worker.ImboyWorker"
# gunicorn's default of 1000 would cap WebSocket connections per worker.
worker_connections = int(os.environ.get("IMBOY_WORKER_CONNECTIONS", "100000"))
# Long-lived connections: never recycle a worker for being "slow".
timeout = 120
graceful_timeout = int(os.environ.get("IMBOY_GRACEFUL_TIMEOUT", "30"))
keepalive = 5
# Reconnect storms arrive at once: queue them instead of refusing.
backlog = 4096

# gunicorn 25+ opens a control socket (for `gunicornc`), by default one path per user: name it
# after the bind address so two servers on one host do not take each other's.
try:
    from gunicorn.config import ControlSocket

    control_socket = os.environ.get("IMBOY_CONTROL_SOCKET") or ControlSocket.default.replace(
        "gunicorn.ctl", "gunicorn-%s.ctl" % re.sub(r"[^A-Za-z0-9]+", "-", bind).strip("-"))
except (ImportError, AttributeError):  # an older gunicorn without one
    pass


# Metrics from every worker: prometheus-client's multi-process mode keeps
# each worker's values in files here and /metrics merges them.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    import tempfile

    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="imboy-metrics-")


def child_exit(server, worker):
    """A dead worker's live gauges (connections, pool) stop counting."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def _refusal(n):
    return ("imboy: %d workers (IMBOY_WORKERS) need IMBOY_REDIS_URL: without Redis each worker "
            "would keep its own registry of connections, so messages, presence and kicks between "
            "workers would be lost until a reconnect. Set IMBOY_REDIS_URL or use one worker." % n)


def on_starting(server):
    """Refuse a split-brain registry: several workers need Redis."""
    if server.cfg.workers > 1 and not os.environ.get("IMBOY_REDIS_URL"):
        raise SystemExit(_refusal(server.cfg.workers))


def nworkers_changed(server, new_value, old_value):
    """Nor may SIGTTIN grow a Redis-less server past one worker."""
    if old_value is not None and new_value > 1 and not os.environ.get("IMBOY_REDIS_URL"):
        server.log.error(_refusal(new_value))
        server.num_workers = old_value
