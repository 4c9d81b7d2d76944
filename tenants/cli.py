"""Command line: `flask --app run.py tenants|agencies|users|slots|explain|seed ...`.

Errors are printed as one clear line (or one line per problem, with its JSON
path, for setup files) and the command exits non-zero with nothing written.
"""

from __future__ import annotations

import datetime as dt
import json
import sys

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.extensions import db
from app.models.public import Agency, Tenant
from tenants import provisioning as prov

tenants_cli = AppGroup("tenants", help="Create, migrate, import, export and delete client businesses.")
agencies_cli = AppGroup("agencies", help="Manage agencies (the top tenant level).")
users_cli = AppGroup("users", help="Manage log-ins and their roles.")


def fail(message: str, code: int = 1):
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _engine():
    return db.engine


# --------------------------------------------------------------------------- agencies


@agencies_cli.command("create")
@click.argument("slug")
@click.option("--name", required=True)
def agency_create(slug, name):
    """Create an agency."""
    with Session(_engine()) as session, session.begin():
        try:
            prov.create_agency(session, slug, name)
        except prov.ProvisioningError as exc:
            fail(str(exc))
    click.echo(f"created agency {slug}")


@agencies_cli.command("list")
def agency_list():
    """List agencies with their number of client businesses."""
    with Session(_engine()) as session:
        rows = session.execute(
            select(Agency.slug, Agency.name, func.count(Tenant.id))
            .outerjoin(Tenant, Tenant.agency_id == Agency.id)
            .group_by(Agency.id)
            .order_by(Agency.slug)
        )
        for slug, name, n in rows:
            click.echo(f"{slug}\t{name}\t{n} tenant(s)")


# --------------------------------------------------------------------------- tenants


@tenants_cli.command("create")
@click.argument("slug")
@click.option("--agency", "agency_slug", required=True, help="Slug of the agency that owns it.")
@click.option("--name", required=True)
@click.option("--timezone", default="UTC", show_default=True)
@click.option("--currency", default="EUR", show_default=True)
@click.option("--locale", default="en", show_default=True)
def tenant_create(slug, agency_slug, name, timezone, currency, locale):
    """Create a client business and its schema."""
    try:
        prov.create_tenant(_engine(), agency_slug, prov.TenantSpec(slug, name, timezone, currency, locale))
    except prov.ProvisioningError as exc:
        fail(str(exc))
    click.echo(f"created tenant {slug} (schema tenant_{slug})")


@tenants_cli.command("list")
def tenant_list():
    """List client businesses: slug, agency, status, schema revision."""
    with Session(_engine()) as session:
        for t in session.scalars(select(Tenant).order_by(Tenant.slug)):
            click.echo(f"{t.slug}\t{t.agency.slug}\t{t.status}\t{t.schema_version or '-'}\t{t.name}")


@tenants_cli.command("migrate")
@click.argument("slug", required=False)
@click.option("--all", "all_", is_flag=True, help="Public schema and every tenant schema.")
def tenant_migrate(slug, all_):
    """Bring the public schema and tenant schemas to the newest revision (idempotent)."""
    engine = _engine()
    if slug and all_:
        fail("give a SLUG or --all, not both")
    try:
        if slug:
            prov.migrate_public(engine)
            rev = prov.migrate_tenant(engine, slug)
            click.echo(f"{slug}: {rev}")
        else:
            timings = prov.migrate_all(engine, progress=lambda s, secs: click.echo(f"{s}: migrated in {secs:.2f}s"))
            click.echo(f"public schema and {len(timings)} tenant schema(s) at the newest revision")
        from app.security import sync_all_roles

        sync_all_roles(current_app)
    except prov.ProvisioningError as exc:
        fail(str(exc))


@tenants_cli.command("delete")
@click.argument("slug")
@click.option("--confirm", is_flag=True, help="Required: the schema and all its data are dropped.")
def tenant_delete(slug, confirm):
    """Delete a client business and drop its schema."""
    if not confirm:
        fail("this drops every appointment and customer of the tenant; repeat with --confirm")
    try:
        prov.delete_tenant(_engine(), slug)
    except prov.ProvisioningError as exc:
        fail(str(exc))
    click.echo(f"deleted tenant {slug}")


def _set_status(slug: str, status: str, done: str) -> None:
    try:
        prov.set_status(_engine(), slug, status)
    except prov.ProvisioningError as exc:
        fail(str(exc))
    click.echo(f"{done} {slug}")


@tenants_cli.command("suspend")
@click.argument("slug")
def tenant_suspend(slug):
    """Suspend a tenant: its widget, portal and API stop taking requests."""
    _set_status(slug, Tenant.STATUS_SUSPENDED, "suspended")


@tenants_cli.command("activate")
@click.argument("slug")
def tenant_activate(slug):
    """Re-activate a suspended tenant."""
    _set_status(slug, Tenant.STATUS_ACTIVE, "activated")


@tenants_cli.command("import")
@click.argument("file", type=click.File("r"))
@click.option("--agency", "agency_slug", help="Agency to create the tenant in, if it does not exist yet.")
def tenant_import(file, agency_slug):
    """Import a setup file (tenant-setup.schema.json); all-or-nothing, idempotent by key."""
    from app.services.setup_io import SetupInvalid, import_setup, parse_and_validate

    try:
        doc = parse_and_validate(file.read())
        report = import_setup(_engine(), doc, agency_slug)
    except SetupInvalid as exc:
        for error in exc.errors:
            click.echo(f"error: {error.path}: {error.message}", err=True)
        click.echo(f"{len(exc.errors)} error(s); nothing was imported", err=True)
        sys.exit(1)
    except prov.ProvisioningError as exc:
        fail(str(exc))
    verb = "created" if report.created_tenant else "updated"
    counts = ", ".join(f"{v} {k}" for k, v in report.counts.items())
    click.echo(f"{verb} tenant {report.tenant}: {counts}")


@tenants_cli.command("export")
@click.argument("slug")
def tenant_export(slug):
    """Print a tenant's setup as JSON (the import format)."""
    from app.services.setup_io import export_setup
    from app.tenancy import route_session

    with Session(_engine()) as session:
        tenant = session.scalar(select(Tenant).where(Tenant.slug == slug))
        if tenant is None:
            fail(f"unknown tenant {slug!r}")
        route_session(session, tenant.schema)
        doc = export_setup(session, tenant)
    click.echo(json.dumps(doc, indent=1, ensure_ascii=False))


# --------------------------------------------------------------------------- availability


def _parse_now(value: str | None) -> dt.datetime:
    if not value:
        return dt.datetime.now(dt.timezone.utc)
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        fail(f"--now must be an ISO 8601 instant, got {value!r}")
    if parsed.tzinfo is None:
        fail("--now needs an offset or Z")
    return parsed.astimezone(dt.timezone.utc)


def _tenant_session(slug: str):
    from app.tenancy import NoTenant, tenant_session

    try:
        return tenant_session(_engine(), slug)
    except NoTenant as exc:
        fail(str(exc))


@click.command("slots")
@with_appcontext
@click.argument("tenant")
@click.option("--service", required=True)
@click.option("--location")
@click.option("--staff")
@click.option("--from", "date_from", required=True)
@click.option("--to", "date_to", required=True)
@click.option("--timezone", default="UTC", show_default=True)
@click.option("--now", help="Evaluate as of this instant (ISO 8601).")
def slots_command(tenant, service, location, staff, date_from, date_to, timezone, now):
    """Print bookable slots as JSON, exactly as the availability endpoint answers."""
    from app.errors import ApiError
    from app.services.availability import parse_query, slots_json
    from app.tenancy import NoTenant, tenant_session

    args = {"service": service, "location": location, "staff": staff, "from": date_from, "to": date_to, "timezone": timezone}
    instant = _parse_now(now)
    try:
        query = parse_query(args, current_app.config["AVAILABILITY_MAX_RANGE_DAYS"])
        with tenant_session(_engine(), tenant) as (session, _ref):
            body = slots_json(session, query, instant)
    except NoTenant as exc:
        fail(str(exc))
    except ApiError as exc:
        fail(f"{exc.field or ''}: {exc.message}" if exc.field else exc.message)
    click.echo(json.dumps(body, indent=1))


@click.command("explain")
@with_appcontext
@click.argument("tenant")
@click.option("--service", required=True)
@click.option("--staff", required=True)
@click.option("--start", required=True, help="ISO 8601 instant of the start to explain.")
@click.option("--location")
@click.option("--now", help="Evaluate as of this instant (ISO 8601).")
def explain_command(tenant, service, staff, start, location, now):
    """Say why a start is or is not bookable for a staff member."""
    from app.errors import ApiError
    from app.services.explaining import explain_start
    from app.tenancy import NoTenant, tenant_session

    instant = _parse_now(now)
    start_at = _parse_now(start)
    try:
        with tenant_session(_engine(), tenant) as (session, _ref):
            body = explain_start(session, service, staff, start_at, instant, location)
    except NoTenant as exc:
        fail(str(exc))
    except ApiError as exc:
        fail(exc.message)
    click.echo(json.dumps(body, indent=1))


# --------------------------------------------------------------------------- users


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
        create_user_with_role(
            db.session, username=username, email=email, password=password, role=role,
            agency_slug=agency_slug, tenant_slug=tenant_slug, first_name=first_name, last_name=last_name,
        )
        db.session.commit()
    except PeopleError as exc:
        db.session.rollback()
        fail(str(exc))
    click.echo(f"created user {username} ({role})")


@click.command("seed")
@with_appcontext
def seed_command():
    """Create the demo agency, two client businesses and demo log-ins (idempotent)."""
    from app.seed import seed_demo

    for line in seed_demo(current_app):
        click.echo(line)


def register_cli(app: Flask) -> None:
    from app.widget.cli import widgets_cli

    for command in (tenants_cli, agencies_cli, users_cli, slots_command, explain_command, seed_command, widgets_cli):
        app.cli.add_command(command)
