"""`flask agencies ...`: the top tenant level."""

from __future__ import annotations

import click
from flask.cli import AppGroup
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.cli.common import fail
from app.extensions import db
from app.models.public import Agency, Tenant
from app.uow import unit_of_work
from tenants import provisioning as prov

agencies_cli = AppGroup("agencies", help="Manage agencies (the top tenant level).")


@agencies_cli.command("create")
@click.argument("slug")
@click.option("--name", required=True)
def agency_create(slug, name):
    """Create an agency."""
    try:
        with Session(db.engine) as session, unit_of_work(session):
            prov.create_agency(session, slug, name)
    except prov.ProvisioningError as exc:
        fail(str(exc))
    click.echo(f"created agency {slug}")


@agencies_cli.command("list")
def agency_list():
    """List agencies with their number of client businesses."""
    with Session(db.engine) as session:
        rows = session.execute(
            select(Agency.slug, Agency.name, func.count(Tenant.id))
            .outerjoin(Tenant, Tenant.agency_id == Agency.id)
            .group_by(Agency.id)
            .order_by(Agency.slug)
        )
        for slug, name, n in rows:
            click.echo(f"{slug}\t{name}\t{n} tenant(s)")


commands = [agencies_cli]
