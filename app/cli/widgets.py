"""`flask widgets ...`: create and list booking widgets from the command line (demo and scripting)."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup, with_appcontext
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from app.cli.common import fail

widgets_cli = AppGroup("widgets", help="Booking widgets of a business.")


class _Refused(Exception):
    """A widget setting was refused; nothing is written."""


def _base(ref=None) -> str:
    from app.links import public_base

    return public_base(ref)


def _session(slug: str):
    from app.extensions import db
    from app.tenancy import tenant_session

    return tenant_session(db.engine, slug)


@widgets_cli.command("create")
@click.argument("tenant")
@click.option("--name", required=True)
@click.option("--mode", default="inline", show_default=True)
@click.option("--origin", "origins", multiple=True, help="A website allowed to embed it (repeatable).")
@click.option("--primary", default="#1d4ed8", show_default=True)
@click.option("--accent", default="#0f766e", show_default=True)
@click.option("--language", default="auto", show_default=True)
@with_appcontext
def create_widget(tenant, name, mode, origins, primary, accent, language):
    """Create a widget; prints its id, the demo page and the embed code."""
    from app.models import widgets as w
    from app.services import forms
    from app.tenancy import NoTenant

    form = MultiDict({"name": name, "mode": mode, "primary_color": primary, "accent_color": accent,
                      "language": language, "radius_px": "8", "allowed_origins": "\n".join(origins),
                      "show_location_step": "1", "show_staff_step": "1", "show_phone": "1", "active": "1"})
    try:
        with _session(tenant) as (session, ref):
            widget = w.Widget(hidden_fields=[], allowed_origins=[])
            problems = forms.apply_widget_settings(session, widget, form)
            if problems:
                raise _Refused("; ".join(f"{p.field}: {p.message}" for p in problems))
            public_id = widget.public_id
    except (NoTenant, _Refused) as exc:
        fail(str(exc))
    base = _base(ref)  # the business's verified custom domain, else PUBLIC_URL
    click.echo(f"widget {public_id}")
    click.echo(f"demo page: {base}/widget/v1/{tenant}/{public_id}/demo")
    click.echo(f'embed: <div data-upzento-tenant="{tenant}" data-upzento-widget="{public_id}" data-mode="{mode}"></div>'
               f'<script async src="{base}/widget/v1/loader.js"></script>')


@widgets_cli.command("list")
@click.argument("tenant")
@with_appcontext
def list_widgets(tenant):
    """List a business's widgets."""
    from app.models import widgets as w
    from app.tenancy import NoTenant

    try:
        with _session(tenant) as (session, _):
            rows = list(session.scalars(select(w.Widget).order_by(w.Widget.name)))
    except NoTenant as exc:
        fail(str(exc))
    for row in rows:
        click.echo(f"{row.public_id}\t{row.mode}\t{row.name}\t{' '.join(row.allowed_origins) or '-'}")


commands = [widgets_cli]
