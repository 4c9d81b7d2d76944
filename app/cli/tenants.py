"""`flask tenants ...`: create, migrate, import, export, suspend and delete client businesses."""

from __future__ import annotations

import json
import sys

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.cli.common import fail
from app.extensions import db
from app.models.public import Tenant
from tenants import provisioning as prov

tenants_cli = AppGroup("tenants", help="Create, migrate, import, export and delete client businesses.")


def _engine():
    return db.engine


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
        tenant = prov.create_tenant(_engine(), agency_slug, prov.TenantSpec(slug, name, timezone, currency, locale))
    except prov.ProvisioningError as exc:
        fail(str(exc))
    click.echo(f"created tenant {slug} (schema {tenant.schema})")


@tenants_cli.command("list")
def tenant_list():
    """List client businesses: slug, agency, status, schema revision."""
    with Session(_engine()) as session:
        for t in session.scalars(select(Tenant).order_by(Tenant.slug)):
            click.echo(f"{t.slug}\t{t.agency.slug}\t{t.status}\t{t.schema_version or '-'}\t{t.name}")


@tenants_cli.command("migrate")
@click.argument("slug", required=False)
@click.option("--all", "all_", is_flag=True, help="Public schema and every tenant schema.")
@click.option("--jobs", type=click.IntRange(1, 32), default=1, show_default=True,
              help="Tenant schemas migrated at once (one process and one connection each).")
def tenant_migrate(slug, all_, jobs):
    """Bring the public schema and tenant schemas to the newest revision (idempotent, resumable)."""
    engine = _engine()
    if slug and all_:
        fail("give a SLUG or --all, not both")
    try:
        if slug:
            prov.migrate_public(engine)
            rev = prov.migrate_tenant(engine, slug)
            click.echo(f"{slug}: {rev}")
        else:
            failed = _migrate_all(engine, jobs)
            if failed:
                for result in failed:
                    click.echo(f"error: {result.slug}: {result.error}", err=True)
                fail(f"{len(failed)} tenant schema(s) failed to migrate (the others are at the newest revision); "
                     "fix them and run again: migrated schemas are skipped")
        from app.security import sync_all_roles

        sync_all_roles(current_app)
    except prov.ProvisioningError as exc:
        fail(str(exc))


def _migrate_all(engine, jobs: int) -> list:
    """migrate_all with a progress bar on a terminal (one line per tenant otherwise); the failures."""
    prov.migrate_public(engine)  # first: on a fresh database the tenant table is made here
    behind = len(prov.tenants_behind(engine))
    if behind == 0:
        click.echo("public schema at the newest revision; 0 tenant schema(s) to migrate")
        return []
    if sys.stderr.isatty():
        with click.progressbar(length=behind, label=f"migrating {behind} tenant schema(s)", file=sys.stderr) as bar:
            results = prov.migrate_all(engine, progress=lambda r: bar.update(1), jobs=jobs)
    else:
        results = prov.migrate_all(engine, jobs=jobs, progress=lambda r: click.echo(
            f"{r.slug}: {'FAILED' if r.error else 'migrated'} in {r.seconds:.2f}s", err=True))
    failed = [r for r in results if r.error]
    click.echo(f"public schema and {len(results) - len(failed)} tenant schema(s) migrated, {len(failed)} failed")
    return failed


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


@tenants_cli.command("archive")
@click.argument("slug")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, writable=True),
              help="Zip file to write (setup.json, data/<table>.jsonl, manifest.json).")
@click.option("--drop", is_flag=True, help="Offboard: drop the business and its schema once the archive is written.")
@click.option("--confirm", is_flag=True, help="Required with --drop.")
def tenant_archive(slug, out_path, drop, confirm):
    """Export a whole business (setup and data, streamed) as a zip archive; with --drop --confirm, then drop it."""
    import os

    from app.gdpr import offboarding

    if drop and not confirm:
        fail("--drop removes the business for good; add --confirm")
    with Session(_engine()) as session:
        if session.scalar(select(Tenant.id).where(Tenant.slug == slug)) is None:
            fail(f"unknown tenant {slug!r}")
    partial = out_path + ".partial"
    try:
        with open(partial, "wb") as out:
            manifest = offboarding.archive_tenant(_engine(), slug, out)
        os.replace(partial, out_path)
    except Exception as exc:  # noqa: BLE001 - one line, nothing left behind
        if os.path.exists(partial):
            os.remove(partial)
        fail(f"archive failed: {exc}")
    rows = sum(manifest["tables"].values())
    click.echo(f"archived {slug}: {len(manifest['tables'])} tables, {rows} rows, {manifest['bytes']} bytes -> {out_path}")
    if drop:
        prov.delete_tenant(_engine(), slug)
        click.echo(f"dropped {slug} (schema {manifest['schema']})")


# --------------------------------------------------------------------------- custom domains

@tenants_cli.group("domain")
def domain_cli():
    """A business's own domain for its links, widget and portal: set, verify, show, remove."""


def _domain_tenant(session: Session, slug: str) -> Tenant:
    tenant = session.scalar(select(Tenant).where(Tenant.slug == slug))
    if tenant is None:
        fail(f"unknown tenant {slug!r}")
    return tenant


def _show_domain(tenant: Tenant) -> None:
    from app.services.custom_domains import status_of

    state = status_of(tenant)
    if state["status"] == "none":
        click.echo(f"{tenant.slug}: no custom domain (links use PUBLIC_URL)")
        return
    click.echo(f"{tenant.slug}: {state['domain']} ({state['status']}"
               + (f" since {state['verified_at']:%Y-%m-%d %H:%M} UTC)" if state["verified_at"] else ")"))
    if state["status"] == "pending":
        click.echo(f"publish this token as the whole content of {state['publish_at']}:")
        click.echo(state["token"])
        click.echo(f"then run: flask tenants domain verify {tenant.slug}")


@domain_cli.command("show")
@click.argument("slug")
def domain_show(slug):
    """Show the domain, its status and the token to publish."""
    with Session(_engine()) as session:
        _show_domain(_domain_tenant(session, slug))


@domain_cli.command("set")
@click.argument("slug")
@click.argument("domain")
def domain_set(slug, domain):
    """Claim DOMAIN for the business (a new token; not used for links until verified)."""
    from app.errors import ApiError
    from app.services import custom_domains
    from app.uow import unit_of_work

    settings = custom_domains.CheckSettings.from_config(current_app.config)
    with Session(_engine(), expire_on_commit=False) as session:
        tenant = _domain_tenant(session, slug)
        try:
            with unit_of_work(session):
                custom_domains.set_domain(session, tenant, domain, settings)
        except ApiError as exc:
            fail(exc.message)
        _show_domain(tenant)


@domain_cli.command("verify")
@click.argument("slug")
def domain_verify(slug):
    """Fetch https://DOMAIN/.well-known/upzento-domain.txt and, if it holds the token, mark the domain verified."""
    import datetime as dt

    from app.errors import ApiError
    from app.services import custom_domains
    from app.uow import discard, unit_of_work

    settings = custom_domains.CheckSettings.from_config(current_app.config)
    with Session(_engine(), expire_on_commit=False) as session:
        tenant = _domain_tenant(session, slug)
        domain, token = tenant.custom_domain, tenant.custom_domain_token
        discard(session)  # nothing held open while the domain answers
        if not domain or not token:
            fail(f"{slug} has no custom domain; run: flask tenants domain set {slug} DOMAIN")
        try:
            custom_domains.check_published(domain, token, settings)
            with unit_of_work(session):
                custom_domains.mark_verified(session, tenant, domain, token, dt.datetime.now(dt.timezone.utc))
        except ApiError as exc:
            fail(exc.message)
        _show_domain(tenant)


@domain_cli.command("remove")
@click.argument("slug")
def domain_remove(slug):
    """Forget the business's domain: links use PUBLIC_URL again."""
    from app.services import custom_domains
    from app.uow import unit_of_work

    with Session(_engine(), expire_on_commit=False) as session:
        tenant = _domain_tenant(session, slug)
        if not tenant.custom_domain:
            fail(f"{slug} has no custom domain")
        with unit_of_work(session):
            custom_domains.remove_domain(session, tenant)
        click.echo(f"{slug}: custom domain removed (links use PUBLIC_URL)")


commands = [tenants_cli]
