"""Settings → Webhooks (endpoints, delivery log, replay, test event) and Settings → Meetings
(health of meeting links, retry now, provider credentials), for the business chosen in the admin.

Views parse and authorize; app.services.webhooks / app.services.meetings hold the rules;
every write commits once through app.uow; jobs are enqueued after the commit.
"""

from __future__ import annotations

import datetime as dt

from flask import abort, flash, g, redirect, request, url_for
from flask_appbuilder import BaseView, expose, has_access
from flask_appbuilder.security.decorators import permission_name
from redis.exceptions import RedisError
from sqlalchemy import select

from app import security
from app.errors import ApiError
from app.extensions import db
from app.models import tenant as m
from app.models.public import ROLE_AGENCY_OWNER, ROLE_PLATFORM_ADMIN
from app.uow import run_unit

UTC = dt.timezone.utc


def _agency_admin() -> bool:
    return bool((g.get("effective_roles") or set()) & {ROLE_AGENCY_OWNER, ROLE_PLATFORM_ADMIN})


def _no_tenant():
    if g.get("tenant") is None:
        flash("Choose a client business first.", "warning")
        return redirect(url_for("TenantSwitchView.choose"))
    return None


def _allow_private() -> bool:
    from app.api_webhooks import _allow_private as allowed

    return allowed()


def _drain(pairs) -> None:
    from app.jobs.webhooks import send_now

    send_now(g.tenant.slug, pairs)


class WebhooksView(BaseView):
    """Endpoints of the business (and its agency) with the delivery log."""

    route_base = "/settings/webhooks"
    class_permission_name = "Webhooks"
    default_view = "index"

    def _may_write(self) -> bool:
        return self.appbuilder.sm.has_access("can_edit", self.class_permission_name)

    def _endpoint(self, uid: str, write: bool = True):
        from app.services import webhooks as svc

        endpoint = svc.find_endpoint(db.session, uid, g.tenant.agency_id)
        if write and endpoint.scope == "agency" and not _agency_admin():
            raise ApiError("not_allowed", "only the agency changes its own endpoints", "endpoint", status=403)
        return endpoint

    @expose("/")
    @has_access
    @permission_name("list")
    def index(self):
        return self._page()

    def _page(self, secret: str | None = None, new_uid: str | None = None):
        from app.services import webhooks as svc

        if (r := _no_tenant()) is not None:
            return r
        failed_only = request.args.get("failed") == "1"
        endpoint_uid = request.args.get("ep") or None
        endpoints = svc.endpoints(db.session, agency_id=g.tenant.agency_id)
        chosen = next((e for e in endpoints if e.uid == endpoint_uid), None)
        rows = svc.deliveries(db.session, endpoint=chosen, failed_only=failed_only, limit=100)
        uids = svc.endpoint_uids(db.session, rows)
        return self.render_template(
            "webhooks.html", endpoints=[svc.endpoint_json(e) for e in endpoints],
            deliveries=[svc.delivery_json(r, uids.get((r.endpoint_scope, r.endpoint_id))) for r in rows],
            events=svc.EVENT_TYPES, failed_only=failed_only, endpoint_uid=endpoint_uid,
            may_write=self._may_write(), agency_admin=_agency_admin(), secret=secret, new_uid=new_uid)

    @expose("/deliveries/<int:delivery_id>")
    @has_access
    @permission_name("show")
    def delivery(self, delivery_id: int):
        from app.services import webhooks as svc

        if (r := _no_tenant()) is not None:
            return r
        try:
            row = svc.find_delivery(db.session, delivery_id)
        except ApiError:
            flash("No such delivery.", "warning")
            return redirect(url_for("WebhooksView.index"))
        uid = svc.endpoint_uids(db.session, [row]).get((row.endpoint_scope, row.endpoint_id))
        return self.render_template("webhook_delivery.html", d=svc.delivery_json(row, uid), may_write=self._may_write())

    def _act(self, work, done: str, pairs_of=None):
        try:
            result = run_unit(work, db.session)
        except ApiError as exc:
            if exc.status == 404:
                abort(404)  # another business's row is not found here, and nothing changed
            flash(exc.message, "danger")
            return None
        try:
            if pairs_of is not None:
                _drain(pairs_of(result))
        except (RedisError, OSError) as exc:
            flash(f"Saved; the job queue is unreachable ({exc}), deliveries start when it is back.", "warning")
        if done:
            flash(done, "success")
        return result

    @expose("/add", methods=["POST"])
    @has_access
    @permission_name("edit")
    def add(self):
        from app.services import webhooks as svc

        if (r := _no_tenant()) is not None:
            return r
        form = request.form
        agency = form.get("scope") == "agency"
        if agency and not _agency_admin():
            flash("Only the agency adds endpoints for all its businesses.", "danger")
            return redirect(url_for("WebhooksView.index"))
        result = self._act(lambda: (lambda c: (c.endpoint.uid, c.secret))(svc.create_endpoint(
            db.session, form.get("url") or "", form.getlist("events"), description=form.get("description"),
            agency_id=g.tenant.agency_id if agency else None, allow_private=_allow_private())), "")
        if result is None:
            return redirect(url_for("WebhooksView.index"))
        # The secret is shown once, on the page this redirect opens (never stored in clear).
        flash("Endpoint added. Copy its signing secret now: it is not shown again.", "success")
        return self._page(secret=result[1], new_uid=result[0])

    @expose("/<uid>/toggle", methods=["POST"])
    @has_access
    @permission_name("edit")
    def toggle(self, uid: str):
        from app.services import webhooks as svc

        def work():
            endpoint = self._endpoint(uid)
            svc.update_endpoint(db.session, endpoint, enabled=not endpoint.enabled)
            return [(endpoint.scope, endpoint.id)] if endpoint.enabled else []

        self._act(work, "Endpoint updated.", pairs_of=lambda pairs: pairs)
        return redirect(url_for("WebhooksView.index"))

    @expose("/<uid>/rotate", methods=["POST"])
    @has_access
    @permission_name("edit")
    def rotate(self, uid: str):
        from app.services import webhooks as svc

        secret = self._act(lambda: svc.rotate_secret(db.session, self._endpoint(uid)), "")
        if secret is None:
            return redirect(url_for("WebhooksView.index"))
        flash("New secret made; the old one keeps signing beside it for 24 hours.", "success")
        return self._page(secret=secret, new_uid=uid)

    @expose("/<uid>/delete", methods=["POST"])
    @has_access
    @permission_name("edit")
    def delete(self, uid: str):
        self._act(lambda: db.session.delete(self._endpoint(uid)), "Endpoint deleted.")
        return redirect(url_for("WebhooksView.index"))

    @expose("/<uid>/test", methods=["POST"])
    @has_access
    @permission_name("edit")
    def test(self, uid: str):
        from app.services import webhooks as svc

        def work():
            endpoint = self._endpoint(uid, write=False)
            svc.test_delivery(db.session, endpoint, g.tenant.slug)
            return [(endpoint.scope, endpoint.id)]

        self._act(work, "Test event queued.", pairs_of=lambda pairs: pairs)
        return redirect(url_for("WebhooksView.index", ep=uid))

    @expose("/deliveries/<int:delivery_id>/replay", methods=["POST"])
    @has_access
    @permission_name("edit")
    def replay(self, delivery_id: int):
        from app.services import webhooks as svc

        def work():
            row = svc.replay(db.session, svc.find_delivery(db.session, delivery_id))
            return [(row.endpoint_scope, row.endpoint_id)]

        self._act(work, "Delivery queued again (same webhook-id).", pairs_of=lambda pairs: pairs)
        return redirect(url_for("WebhooksView.delivery", delivery_id=delivery_id))

    @expose("/replay-failed", methods=["POST"])
    @has_access
    @permission_name("edit")
    def replay_failed(self):
        from app.services import webhooks as svc

        raw = (request.form.get("since") or "").strip()
        since = None
        if raw:
            try:
                since = dt.datetime.fromisoformat(raw)
            except ValueError:
                flash("Since: a date and time like 2027-01-11 08:00.", "danger")
                return redirect(url_for("WebhooksView.index", failed=1))
            if since.tzinfo is None:
                from zoneinfo import ZoneInfo

                since = since.replace(tzinfo=ZoneInfo(g.tenant.timezone))
        pairs = self._act(lambda: svc.replay_failed(db.session, since=since), "",
                          pairs_of=lambda pairs: pairs)
        if pairs is not None:
            flash(f"Failed deliveries queued again for {len(pairs)} endpoint(s).", "success")
        return redirect(url_for("WebhooksView.index"))


class MeetingsView(BaseView):
    """Meeting links: which appointments wait for one or failed, retry now; provider credentials."""

    route_base = "/settings/meetings"
    class_permission_name = "Meetings"
    default_view = "index"

    @expose("/")
    @has_access
    @permission_name("list")
    def index(self):
        from app.services import meetings as svc

        if (r := _no_tenant()) is not None:
            return r
        rows = db.session.scalars(
            select(m.Appointment).where(m.Appointment.meeting_status.in_(("pending", "retry", "failed")))
            .order_by(m.Appointment.start_at).limit(200)).all()
        levels = {}
        for provider in svc.PROVIDERS:
            own = svc.stored(db.session, provider, tenant_id=g.tenant.id) or {}
            agency = svc.stored(db.session, provider, agency_id=g.tenant.agency_id) or {}
            levels[provider] = {"own": own, "agency": agency}
        return self.render_template(
            "meetings_health.html", rows=rows, fields=svc.FIELDS, levels=levels,
            may_write=self.appbuilder.sm.has_access("can_edit", self.class_permission_name),
            agency_admin=_agency_admin())

    @expose("/<appointment_id>/retry", methods=["POST"])
    @has_access
    @permission_name("edit")
    def retry(self, appointment_id: str):
        from app.jobs.meetings import retry_now

        if (r := _no_tenant()) is not None:
            return r
        import uuid

        try:
            key = uuid.UUID(appointment_id)
        except ValueError:
            key = None
        if key is None or db.session.get(m.Appointment, key) is None:
            abort(404)
        try:
            retry_now(g.tenant.slug, str(key))
            flash("Trying again now.", "success")
        except (RedisError, OSError) as exc:
            flash(f"The job queue is unreachable ({exc}); try again later.", "danger")
        return redirect(url_for("MeetingsView.index"))

    @expose("/credentials/<provider>", methods=["POST"])
    @has_access
    @permission_name("edit")
    def credentials(self, provider: str):
        from app.services import meetings as svc

        if (r := _no_tenant()) is not None:
            return r
        level = request.form.get("level", "business")
        if level == "agency" and not _agency_admin():
            flash("Only the agency sets credentials for all its businesses.", "danger")
            return redirect(url_for("MeetingsView.index"))
        values = {name: request.form.get(name, "") for name, _label, _secret in svc.FIELDS.get(provider, ())}
        try:
            run_unit(lambda: svc.save_credentials(
                db.session, provider, values, **({"agency_id": g.tenant.agency_id} if level == "agency"
                                                  else {"tenant_id": g.tenant.id})), db.session)
        except ApiError as exc:
            flash(exc.message, "danger")
            return redirect(url_for("MeetingsView.index"))
        flash("Saved (secrets are stored encrypted).", "success")
        return redirect(url_for("MeetingsView.index"))


VIEWS = [
    (WebhooksView, "Webhooks", "Settings", security.TENANT_VIEWS, {"icon": "fa-paper-plane"}),
    (MeetingsView, "Meetings", "Settings", security.TENANT_VIEWS, {"icon": "fa-video-camera"}),
]
