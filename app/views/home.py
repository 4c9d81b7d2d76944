"""The admin home's getting-started checklist (the Jinja global `home_checklist()`) and the `local` filter."""

from __future__ import annotations

from flask import g

from app.extensions import db
from app.models import widgets as w
from app.services import getting_started


def home_checklist() -> dict | None:
    """Steps and the widget snippet for the current business while it is not set up; None otherwise."""
    tenant = g.get("tenant")
    if tenant is None or g.get("user") is None:
        return None
    from app import security

    if security.is_staff_only():
        return None
    steps = getting_started.checklist(db.session)
    if getting_started.is_set_up(steps):
        return None
    snippet = None
    widget = db.session.query(w.Widget).order_by(w.Widget.id).first() if steps[-1].done else None
    if widget is not None:
        from app.views.widgets import snippets

        snippet = snippets(tenant.slug, widget)["js"]
    return {"steps": steps, "snippet": snippet}


def local_filter(value):
    """`{{ instant|local }}`: an instant in the current business's zone, labelled (admin templates)."""
    from app.views.base import local_formatter

    return local_formatter()(value)
