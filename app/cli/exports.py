"""`flask exports ...`: appointment exports of a business, written now or built in the background.

    flask exports appointments TENANT --out FILE [--format csv|xlsx] [--from --to --status --staff
                                      --service --location --source --q] [--timezone TZ]
    flask exports appointments TENANT --background [...]   # queued as the business's long work
    flask exports list TENANT
    flask exports download TENANT ID --out FILE
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile

import click
from flask.cli import AppGroup

from app.cli.common import fail
from app.errors import ApiError
from app.extensions import db
from app.services import appointment_list as al
from app.services import exports as svc
from app.tenancy import NoTenant, tenant_session

exports_cli = AppGroup("exports", help="Appointment exports (CSV / XLSX), now or in the background.")
UTC = dt.timezone.utc


def _filter(args: dict) -> al.ListFilter:
    try:
        return al.parse_filter(args)
    except ApiError as exc:
        fail(f"--{exc.field}: {exc.message}" if exc.field else exc.message)


@exports_cli.command("appointments")
@click.argument("tenant")
@click.option("--format", "fmt", type=click.Choice(svc.FORMATS), default="csv", show_default=True)
@click.option("--out", "out_path", type=click.Path(dir_okay=False, writable=True),
              help="Write the file here now (not with --background).")
@click.option("--background", is_flag=True, help="Queue it as the business's long work; prints the export id.")
@click.option("--from", "date_from", help="First local day (YYYY-MM-DD).")
@click.option("--to", "date_to", help="Last local day, included (YYYY-MM-DD).")
@click.option("--status", help="One status (confirmed, cancelled, completed, no_show, ...).")
@click.option("--staff", help="Staff key.")
@click.option("--service", help="Service key.")
@click.option("--location", help="Location key.")
@click.option("--source", help="widget, api, admin or import.")
@click.option("--q", help="Part of the customer's name, email or phone.")
@click.option("--timezone", "tz", help="Time zone of the dates and times (default: the business's).")
def appointments(tenant, fmt, out_path, background, date_from, date_to, status, staff, service, location, source, q, tz):
    """The appointments matching the filters, as the admin's appointment list exports them."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from app import fairqueue

    if bool(out_path) == bool(background):
        fail("give either --out FILE (write it now) or --background (queue it)")
    f = _filter({"from": date_from, "to": date_to, "status": status, "staff": staff, "service": service,
                 "location": location, "source": source, "q": q})
    try:
        with tenant_session(db.engine, tenant) as (session, ref):
            zone = tz or ref.timezone
            try:
                ZoneInfo(zone)
            except (ZoneInfoNotFoundError, ValueError):
                fail(f"--timezone: unknown time zone {zone!r}")
            if background:  # committed when the block ends, before its job is queued
                export_id = svc.request(session, fmt, f, zone, None, "cli", dt.datetime.now(UTC)).id
            else:
                _write_now(session, fmt, f, zone, out_path)
                return
    except NoTenant:
        fail(f"unknown tenant {tenant!r}")
    try:
        fairqueue.submit(tenant, svc.BUILD_JOB, export_id, job_timeout=3600, on_lost=svc.LOST_JOB)
    except Exception as exc:  # noqa: BLE001 - Redis down: the row says so
        with tenant_session(db.engine, tenant) as (session, _ref):
            svc.fail(session, export_id, f"the job queue is unreachable ({exc})", dt.datetime.now(UTC))
        fail(f"the job queue is unreachable ({exc}); export {export_id} is marked failed")
    click.echo(json.dumps({"export": export_id, "status": "queued"}))


def _write_now(session, fmt: str, f: al.ListFilter, tz: str, out_path: str) -> None:
    from app.gdpr import audit

    directory = os.path.dirname(os.path.abspath(out_path))
    handle, tmp = tempfile.mkstemp(dir=directory, prefix=".export-")
    os.close(handle)
    try:
        count = svc.write_file(fmt, al.export_rows(session, f, tz), tmp)
        os.replace(tmp, out_path)  # a complete file or none
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    audit.note(session, "export", "generate", None, {"format": fmt, "filters": svc.filters_to_json(f),
                                                     "timezone": tz, "rows": count})
    click.echo(f"wrote {out_path} ({count} appointments, {os.path.getsize(out_path)} bytes, {fmt})")


@exports_cli.command("list")
@click.argument("tenant")
def list_exports(tenant):
    """The business's latest background exports (JSON lines)."""
    try:
        with tenant_session(db.engine, tenant) as (session, _ref):
            for row in svc.listed(session):
                click.echo(json.dumps({
                    "export": row.id, "format": row.format, "status": row.status, "progress": row.progress,
                    "rows": row.rows, "size": row.size, "requested_by": row.requested_by, "error": row.error,
                    "created_at": row.created_at.isoformat(),
                    "expires_at": row.expires_at.isoformat() if row.expires_at else None}))
    except NoTenant:
        fail(f"unknown tenant {tenant!r}")


@exports_cli.command("download")
@click.argument("tenant")
@click.argument("export_id", type=int)
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, writable=True))
def download(tenant, export_id, out_path):
    """Write a finished background export to FILE."""
    try:
        with tenant_session(db.engine, tenant) as (session, _ref):
            try:
                row = svc.ready(session, export_id, None, dt.datetime.now(UTC), any_user=True)
            except ApiError as exc:
                fail(f"export {export_id}: {exc.message}")
            size = 0
            with open(out_path, "wb") as out:
                for piece in svc.chunks(session, export_id):
                    out.write(piece)
                    size += len(piece)
    except NoTenant:
        fail(f"unknown tenant {tenant!r}")
    click.echo(f"wrote {out_path} ({size} bytes, {row.format})")


commands = [exports_cli]
