"""Logging: one line per event, text or JSON (IMBOY_LOG_FORMAT), no secrets.

- `configure(config)` sets up the `imboy` logger (called by `create_app`
  before the app exists); `install(app)` adds the per-request hooks: a
  request id (an incoming sane `X-Request-ID`, else a new one) on every line
  logged while the request runs, the same id in the response header, and one
  access line per request on `imboy.access`.
- WebSocket code logs through `connection_logger(log, conn_id, uid)`, which
  puts `conn_id` and `uid` (the hashid) on every line.
- `RedactFilter` masks JWT-looking strings and `pwd=`/`password`/`code=`/
  `token=` values as a safety net.  The one deliberate exception is the
  console mail backend (`imboy.mail`, SMTP_HOST unset), which logs a
  verification code so a development checkout can register accounts.
"""
from __future__ import annotations

import logging
import re
import sys
import time
import uuid
from typing import Any, MutableMapping

from flask import Flask, Response, g, has_request_context, request

from . import ids
from .jsonutil import dumps

access_log = logging.getLogger("imboy.access")

#: The fields that identify where a line comes from, in output order.
CONTEXT_FIELDS = ("request_id", "conn_id", "uid")
REQUEST_ID_HEADER = "X-Request-ID"
#: Probes hit these every few seconds: their access lines are DEBUG.
QUIET_PATHS = frozenset({"/healthz", "/readyz"})
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}\Z")

# Attributes every LogRecord has; anything else was passed with `extra=`.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}

# --- redaction -------------------------------------------------------------------
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}")
_SECRET_KEYS = r"pwd|passwd|password|new_password|code|token|refreshtoken|access_token|refresh_token|" \
               r"authorization|secret|secret_key|smtp_password"
# key=value (query strings, form bodies, "k=v" log style)
_KV = re.compile(r"(?i)\b(" + _SECRET_KEYS + r")=([^\s&,;\"']*)")
# "key": "value" / 'key': 'value' / "key": 123456 (JSON, Python reprs)
_QUOTED = re.compile(r"(?i)([\"'](" + _SECRET_KEYS + r")[\"']\s*:\s*)(\"[^\"]*\"|'[^']*'|\d+)")
# password: value (prose)
_PROSE = re.compile(r"(?i)\b(pwd|passwd|password)(\s*:\s*)([^\s&,;\"']+)")
MASK = "***"


def _keep(key: str, value: str) -> bool:
    """Protocol codes (0, 1, 706) and close codes (1009, 4786) are not secrets."""
    return key.lower() == "code" and re.fullmatch(r"\d{1,4}", value.strip("'\"")) is not None


def _mask_kv(m: re.Match) -> str:
    return m.group(0) if _keep(m.group(1), m.group(2)) or not m.group(2) else f"{m.group(1)}={MASK}"


def _mask_quoted(m: re.Match) -> str:
    value = m.group(3)
    if _keep(m.group(2), value):
        return m.group(0)
    # A bare number becomes a quoted mask, so a JSON line stays JSON.
    quote = value[0] if value[0] in "\"'" else '"'
    return f"{m.group(1)}{quote}{MASK}{quote}"


def redact(text: str) -> str:
    """Mask what looks like a token, password or code in one log line."""
    if "eyJ" in text:
        text = _JWT.sub("<token>", text)
    text = _KV.sub(_mask_kv, text)
    text = _QUOTED.sub(_mask_quoted, text)
    return _PROSE.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)


class RedactFilter(logging.Filter):
    """Rewrites the record's message (and traceback) with secrets masked.

    It changes the record itself, so every handler after this one (pytest's
    capture, a handler an operator adds to the root logger) sees it masked.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


class ContextFilter(logging.Filter):
    """Adds the request id of the HTTP request being served, if any."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None and has_request_context():
            record.request_id = g.get("request_id")
        return True


# --- formatters -------------------------------------------------------------------
def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _RECORD_ATTRS and v is not None}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, context, extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {"ts": round(record.created, 3), "level": record.levelname,
                                 "logger": record.name, "msg": record.getMessage()}
        for key, value in _extras(record).items():
            entry[key] = value if isinstance(value, (str, int, float, bool)) else str(value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc"] = record.exc_text
        return redact(dumps(entry))


class TextFormatter(logging.Formatter):
    """`time LEVEL logger: message key=value...` on one line.

    Newlines (in a message or a traceback) are written as a literal `\\n`,
    so one event stays one line and text from a client cannot forge lines.
    """

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(_with_message(record, self))
        extras = _extras(record)
        context = [f"{k}={extras.pop(k)}" for k in CONTEXT_FIELDS if k in extras]
        # Access lines already say method, path, status and duration in prose.
        if record.name != access_log.name:
            context += [f"{k}={v}" for k, v in extras.items()]
        if context:
            line += " " + " ".join(context)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line += " exc=" + record.exc_text
        return redact(line.replace("\r", "\\r").replace("\n", "\\n"))


def _with_message(record: logging.LogRecord, fmt: logging.Formatter) -> logging.LogRecord:
    record.message = record.getMessage()
    record.asctime = fmt.formatTime(record)
    return record


def make_formatter(log_format: str) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else TextFormatter()


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is now (test runners swap it)."""

    @property  # type: ignore[override]
    def stream(self):  # noqa: D401
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def configure(config: dict[str, Any]) -> None:
    """Send `imboy.*` lines to stderr in the configured format, secrets masked."""
    root = logging.getLogger("imboy")
    root.setLevel(str(config.get("LOG_LEVEL", "INFO")).upper())
    log_format = "json" if str(config.get("LOG_FORMAT", "text")).lower() == "json" else "text"
    if getattr(root, "_imboy_configured", None) == log_format:
        return
    handler = _StderrHandler()
    handler.setFormatter(make_formatter(log_format))
    handler.addFilter(ContextFilter())
    handler.addFilter(RedactFilter())
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root._imboy_configured = log_format  # type: ignore[attr-defined]


# --- HTTP requests --------------------------------------------------------------
def _start_request() -> None:
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    g.request_id = incoming if _SANE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
    g.request_started = time.perf_counter()


def _finish_request(response: Response) -> Response:
    request_id = g.get("request_id")
    if request_id is None:  # a before_request hook failed before ours ran
        _start_request()
        request_id = g.request_id
    response.headers[REQUEST_ID_HEADER] = request_id
    duration_ms = round((time.perf_counter() - g.request_started) * 1000, 1)
    level = logging.DEBUG if request.path in QUIET_PATHS else logging.INFO
    access_log.log(level, "%s %s %s %.1fms", request.method, request.path, response.status_code, duration_ms,
                    extra={"method": request.method, "path": request.path,
                           "status": response.status_code, "duration_ms": duration_ms})
    return response


def install(app: Flask) -> None:
    """Request ids and access lines for every blueprint, without touching them."""
    app.before_request_funcs.setdefault(None, []).insert(0, _start_request)
    # after_request functions run last-registered first: at the front of the
    # list, ours runs after every other hook, so the duration covers them.
    app.after_request_funcs.setdefault(None, []).insert(0, _finish_request)


# --- WebSocket connections ------------------------------------------------------
class ConnectionLogger(logging.LoggerAdapter):
    """Puts `conn_id` and `uid` on every line logged about one connection."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        kwargs["extra"] = {**self.extra, **(kwargs.get("extra") or {})}
        return msg, kwargs


def connection_logger(logger: logging.Logger, conn_id: int | str, uid: int) -> ConnectionLogger:
    """A logger for one WebSocket connection; `uid` is logged as its hashid."""
    return ConnectionLogger(logger, {"conn_id": conn_id, "uid": ids.encode(uid) if uid else ""})
