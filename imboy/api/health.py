"""Probes for orchestrators and the admin endpoints the CLI calls.

`/healthz` and `/readyz` are not part of the envelope API: they answer
plain JSON with a meaningful HTTP status (200 or 503), as load balancers and
Kubernetes expect.  `/healthz` touches nothing (the process is up);
`/readyz` asks the database for `SELECT 1` and, when REDIS_URL is set,
Redis for PING, each within READY_TIMEOUT seconds.

`POST /admin/notice` uses the envelope and needs the access token of a
user named in ADMIN_UIDS (hashids): a CLI process holds no sockets, so
`flask send-system` asks the running server to push the notice.
"""
from __future__ import annotations

import hmac
import logging
from functools import wraps
from typing import Any, Callable

import gevent
import redis
from flask import Blueprint, Response, abort, current_app, g, request

from .. import ids
from ..errors import ImboyError, Refused
from ..jsonutil import dumps
from ..repositories import ops as ops_repo
from ..services import admin
from .envelope import auth_required, core, ok, params

bp = Blueprint("health", __name__)
log = logging.getLogger("imboy.health")

#: Seconds each dependency has to answer a readiness probe.
READY_TIMEOUT = 2.0
_REDIS_CLIENT = "imboy.health.redis"


def _plain(body: dict[str, Any], status: int) -> Response:
    return Response(dumps(body), status=status, content_type="application/json; charset=utf-8",
                    headers={"Cache-Control": "no-store"})


@bp.get("/healthz")
def healthz() -> Response:
    return _plain({"status": "ok"}, 200)


def _check_database() -> str:
    try:
        with gevent.Timeout(READY_TIMEOUT):
            core().db.run("health.ping", ops_repo.ping)
        return "ok"
    except gevent.Timeout:
        return "timeout"
    except ImboyError as exc:
        return exc.msg
    except Exception as exc:  # the probe reports, it never raises
        return type(exc).__name__


def _redis_client(url: str) -> redis.Redis:
    """One client per app and URL, with short time-outs, kept between probes."""
    cached = current_app.extensions.get(_REDIS_CLIENT)
    if cached is None or cached[0] != url:
        client = redis.Redis.from_url(url, socket_timeout=READY_TIMEOUT,
                                      socket_connect_timeout=READY_TIMEOUT, retry_on_timeout=False)
        cached = current_app.extensions[_REDIS_CLIENT] = (url, client)
    return cached[1]


def _check_redis(url: str) -> str:
    try:
        with gevent.Timeout(READY_TIMEOUT * 2):
            return "ok" if _redis_client(url).ping() else "no answer"
    except gevent.Timeout:
        return "timeout"
    except Exception as exc:
        return type(exc).__name__


@bp.get("/readyz")
def readyz() -> Response:
    checks = {"database": _check_database()}
    redis_url = core().config.get("REDIS_URL")
    if redis_url:
        checks["redis"] = _check_redis(redis_url)
    failed = [name for name, state in checks.items() if state != "ok"]
    if failed:
        log.warning("not ready: %s", ", ".join(f"{n}: {checks[n]}" for n in failed))
        return _plain({"status": "unavailable", "failed": failed, "checks": checks}, 503)
    return _plain({"status": "ok", "checks": checks}, 200)


def admin_required(view: Callable) -> Callable:
    """An access token whose user is named in ADMIN_UIDS; the uid is in `g.uid`."""

    @auth_required
    @wraps(view)
    def wrapper(*args, **kwargs):
        if not admin.is_admin(core().config, g.uid):
            raise Refused("Only administrators may send notices", code=1)
        return view(*args, **kwargs)

    return wrapper


@bp.post("/admin/notice")
@admin_required
def admin_notice() -> Response:
    """An S2C `notice` to `uid`, or to everyone online without one."""
    p = params()
    uid = p.hashid("uid", required=False) or None
    text = p.str("text", max_len=admin.MAX_NOTICE, strip=False)
    result = admin.send_notice(core().registry, text, uid)
    log.info("notice from admin %s to %s: %d connection(s)", ids.encode(g.uid),
             ids.encode(uid) if uid else "everyone online", result["connections"])
    return ok(result)


@bp.get("/metrics")
def metrics() -> Response:
    """Prometheus text format; only with `Authorization: Bearer <IMBOY_METRICS_TOKEN>`.

    With no token configured the endpoint does not exist (404): metrics
    reveal traffic and are never public by default.
    """
    token = core().config.get("METRICS_TOKEN")
    if not token:
        abort(404)
    given = request.headers.get("authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        return Response("unauthorized\n", status=401, content_type="text/plain; charset=utf-8",
                        headers={"WWW-Authenticate": "Bearer"})
    body, content_type = core().metrics.render()
    return Response(body, status=200, content_type=content_type, headers={"Cache-Control": "no-store"})
