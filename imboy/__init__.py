"""imboy: an instant-messaging server speaking the imboy wire protocol."""
from __future__ import annotations

import logging
import os
from typing import Any

from flask import Flask

from .config import load_config


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the application: settings from the environment, `config` on top."""
    settings = load_config()
    if config:
        settings.update(config)
    from . import logs
    logs.configure(settings)

    from .core import Imboy
    from . import api, cli

    app = Flask(__name__, instance_path=os.path.abspath(settings["INSTANCE_PATH"]))
    app.config["MAX_CONTENT_LENGTH"] = settings["MAX_BODY_BYTES"]
    imboy = Imboy(settings)
    if settings.get("MIGRATE_ON_START", True):
        imboy.db.migrate()
    app.extensions["imboy"] = imboy
    logs.install(app)
    api.register(app)
    cli.register(app)
    logging.getLogger("imboy").debug("app created on %s", imboy.db.dialect)
    return app
