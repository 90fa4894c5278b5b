"""Flask commands for operators: `flask --app wsgi <command>`."""
from __future__ import annotations

import click
from flask import Flask, current_app


def register(app: Flask) -> None:
    app.cli.add_command(init_db)


@click.command("init-db")
def init_db() -> None:
    """Create the schema, or bring an existing imboy database up to date."""
    db = current_app.extensions["imboy"].db
    applied = db.migrate()
    if applied:
        click.echo("applied: " + ", ".join(applied))
    else:
        click.echo("schema up to date")
