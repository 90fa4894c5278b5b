"""Every setting, read from IMBOY_* environment variables.

`load_config()` builds a plain dict once; `create_app(config)` takes it (or
overrides from a test) and nothing else reads the environment.  Secrets that
are not configured are generated once and kept under `instance/`, so a fresh
checkout runs with no configuration at all and keeps its tokens valid across
restarts.
"""
from __future__ import annotations

import math
import os
import secrets
import tempfile
from typing import Any, Callable

#: name -> (default, parser).  The README documents each of them.
SETTINGS: dict[str, tuple[Any, Callable[[str], Any]]] = {}


def _setting(name: str, default: Any, parser: Callable[[str], Any] = str) -> None:
    SETTINGS[name] = (default, parser)


# Parsers: each takes the raw text and returns the value or raises ValueError
# with a message an operator can act on; load_config adds the variable name.

def _bool(v: str) -> bool:
    text = v.strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected 1/0, true/false, yes/no or on/off")


def _int(v: str, minimum: int | None = None, maximum: int | None = None) -> int:
    try:
        value = int(v.strip())
    except ValueError:
        raise ValueError("expected a whole number") from None
    if minimum is not None and value < minimum:
        raise ValueError(f"must be at least {minimum}")
    if maximum is not None and value > maximum:
        raise ValueError(f"must be at most {maximum}")
    return value


def _positive_int(v: str) -> int:
    return _int(v, minimum=1)


def _port(v: str) -> int:
    return _int(v, minimum=0, maximum=65535)


def _positive_float(v: str) -> float:
    try:
        value = float(v.strip())
    except ValueError:
        raise ValueError("expected a number") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError("must be a positive number")
    return value


def _floats(v: str) -> tuple[float, ...]:
    values = tuple(_positive_float(x) for x in v.split(",") if x.strip())
    if not values:
        raise ValueError("expected a comma-separated list of seconds")
    return values


def _list(v: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in v.split(",") if x.strip())


def _scene_keys(v: str) -> dict[str, str]:
    out = {}
    for item in _list(v):
        scene, _, key = item.partition(":")
        if not scene.strip() or not key.strip():
            raise ValueError(f"expected scene:key pairs separated by commas, got {item!r}")
        out[scene.strip()] = key.strip()
    return out


#: Per-action limits on the passport endpoints ("count/seconds"), by IP
#: address and by account; IMBOY_RATE_LIMITS overrides any of them, e.g.
#: "login_ip=60/300,getcode_account=0" (0 switches one off).
DEFAULT_RATE_LIMITS = {
    "login_ip": "30/300", "login_account": "10/300",
    "getcode_ip": "20/3600", "getcode_account": "5/3600",
    "signup_ip": "20/3600",
    "findpassword_ip": "20/3600", "findpassword_account": "10/3600",
}


def _rate_limits(v: str) -> dict[str, str]:
    out = {}
    for item in _list(v):
        name, sep, rule = item.partition("=")
        count, _, window = rule.partition("/")
        if not sep or name.strip() not in DEFAULT_RATE_LIMITS:
            raise ValueError(f"unknown rate limit {name.strip()!r}")
        _int(count, minimum=0)
        if window:
            _positive_float(window)
        out[name.strip()] = rule.strip()
    return out


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(v: str) -> str:
        value = v.strip().lower()
        if value not in allowed:
            raise ValueError("expected one of " + ", ".join(allowed))
        return value
    return parse


def _log_level(v: str) -> str:
    return _choice("debug", "info", "warning", "error", "critical")(v).upper()


def _database_url(v: str) -> str:
    url = v.strip()
    scheme = url.partition(":")[0].lower()
    if scheme == "sqlite" and url.startswith("sqlite:///") and len(url) > len("sqlite:///"):
        return url
    if scheme in ("mysql", "mysql+pymysql", "mariadb") and url[len(scheme):].startswith("://"):
        return url
    raise ValueError("expected sqlite:///<path> or mysql://user:password@host:port/database")


_setting("DATABASE_URL", "sqlite:///instance/imboy.sqlite3", _database_url)
_setting("REDIS_URL", None)
_setting("SECRET_KEY", None)
_setting("HOST", "0.0.0.0")
_setting("PORT", 9800, _port)
_setting("INSTANCE_PATH", "instance")
_setting("ACCESS_TOKEN_TTL", 7200.0, _positive_float)
_setting("REFRESH_TOKEN_TTL", 864000.0, _positive_float)
_setting("SMTP_HOST", None)
_setting("SMTP_PORT", 25, _port)
_setting("SMTP_USER", None)
_setting("SMTP_PASSWORD", None)
_setting("SMTP_TLS", "none", _choice("none", "starttls", "ssl"))
_setting("SMTP_TIMEOUT", 10.0, _positive_float)
_setting("MAIL_FROM", "imboy@localhost")
_setting("RSA_PRIVATE_KEY", None)
_setting("ADMIN_UIDS", (), _list)
_setting("RATE_LIMITS", {}, _rate_limits)
_setting("METRICS_TOKEN", None)
_setting("ASSET_AUTH_KEYS", {}, _scene_keys)
_setting("LOG_LEVEL", "INFO", _log_level)
_setting("LOG_FORMAT", "text", _choice("text", "json"))
_setting("DB_POOL_SIZE", 10, _positive_int)
_setting("DB_POOL_TIMEOUT", 5.0, _positive_float)
_setting("DB_CONNECT_TIMEOUT", 5.0, _positive_float)
_setting("DB_QUERY_TIMEOUT", 30.0, _positive_float)
_setting("MAX_BODY_BYTES", 1048576, _positive_int)
# Apply pending migrations when the app starts (turn off to leave it to `init-db`).
_setting("MIGRATE_ON_START", True, _bool)
_setting("DEFAULT_AVATAR", "https://a.imboy.pub/avatar/default.png")
_setting("CODE_TTL", 600.0, _positive_float)
_setting("CODE_RESEND_INTERVAL", 60.0, _positive_float)
_setting("CODE_MAX_ATTEMPTS", 5, _positive_int)
# Messaging (PROTOCOL section 4)
_setting("WS_IDLE_TIMEOUT", 60.0, _positive_float)
_setting("ACK_RETRY_SCHEDULE", (2.0, 5.0, 7.0, 11.0), _floats)
_setting("PENDING_LIMIT", 5000, _positive_int)
_setting("MAX_FRAME_BYTES", 1048576, _positive_int)
_setting("SEND_QUEUE_LIMIT", 1000, _positive_int)
_setting("HANDSHAKE_CONCURRENCY", 512, _positive_int)
# Bytes queued for one connection before it is closed with 1008 (one frame alone always fits).
_setting("SEND_QUEUE_BYTES", 8388608, _positive_int)
# Frames a connection may send: WS_RATE a second on average, bursts of WS_BURST (heartbeats exempt).
_setting("WS_RATE", 50.0, _positive_float)
_setting("WS_BURST", 200, _positive_int)
# TEST ONLY (Autobahn conformance runs): /ws echoes text and binary messages instead of
# speaking the protocol.  Never set it in production.
_setting("WS_ECHO", False, _bool)
_setting("PRESENCE_TTL", 15.0, _positive_float)
_setting("WORKERS", os.cpu_count() or 1, _positive_int)


def load_config(environ: dict[str, str] | None = None) -> dict[str, Any]:
    """Read every IMBOY_* setting, falling back to its default.

    A value that does not parse stops the process with a message naming the
    variable: a typo should never start a server on a surprising default.
    """
    env = os.environ if environ is None else environ
    config: dict[str, Any] = {}
    for name, (default, parser) in SETTINGS.items():
        raw = env.get("IMBOY_" + name)
        if raw is None or raw.strip() == "":
            config[name] = default
            continue
        try:
            config[name] = parser(raw)
        except ValueError as exc:
            raise SystemExit(f"IMBOY_{name}: cannot use {raw!r}: {exc}") from None
    return config


def instance_file(config: dict[str, Any], name: str) -> str:
    path = os.path.abspath(config["INSTANCE_PATH"])
    os.makedirs(path, exist_ok=True)
    return os.path.join(path, name)


def _read_key(path: str) -> str:
    with open(path, encoding="ascii") as fh:
        return fh.read().strip()


def secret_key(config: dict[str, Any]) -> str:
    """The configured token secret, or one generated once into instance/.

    Several workers may start at once.  The key is written completely to a
    temporary file and hard-linked into place; the link fails if another
    worker won, and then this one reads the winner's key.  So no process
    ever sees a half-written file, and all of them agree on one key (the
    same scheme as the RSA key in rsakey.py).
    """
    if config.get("SECRET_KEY"):
        return config["SECRET_KEY"]
    path = instance_file(config, "secret_key")
    try:
        key = _read_key(path)
    except FileNotFoundError:
        key = None
    if key is None:
        key = secrets.token_urlsafe(48)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".secret-", suffix=".tmp")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="ascii") as fh:
                fh.write(key)
                fh.flush()
                os.fsync(fh.fileno())
            try:
                os.link(tmp, path)
            except FileExistsError:
                key = _read_key(path)
        finally:
            os.unlink(tmp)
    if not key:
        raise SystemExit(f"{path} is empty: delete it (a new key is generated) or set IMBOY_SECRET_KEY")
    return key
