"""Notifications in the admin: delivery log, failed jobs, template editor, development mail outbox.

All pages work on the tenant chosen in the admin (g.tenant, db.session already
routed). Writes commit once; dispatching to RQ happens after the commit, and a
Redis outage only delays it (the periodic sweep sends what is due).
"""

from __future__ import annotations

import datetime as dt
import logging

from flask import abort, flash, g, jsonify, redirect, request, url_for
from flask_appbuilder import BaseView, expose, has_access
from flask_appbuilder.security.decorators import permission_name
from redis.exceptions import RedisError
from sqlalchemy import func, or_, select

from app import security
from app.extensions import db
from app.models import tenant as m
from app.models.notifications import DELIVERY_STATUSES, NotificationDelivery
from app.models.public import ROLE_AGENCY_OWNER, ROLE_PLATFORM_ADMIN, PlatformMail
from app.notifications import templating
from app.services import messaging, notify
from app.uow import run_unit

log = logging.getLogger(__name__)
UTC = dt.timezone.utc
PAGE_SIZE = 50


def _now() -> dt.datetime:
    return dt.datetime.now(UTC)


def _tenant_or_redirect():
    tenant = g.get("tenant")
    if tenant is None:
        flash("Choose a client business first.", "warning")
        return None
    return tenant


def _dispatch(slug: str, ids: list[int]) -> None:
    from app.jobs.notify import dispatch

    try:
        dispatch(slug, ids)
    except (RedisError, OSError) as exc:
        flash(f"Queued; the job queue is unreachable right now ({exc}), it will go out when it is back.", "warning")


# ------------------------------------------------------------------ delivery log

class DeliveryLogView(BaseView):
    """Every message with status, attempts, last error and provider id; filter, search, resend."""

    route_base = "/notifications/log"
    class_permission_name = "NotificationLog"
    default_view = "list"

    @expose("/")
    @has_access
    @permission_name("list")
    def list(self):
        tenant = _tenant_or_redirect()
        if tenant is None:
            return redirect(url_for("TenantSwitchView.choose"))
        args = request.args
        query = select(NotificationDelivery)
        for field in ("status", "channel", "kind"):
            if args.get(field):
                query = query.where(getattr(NotificationDelivery, field) == args[field])
        q = (args.get("q") or "").strip()
        if q:
            like = f"%{q.lower()}%"
            query = query.where(or_(func.lower(NotificationDelivery.recipient).like(like),
                                    func.lower(NotificationDelivery.subject).like(like),
                                    func.lower(NotificationDelivery.provider_id).like(like),
                                    func.lower(NotificationDelivery.last_error).like(like)))
        try:
            page = max(0, int(args.get("page") or 0))
        except ValueError:
            page = 0
        total = db.session.scalar(select(func.count()).select_from(query.subquery()))
        rows = db.session.scalars(query.order_by(NotificationDelivery.id.desc())
                                  .offset(page * PAGE_SIZE).limit(PAGE_SIZE)).all()
        return self.render_template(
            "notif_log.html", rows=rows, total=total, page=page, page_size=PAGE_SIZE, args=args,
            statuses=DELIVERY_STATUSES, kinds=templating.EVENTS, channels=templating.CHANNELS,
            may_write=self.appbuilder.sm.has_access("can_edit", self.class_permission_name))

    @expose("/<int:delivery_id>")
    @has_access
    @permission_name("show")
    def show(self, delivery_id: int):
        row = db.session.get(NotificationDelivery, delivery_id)
        if row is None:
            abort(404)
        return self.render_template("notif_show.html", row=row,
                                    may_write=self.appbuilder.sm.has_access("can_edit", self.class_permission_name))

    @expose("/<int:delivery_id>/resend", methods=["POST"])
    @has_access
    @permission_name("edit")
    def resend(self, delivery_id: int):
        try:
            row = run_unit(lambda: messaging.resend(db.session, delivery_id, _now()))
        except messaging.MessageBusy:
            flash("This message is being sent right now.", "warning")
            return redirect(url_for("DeliveryLogView.show", delivery_id=delivery_id))
        if row is None:
            abort(404)
        _dispatch(g.tenant.slug, [delivery_id])
        flash("Message queued again.", "success")
        return redirect(url_for("DeliveryLogView.show", delivery_id=delivery_id))


# ------------------------------------------------------------------- failed jobs

def _failed_jobs(slug: str) -> list:
    from rq.registry import FailedJobRegistry

    from app.queueing import QUEUE_NAMES, queue

    jobs = []
    for name in QUEUE_NAMES:
        q = queue(name)
        ids = FailedJobRegistry(queue=q).get_job_ids()
        for job in q.job_class.fetch_many(ids, connection=q.connection) if ids else []:
            if job is not None and job.args and job.args[0] == slug:
                jobs.append(job)
    return jobs


class FailedJobsView(BaseView):
    """Jobs and messages of this business that gave up: retry or discard each."""

    route_base = "/notifications/failed"
    class_permission_name = "NotificationFailures"
    default_view = "list"

    @expose("/")
    @has_access
    @permission_name("list")
    def list(self):
        tenant = _tenant_or_redirect()
        if tenant is None:
            return redirect(url_for("TenantSwitchView.choose"))
        try:
            jobs, redis_error = _failed_jobs(tenant.slug), None
        except (RedisError, OSError) as exc:
            jobs, redis_error = [], str(exc)
        failed = db.session.scalars(select(NotificationDelivery).where(
            NotificationDelivery.status.in_(("failed", "bounced"))).order_by(NotificationDelivery.id.desc())
            .limit(200)).all()
        events = db.session.scalars(select(m.OutboxEvent).where(
            m.OutboxEvent.relayed_at.is_(None), m.OutboxEvent.attempts > 0).order_by(m.OutboxEvent.id).limit(200)).all()
        return self.render_template("notif_failed.html", jobs=jobs, failed=failed, events=events,
                                    redis_error=redis_error,
                                    may_write=self.appbuilder.sm.has_access("can_edit", self.class_permission_name))

    def _job(self, job_id: str):
        from rq.job import Job

        from app.queueing import redis_connection

        try:
            job = Job.fetch(job_id, connection=redis_connection())
        except Exception:
            abort(404)
        # A job id from another business is simply not found here.
        if not job.args or job.args[0] != g.tenant.slug:
            abort(404)
        return job

    @expose("/job/<job_id>/<what>", methods=["POST"])
    @has_access
    @permission_name("edit")
    def job(self, job_id: str, what: str):
        if what not in ("retry", "discard"):
            abort(404)
        job = self._job(job_id)
        if what == "discard":
            job.delete()
            flash("Job discarded.", "success")
        else:
            job.requeue()
            flash("Job queued again.", "success")
        return redirect(url_for("FailedJobsView.list"))

    @expose("/delivery/<int:delivery_id>/<what>", methods=["POST"])
    @has_access
    @permission_name("edit")
    def delivery(self, delivery_id: int, what: str):
        if what not in ("retry", "discard"):
            abort(404)

        def change():
            row = messaging.failed_message(db.session, delivery_id)
            if row is None:
                abort(404)
            if what == "discard":
                messaging.discard_failed(db.session, row)
            else:
                messaging.retry_failed(db.session, row, _now())

        run_unit(change)
        if what == "discard":
            flash("Message discarded.", "success")
        else:
            _dispatch(g.tenant.slug, [delivery_id])
            flash("Message queued again.", "success")
        return redirect(url_for("FailedJobsView.list"))


# -------------------------------------------------------------- template editor

def _may_edit_agency() -> bool:
    roles = g.get("effective_roles") or set()
    return bool(roles & {ROLE_AGENCY_OWNER, ROLE_PLATFORM_ADMIN})


def _key_or_404(event: str, channel: str, language: str) -> None:
    if event not in templating.EVENTS or channel not in templating.CHANNELS or language not in templating.LANGUAGES:
        abort(404)


def _sample_context(language: str) -> tuple[dict, str]:
    """A context from this business's latest appointment, else the built-in sample."""
    appt = db.session.scalar(select(m.Appointment).order_by(m.Appointment.created_at.desc()).limit(1))
    if appt is None:
        return templating.sample_context(language), "sample data"
    from flask import current_app

    from app.models.public import Tenant

    settings = notify.Settings.from_config(current_app.config)
    business = db.session.get(Tenant, g.tenant.id)
    ctx = notify.build_context(appt, g.tenant, business, "customer", language, settings,
                               previous_start=appt.start_at - dt.timedelta(days=1))
    if ctx["location"] is None:
        ctx["location"] = templating.sample_context(language)["location"]
    return ctx, f"the appointment of {appt.start_at:%Y-%m-%d %H:%M} UTC"


class TemplateEditorView(BaseView):
    """Templates per event × channel × language: tenant override, agency override, platform default."""

    route_base = "/notifications/templates"
    class_permission_name = "NotificationTemplates"
    default_view = "index"

    @expose("/")
    @has_access
    @permission_name("list")
    def index(self):
        tenant = _tenant_or_redirect()
        if tenant is None:
            return redirect(url_for("TenantSwitchView.choose"))
        tenant_map, agency_map = notify.overrides(db.session, tenant.agency_id)
        grid = {}
        for event in templating.EVENTS:
            for channel in templating.CHANNELS:
                for lang in templating.LANGUAGES:
                    key = (event, channel, lang)
                    grid[key] = "client" if key in tenant_map else "agency" if key in agency_map else "default"
        return self.render_template("notif_templates.html", grid=grid, events=templating.EVENTS,
                                    channels=templating.CHANNELS, languages=templating.LANGUAGES)

    @expose("/<event>/<channel>/<language>", methods=["GET", "POST"])
    @has_access
    @permission_name("edit")
    def edit(self, event: str, channel: str, language: str):
        _key_or_404(event, channel, language)
        if g.get("tenant") is None:
            return redirect(url_for("TenantSwitchView.choose"))
        scope = request.values.get("scope", "client")
        if scope not in ("client", "agency") or (scope == "agency" and not _may_edit_agency()):
            abort(403)
        tenant_map, agency_map = notify.overrides(db.session, g.tenant.agency_id, event)
        # What the editor starts from: this scope's own text, else what would be sent.
        own = messaging.own_template(db.session, g.tenant.agency_id, scope, event, channel, language)
        if own is not None:
            base = notify._as_message(own)
        else:
            levels = (agency_map if scope == "client" else {},)
            base = levels[0].get((event, channel, language)) or templating.DEFAULT_TEMPLATES[(event, channel, language)]
        errors: list[templating.TemplateError] = []
        form = {"subject": base.subject, "body_text": base.body_text, "body_html": base.body_html}
        if request.method == "POST":
            form = {k: request.form.get(k, "") for k in ("subject", "body_text", "body_html")}
            if request.form.get("action") == "revert":
                run_unit(lambda: messaging.revert_template(db.session, g.tenant.agency_id, scope, event, channel, language))
                flash("Override removed; the inherited text is used again.", "success")
                return redirect(url_for("TemplateEditorView.edit", event=event, channel=channel,
                                        language=language, scope=scope))
            errors = run_unit(lambda: messaging.save_template(db.session, g.tenant.agency_id, scope, event, channel,
                                                              language, form, _now()))
            if not errors:
                flash("Template saved.", "success")
                return redirect(url_for("TemplateEditorView.edit", event=event, channel=channel,
                                        language=language, scope=scope))
        return self.render_template(
            "notif_template_edit.html", event=event, channel=channel, language=language, scope=scope,
            form=form, errors=errors, has_own=own is not None, may_agency=_may_edit_agency(),
            variables={k: sorted(v) for k, v in templating.VARIABLES.items()},
            filters=sorted(templating.ALLOWED_FILTERS))

    @expose("/<event>/<channel>/<language>/preview", methods=["POST"])
    @has_access
    @permission_name("edit")
    def preview(self, event: str, channel: str, language: str):
        _key_or_404(event, channel, language)
        if g.get("tenant") is None:
            abort(404)
        form = {k: request.form.get(k, "") for k in ("subject", "body_text", "body_html")}
        errors = templating.validate_template(form["subject"], form["body_text"], form["body_html"], channel, event)
        if errors:
            return jsonify({"ok": False, "errors": [e.__dict__ for e in errors]})
        ctx, source = _sample_context(language)
        try:
            out = templating.render(templating.MessageTemplate(channel=channel, **form), ctx)
        except templating.TemplateRenderError as exc:
            return jsonify({"ok": False, "errors": [{"field": exc.field, "message": exc.message, "line": None}]})
        return jsonify({"ok": True, "subject": out.subject, "text": out.text, "html": out.html, "source": source})


# ------------------------------------------------------------ reminder settings

class ReminderSettingsView(BaseView):
    """Reminder offsets, channels and follow-up delay per service."""

    route_base = "/notifications/reminders"
    class_permission_name = "NotificationReminders"
    default_view = "list"

    @expose("/")
    @has_access
    @permission_name("list")
    def list(self):
        if _tenant_or_redirect() is None:
            return redirect(url_for("TenantSwitchView.choose"))
        services = db.session.scalars(select(m.Service).order_by(m.Service.position, m.Service.name)).all()
        rows = [(svc, notify.settings_for(db.session, svc.id)) for svc in services]
        return self.render_template("notif_reminders.html", rows=rows, errors={}, form=None, editing=None,
                                    may_write=self.appbuilder.sm.has_access("can_edit", self.class_permission_name))

    @expose("/<int:service_id>", methods=["POST"])
    @has_access
    @permission_name("edit")
    def save(self, service_id: int):
        if _tenant_or_redirect() is None:
            return redirect(url_for("TenantSwitchView.choose"))
        service = db.session.get(m.Service, service_id)
        if service is None:
            abort(404)
        errors = run_unit(lambda: messaging.save_reminder_settings(db.session, service_id, request.form))
        if errors:
            services = db.session.scalars(select(m.Service).order_by(m.Service.position, m.Service.name)).all()
            rows = [(svc, notify.settings_for(db.session, svc.id)) for svc in services]
            return self.render_template("notif_reminders.html", rows=rows, errors=errors, form=request.form,
                                        editing=service_id, may_write=True), 422
        flash(f"Reminders of {service.name} saved.", "success")
        return redirect(url_for("ReminderSettingsView.list"))


# ------------------------------------------------------------ development outbox

class MailOutboxView(BaseView):
    """Development: mail that was kept here because SMTP is not configured."""

    route_base = "/notifications/outbox"
    class_permission_name = "MailOutbox"
    default_view = "list"

    @expose("/")
    @has_access
    @permission_name("list")
    def list(self):
        from flask import current_app

        tenant = g.get("tenant")
        mails = []
        if tenant is not None:
            mails = db.session.scalars(select(NotificationDelivery).where(
                NotificationDelivery.provider_id == "dev-outbox").order_by(NotificationDelivery.id.desc())
                .limit(200)).all()
        # Account mail: a platform admin sees all of it; a business's admins and agency owner see the
        # mail about their business (portal sign-in links, invitations into it).
        platform_query = select(PlatformMail).order_by(PlatformMail.id.desc()).limit(200)
        if ROLE_PLATFORM_ADMIN not in (g.get("effective_roles") or set()):
            platform_query = platform_query.where(PlatformMail.tenant_id == (tenant.id if tenant is not None else -1))
        platform = db.session.scalars(platform_query).all()
        return self.render_template("notif_outbox.html", mails=mails, platform=platform, ics_kinds=notify.ICS_KINDS,
                                    smtp=current_app.config.get("SMTP_HOST"))


    @expose("/<int:delivery_id>/invite.ics")
    @has_access
    @permission_name("list")
    def invite(self, delivery_id: int):
        """The calendar invitation (.ics) a kept booking mail carries, to download and open."""
        from flask import Response, abort, current_app

        from app.tenancy import TenantRef

        tenant = g.get("tenant")
        delivery = db.session.get(NotificationDelivery, delivery_id) if tenant is not None else None
        if delivery is None:
            abort(404)
        found = notify.attachment(db.session, tenant if isinstance(tenant, TenantRef) else TenantRef.of(tenant), delivery,
                                  notify.Settings.from_config(current_app.config), current_app.config["MAIL_FROM"],
                                  dt.datetime.now(dt.timezone.utc))
        if found is None:
            abort(404)
        data, method = found
        response = Response(data, mimetype="text/calendar")
        response.headers["Content-Type"] = f"text/calendar; charset=utf-8; method={method}"
        response.headers["Content-Disposition"] = f'attachment; filename="invite-{delivery.id}.ics"'
        return response


VIEWS = [
    (DeliveryLogView, "Delivery log", "Notifications", security.TENANT_VIEWS, {"icon": "fa-envelope"}),
    (FailedJobsView, "Failed jobs", "Notifications", security.TENANT_VIEWS, {"icon": "fa-exclamation-triangle"}),
    (TemplateEditorView, "Templates", "Notifications", security.TENANT_VIEWS, {"icon": "fa-pencil"}),
    (ReminderSettingsView, "Reminders", "Notifications", security.TENANT_VIEWS, {"icon": "fa-bell"}),
    (MailOutboxView, "Mail outbox (dev)", "Notifications", security.TENANT_VIEWS, {"icon": "fa-inbox"}),
]

