"""Flask blueprints, one per area of the HTTP API (PROTOCOL section 3)."""
from __future__ import annotations

from flask import Flask


def register(app: Flask) -> None:
    from . import conversation, envelope, friend, group, health, home, passport, user, web

    envelope.install(app)
    for module in (home, passport, user, friend, group, conversation, health, web):
        app.register_blueprint(module.bp)
