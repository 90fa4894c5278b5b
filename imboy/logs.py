"""Logging set-up: one line per event, text or JSON (IMBOY_LOG_FORMAT)."""
from __future__ import annotations

import logging
import sys
from typing import Any

from .jsonutil import dumps


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {"ts": round(record.created, 3), "level": record.levelname,
                 "logger": record.name, "msg": record.getMessage()}
        for key in ("request_id", "conn_id", "uid"):
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return dumps(entry)


def configure(config: dict[str, Any]) -> None:
    root = logging.getLogger("imboy")
    root.setLevel(str(config.get("LOG_LEVEL", "INFO")).upper())
    if getattr(root, "_imboy_configured", None) == config.get("LOG_FORMAT"):
        return
    handler = logging.StreamHandler(sys.stderr)
    if config.get("LOG_FORMAT") == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root._imboy_configured = config.get("LOG_FORMAT")  # type: ignore[attr-defined]
