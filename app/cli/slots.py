"""`flask slots ...` and `flask explain ...`: the availability engine from the command line."""

from __future__ import annotations

import datetime as dt
import json

import click
from flask import current_app
from flask.cli import with_appcontext

from app.cli.common import fail
from app.extensions import db


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
        with tenant_session(db.engine, tenant) as (session, _ref):
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
        with tenant_session(db.engine, tenant) as (session, _ref):
            body = explain_start(session, service, staff, start_at, instant, location)
    except NoTenant as exc:
        fail(str(exc))
    except ApiError as exc:
        fail(exc.message)
    click.echo(json.dumps(body, indent=1))


commands = [slots_command, explain_command]
