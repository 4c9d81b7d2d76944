"""`flask apikeys ...`: API keys of a business or of an agency (the same services as Settings → API keys)."""

from __future__ import annotations

import datetime as dt

import click
from flask.cli import AppGroup
from sqlalchemy import select

from app.cli.common import fail
from app.extensions import db
from app.models.public import Agency, ApiKey, Tenant
from app.uow import run_unit

apikeys_cli = AppGroup("apikeys", help="API keys of a business (REST API) or of an agency (analytics, read only).")


def _expiry(raw: str | None) -> dt.datetime | None:
    if not raw:
        return None
    try:
        return dt.datetime.combine(dt.date.fromisoformat(raw), dt.time(), dt.timezone.utc)
    except ValueError:
        fail(f"--expires is a date (YYYY-MM-DD), not {raw!r}")


def _owner(slug: str, agency: bool):
    model = Agency if agency else Tenant
    row = db.session.scalar(select(model).where(model.slug == slug))
    if row is None:
        fail(f"no {'agency' if agency else 'business'} {slug!r}")
    return row


def _key(prefix: str) -> ApiKey:
    key = db.session.scalar(select(ApiKey).where(ApiKey.prefix == prefix.removeprefix("upz_").split("_")[0]))
    if key is None:
        fail(f"no API key with prefix {prefix!r}")
    return key


@apikeys_cli.command("create")
@click.argument("owner")
@click.option("--agency", is_flag=True, help="OWNER is an agency: a read-only analytics key for all its businesses.")
@click.option("--name", required=True)
@click.option("--scopes", type=click.Choice(["read", "read write"]), default="read", show_default=True,
              help="Business keys only (agency keys are read only).")
@click.option("--expires", help="YYYY-MM-DD: refused from 00:00 UTC that day.")
@click.option("--location", help="Business keys only: that location's data only.")
@click.option("--plan", help="A rate-limit plan of API_RATE_PLANS (default: API_RATE_PLAN_DEFAULT).")
def create(owner, agency, name, scopes, expires, location, plan):
    """Create a key; prints its id, prefix and secret (shown once)."""
    from app.services.people import PeopleError, create_agency_api_key, create_api_key

    if agency and (location or scopes != "read"):
        fail("an agency key reads analytics only: no --location, --scopes read")
    expires_at = _expiry(expires)
    row = _owner(owner, agency)
    try:
        if agency:
            key, secret = run_unit(lambda: create_agency_api_key(db.session, row, name, expires_at=expires_at,
                                                                 rate_plan=plan), db.session)
        else:
            key, secret = run_unit(lambda: create_api_key(db.session, row, name, scopes=scopes, expires_at=expires_at,
                                                          location_key=location, rate_plan=plan), db.session)
    except PeopleError as exc:
        fail(str(exc))
    click.echo(f"id: {key.id}\nprefix: {key.prefix}\nsecret (shown once): {secret}")


@apikeys_cli.command("list")
@click.argument("owner")
@click.option("--agency", is_flag=True, help="OWNER is an agency.")
def list_keys(owner, agency):
    """Keys of a business (or agency): prefix, name, scope, plan, expiry, last use, requests, revoked."""
    row = _owner(owner, agency)
    column = ApiKey.agency_id if agency else ApiKey.tenant_id
    for k in db.session.scalars(select(ApiKey).where(column == row.id).order_by(ApiKey.id)):
        fields = [k.prefix, k.name, k.scopes, k.location_key or "-", k.rate_plan or "(default)",
                  k.expires_at.isoformat() if k.expires_at else "-",
                  k.last_used_at.isoformat() if k.last_used_at else "-", str(k.request_count),
                  f"revoked {k.revoked_at.isoformat()}" if k.revoked_at else "active"]
        click.echo("\t".join(fields))


@apikeys_cli.command("set-plan")
@click.argument("prefix")
@click.argument("plan")
def set_plan(prefix, plan):
    """Move a key to another rate-limit plan (`default`: the configured default)."""
    from app.services.people import PeopleError, set_api_key_plan

    key = _key(prefix)
    try:
        run_unit(lambda: set_api_key_plan(db.session, key, None if plan == "default" else plan), db.session)
    except PeopleError as exc:
        fail(str(exc))
    click.echo(f"{key.prefix}: plan {plan}")


@apikeys_cli.command("revoke")
@click.argument("prefix")
def revoke(prefix):
    """Revoke a key (refused from its next request on)."""
    from app.services.people import revoke_api_key

    key = _key(prefix)
    run_unit(lambda: revoke_api_key(db.session, key), db.session)
    click.echo(f"{key.prefix}: revoked")


commands = [apikeys_cli]
