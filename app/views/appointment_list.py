"""Appointments list: search and filters, saved filters, bulk actions, streamed CSV and XLSX export.

Bulk actions load every row through the tenant's own session (an id of another business,
or of another staff member for a Staff log-in, is a 404) and run in one unit of work: all
rows change, through booking.cancel / set_status (outbox events, so notifications), or none.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from flask import Response, current_app, flash, g, redirect, request, send_file, stream_with_context, url_for
from flask_appbuilder import BaseView, expose, has_access
from flask_appbuilder.security.decorators import permission_name
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import security
from app.errors import ApiError, ValidationError
from app.extensions import db
from app.models import tenant as m
from app.services import appointment_list as al
from app.services import booking
from app.services import calendar as cal
from app.services import exports
from app.tenancy import TENANT_INFO_KEY
from app.uow import discard, run_unit

UTC = dt.timezone.utc
BULK = {"cancel": "cancelled", "completed": "marked completed", "no_show": "marked no-show"}


def _only() -> int | None:
    return (security.current_staff_id() or -1) if security.is_staff_only() else None


def _filter_from(args) -> al.ListFilter:
    from dataclasses import replace

    return replace(al.parse_filter(args), only_staff_id=_only())


def _query_string(args) -> str:
    return urlencode([(k, args.get(k)) for k in al.FILTER_KEYS if args.get(k)])


def _file_of(row) -> tuple[str, int, str]:
    return exports.file_name(row), row.size, row.format


class AppointmentListView(BaseView):
    route_base = "/appointments"
    class_permission_name = "AppointmentList"
    default_view = "index"

    def _tz(self) -> str:
        return request.args.get("timezone") or g.tenant.timezone

    @expose("/")
    @has_access
    @permission_name("list")
    def index(self):
        if g.get("tenant") is None:
            return redirect(url_for("TenantSwitchView.choose"))
        try:
            f = _filter_from(request.args)
        except ValidationError as exc:
            flash(exc.message, "danger")
            f = al.ListFilter(only_staff_id=_only())
        number = request.args.get("page", "1")
        number = int(number) if number.isdigit() else 1
        rows, more = al.page(db.session, f, self._tz(), number)
        saved = list(db.session.scalars(select(m.SavedFilter).where(m.SavedFilter.user_id == g.user.id).order_by(m.SavedFilter.name)))
        qs = _query_string(request.args)
        return self.render_template(
            "dash_list.html", rows=rows, more=more, number=number, args=request.args, qs=qs, saved=saved, tz=self._tz(),
            staff=[] if _only() is not None else list(db.session.execute(select(m.Staff.key, m.Staff.name).order_by(m.Staff.name))),
            services=list(db.session.execute(select(m.Service.key, m.Service.name).order_by(m.Service.name))),
            locations=list(db.session.execute(select(m.Location.key, m.Location.name).order_by(m.Location.name))),
            statuses=m.STATUSES, sources=("widget", "api", "admin", "import"),
            may_act=self.appbuilder.sm.has_access("can_bulk", self.class_permission_name),
            to_local=lambda instant: instant.astimezone(ZoneInfo(self._tz())).strftime("%Y-%m-%d %H:%M"),
        )

    def _export(self, fmt: str):
        """Small exports stream now; one over EXPORT_INLINE_ROWS rows is built in the background."""
        try:
            f = _filter_from(request.args)
        except ValidationError as exc:
            return Response(exc.message + "\n", status=422, mimetype="text/plain")
        tz, limits = self._tz(), exports.Limits.from_config(current_app.config)
        total = al.count(db.session, f, tz)
        if total > limits.inline_rows:
            return self._in_background(fmt, f, tz, total)
        if fmt == "csv":
            return self._stream_csv(f, tz)
        return self._send_xlsx(f, tz)

    @expose("/export.csv")
    @has_access
    @permission_name("list")
    def export_csv(self):
        return self._export("csv")

    @expose("/export.xlsx")
    @has_access
    @permission_name("list")
    def export_xlsx(self):
        return self._export("xlsx")

    def _stream_csv(self, f: al.ListFilter, tz: str):
        schema = g.tenant.schema

        def generate():
            # Its own read-only session: the request's session is finished once the response starts.
            with Session(db.engine, info={TENANT_INFO_KEY: schema}) as session:
                yield from exports.csv_pieces(al.export_rows(session, f, tz))
                discard(session)

        name = f"appointments-{dt.date.today().isoformat()}.csv"
        return Response(stream_with_context(generate()), mimetype="text/csv",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})

    def _send_xlsx(self, f: al.ListFilter, tz: str):
        """XLSX in XlsxWriter's constant-memory mode (rows go to a temporary file as written), then streamed."""
        handle, path = tempfile.mkstemp(suffix=".xlsx")
        os.close(handle)
        exports.write_file("xlsx", al.export_rows(db.session, f, tz), path)
        stream = open(path, "rb")  # noqa: SIM115 - closed by the response
        os.unlink(path)  # the open handle keeps the data until the response closes it
        return send_file(stream, mimetype=exports.XLSX_MIMETYPE, as_attachment=True,
                         download_name=f"appointments-{dt.date.today().isoformat()}.xlsx")

    def _in_background(self, fmt: str, f: al.ListFilter, tz: str, total: int):
        from app import fairqueue
        from app.audit_context import current_actor

        now = dt.datetime.now(UTC)
        export_id = run_unit(lambda: exports.request(db.session, fmt, f, tz, g.user.id, current_actor().describe(), now).id)
        try:
            # Long work of this business: in its turn, so another business's big exports do not delay it.
            fairqueue.submit(g.tenant.slug, exports.BUILD_JOB, export_id, job_timeout=3600,
                             on_lost=exports.LOST_JOB)
        except Exception as exc:  # noqa: BLE001 - Redis down: the row says so
            run_unit(lambda: exports.fail(db.session, export_id, f"the job queue is unreachable ({exc}); ask again later",
                                          dt.datetime.now(UTC)))
            flash(f"The export could not be queued: the job queue is unreachable ({exc}). Try again later.", "danger")
            return redirect(url_for("AppointmentListView.export_list"))
        flash(f"{total:,} appointments are more than can be downloaded at once; the {fmt.upper()} file is being "
              "built in the background. This page shows when it is ready.", "info")
        return redirect(url_for("AppointmentListView.export_list"))

    @expose("/exports/")
    @has_access
    @permission_name("list")
    def export_list(self):
        rows = exports.for_user(db.session, g.user.id)
        if request.args.get("format") == "json":
            return {"exports": [{"id": r.id, "status": r.status, "progress": r.progress, "rows": r.rows, "size": r.size,
                                 "error": r.error} for r in rows]}
        return self.render_template("dash_exports.html", rows=rows, now=dt.datetime.now(UTC),
                                    running=any(r.status in ("queued", "running") for r in rows))

    @expose("/exports/<int:export_id>/download")
    @has_access
    @permission_name("list")
    def export_download(self, export_id: int):
        now = dt.datetime.now(UTC)
        try:
            name, size, fmt = run_unit(lambda: _file_of(exports.ready(db.session, export_id, g.user.id, now)))
        except ApiError as exc:
            flash(exc.message, "warning")
            return redirect(url_for("AppointmentListView.export_list"))
        schema = g.tenant.schema

        def generate():
            with Session(db.engine, info={TENANT_INFO_KEY: schema}) as session:
                yield from exports.chunks(session, export_id)
                discard(session)

        return Response(stream_with_context(generate()), mimetype=exports.MIMETYPES[fmt],
                        headers={"Content-Disposition": f'attachment; filename="{name}"', "Content-Length": str(size)})

    @expose("/bulk", methods=["POST"])
    @has_access
    @permission_name("bulk")
    def bulk(self):
        action = request.form.get("action", "")
        ids = request.form.getlist("ids")
        back = url_for("AppointmentListView.index") + ("?" + request.form.get("qs") if request.form.get("qs") else "")
        if action not in BULK or not ids:
            flash("Choose appointments and an action.", "warning")
            return redirect(back)
        only, now = _only(), dt.datetime.now(UTC)
        actor = f"{'staff' if only is not None else 'admin'}:{g.user.username}"
        reason = (request.form.get("reason") or "").strip() or "cancelled by the business"

        def work():
            rows = [cal.load(db.session, i, only) for i in ids]
            for appt in rows:
                if action == "cancel":
                    booking.cancel(db.session, g.tenant, actor, appt, now, reason=reason, enforce_policy=False)
                else:
                    booking.set_status(db.session, g.tenant, actor, appt, action)
            return len(rows)

        try:
            done = run_unit(work, db.session, retry=True)
        except ApiError as exc:
            if exc.status == 404:
                return self.render_template("desk_missing.html"), 404
            flash(f"Nothing changed: {exc.message}.", "danger")
            return redirect(back)
        flash(f"{done} appointment(s) {BULK[action]}; customers are notified.", "success")
        return redirect(back)

    @expose("/saved", methods=["POST"])
    @has_access
    @permission_name("list")
    def save_filter(self):
        name = (request.form.get("name") or "").strip()[:100]
        qs = request.form.get("qs") or ""
        if not name:
            flash("Give the filter a name.", "warning")
            return redirect(url_for("AppointmentListView.index") + ("?" + qs if qs else ""))

        def work():
            existing = db.session.scalar(select(m.SavedFilter).where(m.SavedFilter.user_id == g.user.id, m.SavedFilter.name == name))
            if existing is None:
                db.session.add(m.SavedFilter(user_id=g.user.id, name=name, query=qs))
            else:
                existing.query = qs
            db.session.flush()

        run_unit(work, db.session)
        flash(f"Filter “{name}” saved.", "success")
        return redirect(url_for("AppointmentListView.index") + ("?" + qs if qs else ""))

    @expose("/saved/<int:filter_id>/delete", methods=["POST"])
    @has_access
    @permission_name("list")
    def delete_filter(self, filter_id):
        def work():
            row = db.session.scalar(select(m.SavedFilter).where(m.SavedFilter.id == filter_id, m.SavedFilter.user_id == g.user.id))
            if row is not None:
                db.session.delete(row)
                db.session.flush()
            return row is not None

        if not run_unit(work, db.session):
            return self.render_template("desk_missing.html"), 404
        return redirect(url_for("AppointmentListView.index"))


security.STAFF_VIEWS.add("AppointmentList")

VIEWS = [
    (AppointmentListView, "Appointments list", "Bookings", security.TENANT_VIEWS, {"icon": "fa-list"}),
]
