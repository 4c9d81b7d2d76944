"""`flask audit report ...`: an auditor report of one business and period (PDF or CSV), itself audited."""

from __future__ import annotations

import datetime as dt

import click
from flask import current_app
from flask.cli import AppGroup

from app.cli.common import fail
from app.extensions import db
from app.tenancy import NoTenant, tenant_session

audit_cli = AppGroup("audit", help="Audit log and auditor reports.")
UTC = dt.timezone.utc


def _day(value: str, name: str) -> dt.datetime:
    try:
        return dt.datetime.combine(dt.date.fromisoformat(value), dt.time(), UTC)
    except ValueError:
        fail(f"--{name} must be a date YYYY-MM-DD, not {value!r}")


@audit_cli.command("report")
@click.argument("tenant")
@click.option("--from", "date_from", required=True, help="First day (YYYY-MM-DD, UTC).")
@click.option("--to", "date_to", required=True, help="Last day, included (YYYY-MM-DD, UTC).")
@click.option("--format", "fmt", type=click.Choice(["pdf", "csv"]), default="pdf", show_default=True)
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, writable=True))
def audit_report(tenant, date_from, date_to, fmt, out_path):
    """Processing overview, subject requests, consents, access, audit summary and isolation attestation."""
    from app.gdpr import audit, reports

    since, until = _day(date_from, "from"), _day(date_to, "to") + dt.timedelta(days=1)
    if until <= since:
        fail("--to must not be before --from")
    try:
        with tenant_session(db.engine, tenant) as (session, ref):
            data = reports.build(session, ref, since, until, dict(current_app.config))
            audit.note(session, "report", "generate", None, {"from": date_from, "to": date_to, "format": fmt})
    except NoTenant:
        fail(f"unknown tenant {tenant!r}")
    content = reports.render(data, fmt)
    with open(out_path, "wb") as out:
        out.write(content)
    click.echo(f"wrote {out_path} ({len(content)} bytes, {fmt})")


commands = [audit_cli]
