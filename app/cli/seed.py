"""`flask seed`: the demo agency, businesses and log-ins (the development package's seed)."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import with_appcontext


@click.command("seed")
@with_appcontext
def seed_command():
    """Create the demo agency, two client businesses and demo log-ins (idempotent)."""
    from app.cli.common import fail
    from app.settings_check import is_development

    if not is_development(current_app.config):
        fail("the demo seed (published passwords) runs only with UPZENTO_ENV=development")
    from devserver.seed import seed_demo

    for line in seed_demo(current_app):
        click.echo(line)


commands = [seed_command]
