"""`flask seed`: the demo agency, businesses and log-ins (the development package's seed)."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import with_appcontext


@click.command("seed")
@with_appcontext
def seed_command():
    """Create the demo agency, two client businesses and demo log-ins (idempotent)."""
    from devserver.seed import seed_demo

    for line in seed_demo(current_app):
        click.echo(line)


commands = [seed_command]
