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
from app.errors import ApiError, ValidationError
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


def _who() -> str:
    from app.audit_context import current_actor

    return current_actor().describe()


def _may(view, permission: str) -> bool:
    return view.appbuilder.sm.has_access(permission, view.class_permission_name)


class SubjectRequestsView(BaseView):
    """Data-subject requests: the timeline against the 30-day deadline, approve/refuse portal erasure
    requests, find a person, export (JSON/PDF) and erase."""

    route_base = "/privacy/requests"
    class_permission_name = "SubjectRequests"
    default_view = "list"

    @expose("/")
    @has_access
    @permission_name("list")
    def list(self):
        from app.gdpr import subjects

        if g.get("tenant") is None:
            return redirect(url_for("TenantSwitchView.choose"))
        query = (request.args.get("q") or "").strip()
        matches, error = [], None
        if query:
            try:
                matches = run_unit(lambda: subjects.find(db.session, g.tenant, query))
            except ApiError as exc:
                error = exc.message
        rows = run_unit(lambda: subjects.timeline(db.session))
        return self.render_template("gdpr_requests.html", rows=rows, matches=matches, query=query, error=error,
                                    may_write=_may(self, "can_edit"))

    @expose("/export/<kind>/<int:subject_id>.<fmt>")
    @has_access
    @permission_name("download")
    def download(self, kind: str, subject_id: int, fmt: str):
        import json

        from app.gdpr import subjects
        from app.models import tenant as m

        if fmt not in ("json", "pdf") or kind not in ("customer", "staff"):
            abort(404)
        model = m.Customer if kind == "customer" else m.Staff

        def export():
            person = db.session.get(model, subject_id)
            if person is None:
                abort(404)
            data = (subjects.export_customer(db.session, g.tenant, person) if kind == "customer"
                    else subjects.export_staff(db.session, g.tenant, person))
            subjects.record_export(db.session, "admin", _who(), **{kind: person})
            return data

        data = run_unit(export)
        content = json.dumps(data, indent=2, ensure_ascii=False).encode() if fmt == "json" else subjects.export_pdf(data)
        return Response(content, mimetype="application/json" if fmt == "json" else "application/pdf", headers={
            "Content-Disposition": f'attachment; filename="{g.tenant.slug}-{kind}-{subject_id}.{fmt}"'})

    @expose("/erase/<kind>/<int:subject_id>", methods=["POST"])
    @has_access
    @permission_name("edit")
    def erase(self, kind: str, subject_id: int):
        from app.gdpr import subjects
        from app.models import tenant as m

        if kind not in ("customer", "staff"):
            abort(404)
        if db.session.get(m.Customer if kind == "customer" else m.Staff, subject_id) is None:
            abort(404)  # not a person of this business: nothing to confirm
        if request.form.get("confirm") != "erase":
            flash("Type 'erase' to confirm: erasure cannot be undone.", "warning")
            return redirect(url_for("SubjectRequestsView.list"))
        try:
            if kind == "customer":
                run_unit(lambda: subjects.erase_customer(db.session, g.tenant, db.session.get(m.Customer, subject_id), _who()))
            else:
                run_unit(lambda: subjects.erase_staff(db.session, db.session.get(m.Staff, subject_id), _who()))
        except ApiError as exc:
            flash(exc.message, "danger")
            return redirect(url_for("SubjectRequestsView.list"))
        flash("Erased: personal data removed, statistics kept.", "success")
        return redirect(url_for("SubjectRequestsView.list"))

    @expose("/<int:request_id>/approve", methods=["POST"])
    @has_access
    @permission_name("edit")
    def approve(self, request_id: int):
        from app.gdpr import subjects

        try:
            run_unit(lambda: subjects.approve(db.session, g.tenant, request_id, _who()))
            flash("Approved and carried out.", "success")
        except ApiError as exc:
            flash(exc.message, "danger")
            if exc.status == 404:  # another business's request: not found here, nothing changed
                return redirect(url_for("SubjectRequestsView.list")), 404
        return redirect(url_for("SubjectRequestsView.list"))

    @expose("/<int:request_id>/refuse", methods=["POST"])
    @has_access
    @permission_name("edit")
    def refuse(self, request_id: int):
        from app.gdpr import subjects

        try:
            run_unit(lambda: subjects.refuse(db.session, request_id, _who(), request.form.get("reason", "")))
            flash("Refused; the reason is recorded.", "success")
        except ApiError as exc:
            flash(exc.message, "danger")
            if exc.status == 404:  # another business's request: not found here, nothing changed
                return redirect(url_for("SubjectRequestsView.list")), 404
        return redirect(url_for("SubjectRequestsView.list"))


class RetentionView(BaseView):
    """The business's retention policy: settings, dry run, enable; last reports."""

    route_base = "/privacy/retention"
    class_permission_name = "Retention"
    default_view = "list"

    @expose("/", methods=["GET"])
    @has_access
    @permission_name("list")
    def list(self):
        from app.gdpr import retention

        if g.get("tenant") is None:
            return redirect(url_for("TenantSwitchView.choose"))
        row = run_unit(lambda: retention.policy(db.session))
        return self.render_template("gdpr_retention.html", p=row, may_write=_may(self, "can_edit"))

    @expose("/", methods=["POST"])
    @has_access
    @permission_name("edit")
    def save(self):
        from app.gdpr import retention

        def number(name):
            value = (request.form.get(name) or "").strip()
            if not value:
                return None
            if not value.isdigit():
                raise ValidationError(f"{name} must be a whole number or empty", name)
            return int(value)

        def dry_run(months, body, logs):
            retention.update(db.session, months, body, logs, enabled=False)
            return retention.run(db.session, g.tenant, dry_run=True)

        try:
            months, body, logs = number("customer_inactive_months"), number("message_body_days"), number("delivery_log_days")
            if request.form.get("action") == "dry_run":
                report = run_unit(lambda: dry_run(months, body, logs))
                flash(f"Dry run: {report['customer_count']} customer(s) would be anonymised, "
                      f"{report['message_bodies']} message text(s) blanked, {report['delivery_logs']} log row(s) deleted.", "info")
            else:
                run_unit(lambda: retention.update(db.session, months, body, logs, enabled=bool(request.form.get("enabled"))))
                flash("Retention policy saved.", "success")
        except ApiError as exc:
            flash(exc.message, "danger")
        return redirect(url_for("RetentionView.list"))


class AuditorReportsView(BaseView):
    """Auditor reports per period (PDF/CSV), built by a background job with progress; download when done."""

    route_base = "/privacy/reports"
    class_permission_name = "AuditorReports"
    default_view = "list"

    @expose("/")
    @has_access
    @permission_name("list")
    def list(self):
        from sqlalchemy import select

        from app.models.gdpr import AuditReport

        if g.get("tenant") is None:
            return redirect(url_for("TenantSwitchView.choose"))
        rows = run_unit(lambda: db.session.execute(select(AuditReport.id, AuditReport.period_from, AuditReport.period_to,
                                         AuditReport.format, AuditReport.status, AuditReport.progress,
                                         AuditReport.step, AuditReport.requested_by, AuditReport.created_at,
                                         AuditReport.error).order_by(AuditReport.id.desc()).limit(50)).all())
        if request.args.get("format") == "json":
            return {"reports": [{"id": r.id, "status": r.status, "progress": r.progress, "step": r.step} for r in rows]}
        return self.render_template("gdpr_reports.html", rows=rows, running=any(r.status in ("queued", "running") for r in rows))

    @expose("/", methods=["POST"])
    @has_access
    @permission_name("list")
    def create(self):
        from app.models.gdpr import AuditReport

        since, until = _day(request.form.get("from")), _day(request.form.get("to"), end=True)
        fmt = request.form.get("format")
        if since is None or until is None or until <= since or fmt not in ("pdf", "csv"):
            flash("Give a period (from ≤ to) and a format.", "danger")
            return redirect(url_for("AuditorReportsView.list"))
        def ask() -> int:
            row = AuditReport(period_from=since, period_to=until, format=fmt, status="queued", progress=0,
                              requested_by=_who())
            db.session.add(row)
            db.session.flush()
            audit.note(db.session, "report", "request", row.id, {"from": since.date().isoformat(),
                                                                "to": (until - dt.timedelta(days=1)).date().isoformat(),
                                                                "format": fmt})
            return row.id

        report_id = run_unit(ask)
        try:
            from app import fairqueue

            # Long work: queued in the business's turn, so another business's many reports do not delay it.
            fairqueue.submit(g.tenant.slug, "app.jobs.reports.build_report", report_id, job_timeout=1800,
                             result_ttl=3600, failure_ttl=86400, on_lost="app.jobs.reports.lost_report")
            flash("Report queued; this page follows its progress.", "info")
        except Exception as exc:  # noqa: BLE001 - Redis down: the row says so
            from app.gdpr import reports

            run_unit(lambda: reports.fail(db.session, report_id, f"the job queue is unreachable ({exc}); ask again later",
                                          dt.datetime.now(dt.timezone.utc)))
            flash(f"The job queue is unreachable ({exc}); try again later.", "danger")
        return redirect(url_for("AuditorReportsView.list"))

    @expose("/<int:report_id>/download")
    @has_access
    @permission_name("download")
    def download(self, report_id: int):
        from app.models.gdpr import AuditReport

        def load():
            row = db.session.get(AuditReport, report_id)
            if row is None or row.status != "done" or row.content is None:
                abort(404)
            name = f"{g.tenant.slug}-audit-report-{row.period_from:%Y%m%d}-{(row.period_to - dt.timedelta(days=1)):%Y%m%d}"
            return row.content, row.format, f"{name}.{row.format}"

        content, fmt, name = run_unit(load)
        return Response(content, mimetype="application/pdf" if fmt == "pdf" else "text/csv",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})


VIEWS = [
    (AuditLogView, "Audit log", "Privacy", security.TENANT_VIEWS, {"icon": "fa-history"}),
    (SubjectRequestsView, "Subject requests", "Privacy", security.TENANT_VIEWS, {"icon": "fa-user-secret"}),
    (RetentionView, "Retention", "Privacy", security.TENANT_VIEWS, {"icon": "fa-hourglass-half"}),
    (AuditorReportsView, "Auditor reports", "Privacy", security.AUDIT_VIEWS, {"icon": "fa-file-pdf-o"}),
]
