"""GDPR and audit pages of the admin: audit log (filter, CSV), subject requests, retention, auditor reports.

Audiences (app/security.py): the audit log, subject requests and retention are business
pages (Client Admin and Agency Owner; Auditors read-only: list/show/download only);
reports are auditor pages (Auditor and Agency Owner). Every page works on the tenant the
user is working in (g.tenant), which for an auditor is only ever a tenant assigned to them.
"""

from __future__ import annotations

import datetime as dt

from flask import Response, abort, flash, g, redirect, request, url_for
from flask_appbuilder import BaseView, expose, has_access
from flask_appbuilder.security.decorators import permission_name

from app import security
from app.extensions import db
from app.gdpr import audit
from app.uow import run_unit

UTC = dt.timezone.utc
PAGE_SIZE = 100


def _day(value: str | None, end: bool = False) -> dt.datetime | None:
    if not value:
        return None
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        return None
    start = dt.datetime.combine(day, dt.time(), UTC)
    return start + dt.timedelta(days=1) if end else start


def _filters(args) -> dict:
    customer = args.get("customer_id") or ""
    return {
        "since": _day(args.get("from")), "until": _day(args.get("to"), end=True),
        "entity": (args.get("entity") or "").strip() or None, "action": (args.get("action") or "").strip() or None,
        "actor": (args.get("actor") or "").strip() or None,
        "customer_id": int(customer) if customer.isdigit() else None,
    }


class AuditLogView(BaseView):
    """Who changed what in this business: filter by period, entity, action, actor, customer; CSV export."""

    route_base = "/audit/log"
    class_permission_name = "AuditLog"
    default_view = "list"

    @expose("/")
    @has_access
    @permission_name("list")
    def list(self):
        if g.get("tenant") is None:
            return redirect(url_for("TenantSwitchView.choose"))
        args = request.args
        try:
            page = max(0, int(args.get("page") or 0))
        except ValueError:
            page = 0
        rows = run_unit(lambda: list(audit.query(db.session, limit=PAGE_SIZE + 1, offset=page * PAGE_SIZE, **_filters(args))))
        more = len(rows) > PAGE_SIZE
        base_args = {k: v for k, v in args.items() if k != "page" and v}
        return self.render_template("gdpr_audit_log.html", rows=rows[:PAGE_SIZE], more=more, page=page, args=args,
                                    base_args=base_args)

    @expose("/export.csv")
    @has_access
    @permission_name("download")
    def download(self):
        if g.get("tenant") is None:
            abort(404)
        slug = g.tenant.slug
        filters = _filters(request.args)
        run_unit(lambda: audit.note(db.session, "audit_log", "export_csv", None,
                                    {k: audit.jsonable(v) for k, v in filters.items() if v}))
        rows = audit.stream(db.engine, g.tenant.schema, **filters)
        response = Response(audit.csv_lines(rows), mimetype="text/csv")
        response.headers["Content-Disposition"] = f'attachment; filename="{slug}-audit-log.csv"'
        return response


VIEWS = [
    (AuditLogView, "Audit log", "Privacy", security.TENANT_VIEWS, {"icon": "fa-history"}),
]
