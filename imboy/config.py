"""Every setting, read from IMBOY_* environment variables.

`load_config()` builds a plain dict once; `create_app(config)` takes it (or
overrides from a test) and nothing else reads the environment.  Secrets that
are not configured are generated once and kept under `instance/`, so a fresh
checkout runs with no configuration at all and keeps its tokens valid across
restarts.
"""
from __future__ import annotations

import os
import secrets
from typing import Any, Callable

#: name -> (default, parser).  The README documents each of them.
SETTINGS: dict[str, tuple[Any, Callable[[str], Any]]] = {}


def _setting(name: str, default: Any, parser: Callable[[str], Any] = str) -> None:
    SETTINGS[name] = (default, parser)


def _bool(v: str) -> bool:
    return v.strip().lower() in ("1", "true", "yes", "on")


def _floats(v: str) -> tuple[float, ...]:
    return tuple(float(x) for x in v.split(",") if x.strip())


def _list(v: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in v.split(",") if x.strip())


def _scene_keys(v: str) -> dict[str, str]:
    out = {}
    for item in _list(v):
        scene, _, key = item.partition(":")
        if scene and key:
            out[scene.strip()] = key.strip()
    return out


_setting("DATABASE_URL", "sqlite:///instance/imboy.sqlite3")
_setting("REDIS_URL", None)
_setting("SECRET_KEY", None)
_setting("HOST", "0.0.0.0")
_setting("PORT", 9800, int)
_setting("INSTANCE_PATH", "instance")
_setting("ACCESS_TOKEN_TTL", 7200.0, float)
_setting("REFRESH_TOKEN_TTL", 864000.0, float)
_setting("SMTP_HOST", None)
_setting("SMTP_PORT", 25, int)
_setting("SMTP_USER", None)
_setting("SMTP_PASSWORD", None)
_setting("SMTP_TLS", "none")
_setting("SMTP_TIMEOUT", 10.0, float)
_setting("MAIL_FROM", "imboy@localhost")
_setting("RSA_PRIVATE_KEY", None)
_setting("ADMIN_UIDS", (), _list)
_setting("ASSET_AUTH_KEYS", {}, _scene_keys)
_setting("LOG_LEVEL", "INFO")
_setting("LOG_FORMAT", "text")
_setting("DB_POOL_SIZE", 10, int)
_setting("DB_POOL_TIMEOUT", 5.0, float)
_setting("DB_CONNECT_TIMEOUT", 5.0, float)
_setting("DB_QUERY_TIMEOUT", 30.0, float)
_setting("MAX_BODY_BYTES", 1048576, int)
_setting("DEFAULT_AVATAR", "https://a.imboy.pub/avatar/default.png")
_setting("CODE_TTL", 600.0, float)
_setting("CODE_RESEND_INTERVAL", 60.0, float)
_setting("CODE_MAX_ATTEMPTS", 5, int)
# Messaging (PROTOCOL section 4)
_setting("WS_IDLE_TIMEOUT", 60.0, float)
_setting("ACK_RETRY_SCHEDULE", (2.0, 5.0, 7.0, 11.0), _floats)
_setting("PENDING_LIMIT", 5000, int)
_setting("MAX_FRAME_BYTES", 1048576, int)
_setting("SEND_QUEUE_LIMIT", 1000, int)
_setting("HANDSHAKE_CONCURRENCY", 512, int)
_setting("WORKERS", os.cpu_count() or 1, int)


def load_config(environ: dict[str, str] | None = None) -> dict[str, Any]:
    """Read every IMBOY_* setting, falling back to its default."""
    env = os.environ if environ is None else environ
    config: dict[str, Any] = {}
    for name, (default, parser) in SETTINGS.items():
        raw = env.get("IMBOY_" + name)
        if raw is None or raw == "":
            config[name] = default
            continue
        try:
            config[name] = parser(raw)
        except ValueError as exc:
            raise SystemExit(f"IMBOY_{name}: cannot parse {raw!r}: {exc}") from None
    return config


def instance_file(config: dict[str, Any], name: str) -> str:
    path = os.path.abspath(config["INSTANCE_PATH"])
    os.makedirs(path, exist_ok=True)
    return os.path.join(path, name)


def secret_key(config: dict[str, Any]) -> str:
    """The configured token secret, or one generated once into instance/."""
    if config.get("SECRET_KEY"):
        return config["SECRET_KEY"]
    path = instance_file(config, "secret_key")
    try:
        with open(path, encoding="ascii") as fh:
            key = fh.read().strip()
        if key:
            return key
    except FileNotFoundError:
        pass
    key = secrets.token_urlsafe(48)
    # O_EXCL: two workers starting at once agree on one key.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        with open(path, encoding="ascii") as fh:
            return fh.read().strip()
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(key)
    return key
