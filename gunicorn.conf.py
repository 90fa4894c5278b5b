"""Production serving: `gunicorn -c gunicorn.conf.py wsgi:app`.

Each worker is a gevent process whose handler is imboy's WebSocket handler,
so HTTP and WebSocket share one port.  Settings come from IMBOY_* variables.
"""
import os

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
