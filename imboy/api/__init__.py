"""Flask blueprints, one per area of the HTTP API (PROTOCOL section 3)."""
from __future__ import annotations

from flask import Flask


def register(app: Flask) -> None:
    from . import envelope, passport, user

    envelope.install(app)
    app.register_blueprint(passport.bp)
    app.register_blueprint(user.bp)
