"""`flask analytics TENANT --from --to [--interval]`: the analytics API's figures as JSON."""

from __future__ import annotations

import datetime as dt
import json

import click
from flask.cli import with_appcontext

from app.cli.common import fail
from app.extensions import db


@click.command("analytics")
@with_appcontext
@click.argument("tenant")
@click.option("--from", "date_from", required=True, help="First local date (YYYY-MM-DD).")
@click.option("--to", "date_to", required=True, help="Last local date, included.")
@click.option("--interval", default="day", show_default=True, type=click.Choice(["day", "week", "month"]))
@click.option("--metric", "metrics", multiple=True, help="One figure (repeatable); default: all of the API's.")
@click.option("--location")
@click.option("--staff")
@click.option("--service")
def analytics_command(tenant, date_from, date_to, interval, metrics, location, staff, service):
    """Print a business's figures as the analytics API answers them, one key per figure."""
    from app.errors import ApiError
    from app.services import analytics
    from app.tenancy import NoTenant, tenant_session

    now = dt.datetime.now(dt.timezone.utc)
    args = {"from": date_from, "to": date_to, "interval": interval, "location": location, "staff": staff, "service": service}
    for name in metrics:
        if name not in analytics.FIGURES:
            fail(f"unknown figure {name!r}; one of {', '.join(analytics.FIGURES)}")
    try:
        r = analytics.parse_range(args, now.date())
        with tenant_session(db.engine, tenant) as (session, ref):
            body = {name: analytics.figure(session, ref, name, r, now) for name in (metrics or analytics.METRICS)}
    except NoTenant as exc:
        fail(str(exc))
    except ApiError as exc:
        fail(f"{exc.field}: {exc.message}" if exc.field else exc.message)
    click.echo(json.dumps(body, indent=1))


commands = [analytics_command]
