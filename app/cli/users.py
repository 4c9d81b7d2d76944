"""`flask users ...`: log-ins and their roles."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from app.cli.common import fail
from app.extensions import db
from app.uow import run_unit

users_cli = AppGroup("users", help="Manage log-ins and their roles.")


@users_cli.command("create")
@click.argument("username")
@click.option("--email", required=True)
@click.option("--password", required=True)
@click.option("--role", required=True, type=click.Choice(["Platform Admin", "Agency Owner", "Client Admin", "Staff", "Auditor"]))
@click.option("--agency", "agency_slug")
@click.option("--tenant", "tenant_slug")
@click.option("--first-name", default="")
@click.option("--last-name", default="")
def user_create(username, email, password, role, agency_slug, tenant_slug, first_name, last_name):
    """Create a log-in with a role and its scope (agency or tenant)."""
    from app.services.people import PeopleError, create_user_with_role

    try:
        run_unit(lambda: create_user_with_role(
            db.session, username=username, email=email, password=password, role=role,
            agency_slug=agency_slug, tenant_slug=tenant_slug, first_name=first_name, last_name=last_name,
        ), db.session)
    except PeopleError as exc:
        fail(str(exc))
    click.echo(f"created user {username} ({role})")


commands = [users_cli]
