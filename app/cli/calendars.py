"""`flask calendars ...`: connect CalDAV accounts, list connections, sync now, sync health (JSON)."""

from __future__ import annotations

import datetime as dt
import json

import click
from flask import current_app
from flask.cli import AppGroup, with_appcontext
from sqlalchemy import select

from app.cli.common import fail
from app.uow import run_unit

calendars_group = AppGroup("calendars", help="Calendar sync connections of a business.")


def _session(slug: str):
    from app.extensions import db
    from app.tenancy import tenant_session

    return tenant_session(db.engine, slug)


def _cfg():
    from app.services.calendar_sync import SyncConfig

    return SyncConfig.from_config(current_app.config)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _staff_id(session, key: str) -> int:
    from app.models import tenant as m
    from app.services.calendar_sync import CalendarError

    sid = session.scalar(select(m.Staff.id).where(m.Staff.key == key))
    if sid is None:
        raise CalendarError(f"unknown staff {key!r}", "staff")
    return sid


def _location_id(session, key: str) -> int:
    from app.models import tenant as m
    from app.services.calendar_sync import CalendarError

    lid = session.scalar(select(m.Location.id).where(m.Location.key == key))
    if lid is None:
        raise CalendarError(f"unknown location {key!r}", "location")
    return lid


@calendars_group.command("connect-caldav")
@click.argument("tenant")
@click.option("--staff", "staff_key", help="Staff key whose calendar this is.")
@click.option("--location", "location_key", help="Location key (a front-desk calendar of that location).")
@click.option("--business", is_flag=True, help="A calendar receiving every booking of the business.")
@click.option("--url", required=True)
@click.option("--username", required=True)
@click.option("--password", required=True)
@click.option("--busy-calendar", "busy", multiple=True, help="Calendar (name or URL) counted as busy (repeatable).")
@click.option("--target-calendar", "target", help="Calendar (name or URL) that receives our events.")
@with_appcontext
def connect_caldav(tenant, staff_key, location_key, business, url, username, password, busy, target):
    """Connect a CalDAV account (iCloud, Nextcloud, Fastmail, Radicale); prints the connection id."""
    from app.services import calendar_sync as cal
    from app.tenancy import NoTenant

    if sum(bool(x) for x in (staff_key, location_key, business)) != 1:
        fail("give exactly one of --staff, --location, --business")
    try:
        with _session(tenant) as (session, _ref):
            kind = "staff" if staff_key else "location" if location_key else "business"
            conn = cal.connect_caldav(
                session, owner_kind=kind, staff_id=_staff_id(session, staff_key) if staff_key else None,
                location_id=_location_id(session, location_key) if location_key else None, url=url,
                username=username, password=password, busy=list(busy), target=target, actor="cli", cfg=_cfg())
            out = {"id": conn.id, "target_calendar": conn.target_calendar_name,
                   "busy_calendars": [b["name"] for b in conn.busy_calendars]}
    except (NoTenant, cal.CalendarError) as exc:
        fail(str(exc))
    click.echo(json.dumps(out))


def _rows(tenant: str, staff_key: str | None = None) -> list[dict]:
    from app.services import calendar_sync as cal

    with _session(tenant) as (session, _ref):
        staff_id = _staff_id(session, staff_key) if staff_key else None
        return cal.health(session, _now(), staff_id=staff_id)


@calendars_group.command("list")
@click.argument("tenant")
@with_appcontext
def list_connections(tenant):
    """One line per connection: id, provider, owner, account, status, target calendar."""
    from app.services.calendar_sync import CalendarError
    from app.tenancy import NoTenant

    try:
        rows = _rows(tenant)
    except (NoTenant, CalendarError) as exc:
        fail(str(exc))
    for r in rows:
        click.echo(f"{r['id']}\t{r['provider']}\t{r['owner']}\t{r['account'] or ''}\t{r['status']}\t"
                   f"{r['target_calendar'] or ''}")


@calendars_group.command("health")
@click.argument("tenant")
@with_appcontext
def health(tenant):
    """JSON per connection: status, last pull, last push, pending, failed (and errors)."""
    from app.services.calendar_sync import CalendarError
    from app.tenancy import NoTenant

    try:
        rows = _rows(tenant)
    except (NoTenant, CalendarError) as exc:
        fail(str(exc))
    click.echo(json.dumps(rows, indent=2))


@calendars_group.command("sync")
@click.argument("tenant")
@click.option("--staff", "staff_key", help="Only this staff member's connections.")
@click.option("--full", is_flag=True, help="Resync the whole window instead of the changes since the last pull.")
@with_appcontext
def sync(tenant, staff_key, full):
    """One pull and push pass of each active connection; waits for it; exits non-zero if any failed."""
    from app.jobs import calendar_sync as jobs
    from app.models.calendar_sync import STATUS_ACTIVE, CalendarConnection
    from app.services.calendar_sync import CalendarError
    from app.tenancy import NoTenant

    try:
        with _session(tenant) as (session, _ref):
            q = select(CalendarConnection.id).where(CalendarConnection.status == STATUS_ACTIVE)
            if staff_key:
                q = q.where(CalendarConnection.staff_id == _staff_id(session, staff_key))
            ids = list(session.scalars(q.order_by(CalendarConnection.id)))
    except (NoTenant, CalendarError) as exc:
        fail(str(exc))
    if not ids:
        fail("no active calendar connection" + (f" for staff {staff_key!r}" if staff_key else ""))
    failed = []
    for cid in ids:
        result = jobs.sync(tenant, cid, force_full=full)
        click.echo(json.dumps(result))
        if result.get("error") or result.get("status") != STATUS_ACTIVE:
            failed.append(f"connection {cid}: {result.get('error') or result.get('status')}")
    if failed:
        fail("; ".join(failed))


@calendars_group.command("reconnect-caldav")
@click.argument("tenant")
@click.argument("connection_id", type=int)
@click.option("--url", help="New server URL (default: keep).")
@click.option("--username", help="New user name (default: keep).")
@click.option("--password", help="New app password (default: keep).")
@with_appcontext
def reconnect_caldav(tenant, connection_id, url, username, password):
    """Change a CalDAV connection's URL / user / app password in place; checked against the server first."""
    from app.services import calendar_sync as cal
    from app.tenancy import NoTenant

    if not (url or username or password):
        fail("give at least one of --url, --username, --password")
    try:
        with _session(tenant) as (session, _ref):
            conn = cal.reconnect_caldav(session, cal.connection_for(session, connection_id), url=url,
                                        username=username, password=password, cfg=_cfg(), now=_now())
            out = {"id": conn.id, "status": conn.status, "url": conn.url, "account": conn.account,
                   "target_calendar": conn.target_calendar_name,
                   "busy_calendars": [b["name"] for b in conn.busy_calendars]}
    except (NoTenant, cal.CalendarError) as exc:
        fail(str(exc))
    click.echo(json.dumps(out))


@calendars_group.command("disconnect")
@click.argument("tenant")
@click.argument("connection_id", type=int)
@click.option("--remove-events/--keep-events", default=False, show_default=True,
              help="Delete our future events from that calendar first.")
@with_appcontext
def disconnect(tenant, connection_id, remove_events):
    """Disconnect a calendar (its busy blocks go; our events there stay unless --remove-events)."""
    from app.services import calendar_sync as cal
    from app.tenancy import NoTenant

    try:
        with _session(tenant) as (session, _ref):
            conn = cal.connection_for(session, connection_id)
            removed = cal.disconnect(session, conn, remove_future_events=remove_events, cfg=_cfg(), now=_now())
    except (NoTenant, cal.CalendarError) as exc:
        fail(str(exc))
    click.echo(json.dumps({"id": connection_id, "status": "disconnected", "events_removed": removed}))


app_group = AppGroup("app", help="An agency's own Google / Microsoft app for the calendar connections of its businesses.")
calendars_group.add_command(app_group)


def _agency_id(slug: str) -> int:
    from app.extensions import db
    from app.models.public import Agency

    agency_id = db.session.scalar(select(Agency.id).where(Agency.slug == slug))
    if agency_id is None:
        fail(f"unknown agency {slug!r}")
    return agency_id


@app_group.command("set")
@click.argument("agency")
@click.option("--provider", type=click.Choice(["google", "microsoft"]), required=True)
@click.option("--client-id", required=True)
@click.option("--client-secret", envvar="CALENDAR_APP_CLIENT_SECRET",
              help="The app's secret (or CALENDAR_APP_CLIENT_SECRET); may be left out to keep the stored one "
                   "for the same client id.")
@click.option("--ms-tenant", help="Microsoft only: the app's directory (tenant id or domain; default: common).")
@with_appcontext
def app_set(agency, provider, client_id, client_secret, ms_tenant):
    """Store the agency's app; its businesses' new connections sign in with it (the secret is stored encrypted)."""
    from app.extensions import db
    from app.services import calendar_sync as cal

    agency_id = _agency_id(agency)
    try:
        out = run_unit(lambda: cal.set_agency_app(db.session, agency_id, provider, client_id=client_id,
                                                  client_secret=client_secret, ms_tenant=ms_tenant))
    except cal.CalendarError as exc:
        fail(str(exc))
    from app.jobs.calendar_sync import check_agency_apps

    out["needs_reconnect"] = check_agency_apps(agency_id)
    click.echo(json.dumps(out))


@app_group.command("show")
@click.argument("agency")
@with_appcontext
def app_show(agency):
    """Which app each provider uses for the agency's businesses (never the secret)."""
    from app.extensions import db
    from app.services import calendar_sync as cal

    agency_id = _agency_id(agency)
    click.echo(json.dumps([cal.describe_agency_app(db.session, agency_id, p) for p in cal.APP_KINDS], indent=2))


@app_group.command("remove")
@click.argument("agency")
@click.option("--provider", type=click.Choice(["google", "microsoft"]), required=True)
@with_appcontext
def app_remove(agency, provider):
    """Forget the agency's app: new connections use the platform's; those made with the agency's need a reconnect."""
    from app.extensions import db
    from app.services import calendar_sync as cal

    agency_id = _agency_id(agency)
    removed = run_unit(lambda: cal.remove_agency_app(db.session, agency_id, provider))
    if not removed:
        fail(f"agency {agency!r} has no {provider} app of its own")
    from app.jobs.calendar_sync import check_agency_apps

    click.echo(json.dumps({"provider": provider, "source": "platform", "needs_reconnect": check_agency_apps(agency_id)}))


commands = [calendars_group]
