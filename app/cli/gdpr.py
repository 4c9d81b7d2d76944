"""`flask gdpr ...`: find, export and erase a person in a business (the admin's services; every run audited)."""

from __future__ import annotations

import json

import click
from flask.cli import AppGroup

from app.cli.common import fail
from app.errors import ApiError
from app.extensions import db
from app.tenancy import NoTenant, tenant_session

gdpr_cli = AppGroup("gdpr", help="Data-subject requests: find, export and erase a person.")


def _session(tenant: str):
    try:
        return tenant_session(db.engine, tenant)
    except NoTenant:
        fail(f"unknown tenant {tenant!r}")


def _actor() -> str:
    from app.audit_context import current_actor

    return current_actor().describe()


@gdpr_cli.command("find")
@click.argument("tenant")
@click.argument("email_or_phone")
def gdpr_find(tenant, email_or_phone):
    """Customers and staff of TENANT with that email or phone."""
    from app.gdpr import subjects

    try:
        with tenant_session(db.engine, tenant) as (session, ref):
            matches = subjects.find(session, ref, email_or_phone)
    except NoTenant:
        fail(f"unknown tenant {tenant!r}")
    except ApiError as exc:
        fail(exc.message)
    for match in matches:
        click.echo(f"{match.kind}\t{match.id}\t{match.name}\t{match.email or '-'}\t{match.phone or '-'}")
    if not matches:
        click.echo("no match", err=True)


def _subject(session, email):
    from sqlalchemy import func, select

    from app.gdpr import subjects
    from app.models import tenant as m

    customer = session.scalar(select(m.Customer).where(func.lower(m.Customer.email) == email.strip().lower()))
    if customer is not None:
        return customer, None
    staff = session.scalar(select(m.Staff).where(func.lower(m.Staff.email) == email.strip().lower()))
    if staff is not None:
        return None, staff
    raise subjects.NotFound(f"no customer or staff member with email {email!r}", "email")


@gdpr_cli.command("export")
@click.argument("tenant")
@click.argument("email")
@click.option("--format", "fmt", type=click.Choice(["json", "pdf"]), default="json", show_default=True)
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, writable=True))
def gdpr_export(tenant, email, fmt, out_path):
    """Everything TENANT stores about the person with EMAIL, as JSON or PDF."""
    from app.gdpr import subjects

    try:
        with tenant_session(db.engine, tenant) as (session, ref):
            customer, staff = _subject(session, email)
            data = (subjects.export_customer(session, ref, customer) if customer is not None
                    else subjects.export_staff(session, ref, staff))
            content = (json.dumps(data, indent=2, ensure_ascii=False).encode() if fmt == "json"
                       else subjects.export_pdf(data))
            subjects.record_export(session, "cli", _actor(), customer=customer, staff=staff)
    except NoTenant:
        fail(f"unknown tenant {tenant!r}")
    except ApiError as exc:
        fail(exc.message)
    with open(out_path, "wb") as out:
        out.write(content)
    click.echo(f"wrote {out_path} ({len(content)} bytes, {fmt})")


@gdpr_cli.command("erase")
@click.argument("tenant")
@click.argument("email")
@click.option("--confirm", is_flag=True, help="Required: erasure cannot be undone.")
def gdpr_erase(tenant, email, confirm):
    """Anonymise the person with EMAIL in TENANT (statistics kept, personal data removed)."""
    from app.gdpr import subjects

    if not confirm:
        fail("erasure cannot be undone; add --confirm")
    try:
        with tenant_session(db.engine, tenant) as (session, ref):
            customer, staff = _subject(session, email)
            if customer is not None:
                counts = subjects.erase_customer(session, ref, customer, _actor(), channel="cli")
            else:
                counts = subjects.erase_staff(session, staff, _actor(), channel="cli")
    except NoTenant:
        fail(f"unknown tenant {tenant!r}")
    except ApiError as exc:
        fail(exc.message)
    changed = sum(counts.values())
    click.echo(f"erased {'customer' if customer is not None else 'staff member'} ({changed} row changes)")


commands = [gdpr_cli]
