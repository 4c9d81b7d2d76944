"""`flask webhooks ...`: outgoing webhook endpoints and their delivery log, for operators."""

from __future__ import annotations

import datetime as dt

import click
from flask.cli import AppGroup, with_appcontext

from app.cli.common import fail

webhooks_cli = AppGroup("webhooks", help="Outgoing webhooks of a business (or of its agency).")


def _session(slug: str):
    from app.extensions import db
    from app.tenancy import tenant_session

    return tenant_session(db.engine, slug)


def _allow_private() -> bool:
    from app.jobs.webhooks import allow_private

    return allow_private()


def _errors():
    from app.errors import ApiError
    from app.tenancy import NoTenant

    return (ApiError, NoTenant)


@webhooks_cli.command("add")
@click.argument("tenant")
@click.argument("url")
@click.option("--events", default="", help="Comma-separated event names (default: every event).")
@click.option("--description", default="")
@click.option("--agency", is_flag=True, help="An endpoint of the business's agency: hears all its businesses.")
@with_appcontext
def add(tenant, url, events, description, agency):
    """Add an endpoint; prints its id and its whsec_ secret (shown this once)."""
    from app.services import webhooks as svc

    try:
        with _session(tenant) as (session, ref):
            created = svc.create_endpoint(session, url, events, description=description,
                                          agency_id=ref.agency_id if agency else None,
                                          allow_private=_allow_private())
            uid = created.endpoint.uid
    except _errors() as exc:
        fail(getattr(exc, "message", str(exc)))
    click.echo(f"endpoint {uid}")
    click.echo(f"secret {created.secret}")


@webhooks_cli.command("list")
@click.argument("tenant")
@with_appcontext
def list_endpoints(tenant):
    """The business's endpoints and its agency's."""
    from app.models.public import Tenant
    from app.services import webhooks as svc

    try:
        with _session(tenant) as (session, ref):
            rows = [svc.endpoint_json(e) for e in svc.endpoints(session, session.get(Tenant, ref.id))]
    except _errors() as exc:
        fail(getattr(exc, "message", str(exc)))
    for e in rows:
        state = "enabled" if e["enabled"] else f"disabled ({e['disabled_reason'] or 'by hand'})"
        click.echo(f"{e['id']}\t{e['scope']}\t{state}\t{','.join(e['events']) or '*'}\t{e['url']}")


@webhooks_cli.command("deliveries")
@click.argument("tenant")
@click.option("--failed", is_flag=True, help="Only failed deliveries.")
@click.option("--limit", default=50, show_default=True)
@with_appcontext
def list_deliveries(tenant, failed, limit):
    """The delivery log, newest first."""
    from app.services import webhooks as svc

    try:
        with _session(tenant) as (session, _ref):
            rows = svc.deliveries(session, failed_only=failed, limit=limit)
            uids = svc.endpoint_uids(session, rows)
            out = [svc.delivery_json(r, uids.get((r.endpoint_scope, r.endpoint_id))) for r in rows]
    except _errors() as exc:
        fail(getattr(exc, "message", str(exc)))
    for d in out:
        click.echo(f"{d['id']}\t{d['webhook_id']}\t{d['endpoint']}\t{d['event_type']}\t{d['status']}\t"
                   f"attempts={d['attempts']}\tHTTP {d['last_status'] or '-'}\t{d['latency_ms'] or '-'} ms\t"
                   f"{d['created_at']}\t{d['last_error'] or ''}")


@webhooks_cli.command("replay")
@click.argument("tenant")
@click.argument("delivery_id", required=False)
@click.option("--all-failed", is_flag=True, help="Every failed delivery (with --since: created since then).")
@click.option("--since", default=None, help="ISO time, with --all-failed.")
@with_appcontext
def replay(tenant, delivery_id, all_failed, since):
    """Send a delivery again (same webhook-id), or every failed one."""
    from app.jobs.webhooks import send_now
    from app.services import webhooks as svc

    if bool(delivery_id) == bool(all_failed):
        fail("give a DELIVERY_ID or --all-failed")
    when = None
    if since:
        try:
            when = dt.datetime.fromisoformat(since.replace("Z", "+00:00"))
        except ValueError:
            fail(f"--since: not an ISO time: {since!r}")
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.timezone.utc)
    try:
        with _session(tenant) as (session, _ref):
            if all_failed:
                targets = svc.replay_failed(session, since=when)
            else:
                row = svc.replay(session, svc.find_delivery(session, delivery_id))
                targets = [(row.endpoint_scope, row.endpoint_id)]
    except _errors() as exc:
        fail(getattr(exc, "message", str(exc)))
    send_now(tenant, targets)
    click.echo(f"replaying {'delivery ' + str(delivery_id) if delivery_id else 'failed deliveries'} "
               f"to {len(targets)} endpoint(s)")


@webhooks_cli.command("test")
@click.argument("tenant")
@click.argument("endpoint")
@with_appcontext
def send_test(tenant, endpoint):
    """Send a webhook.test event to one endpoint."""
    from app.jobs.webhooks import send_now
    from app.services import webhooks as svc

    try:
        with _session(tenant) as (session, ref):
            target = svc.find_endpoint(session, endpoint, ref.agency_id)
            row = svc.test_delivery(session, target, ref.slug)
            delivery_id, pair = row.id, (target.scope, target.id)
    except _errors() as exc:
        fail(getattr(exc, "message", str(exc)))
    send_now(tenant, [pair])
    click.echo(f"test delivery {delivery_id}")


@webhooks_cli.command("rotate-secret")
@click.argument("tenant")
@click.argument("endpoint")
@with_appcontext
def rotate(tenant, endpoint):
    """A new secret for an endpoint (printed once); the old one keeps signing for 24 h."""
    from app.services import webhooks as svc

    try:
        with _session(tenant) as (session, ref):
            secret = svc.rotate_secret(session, svc.find_endpoint(session, endpoint, ref.agency_id))
    except _errors() as exc:
        fail(getattr(exc, "message", str(exc)))
    click.echo(f"secret {secret}")


commands = [webhooks_cli]
