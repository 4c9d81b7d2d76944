"""Dashboard home per role, the analytics page of a business and the agency rollup page.

- Agency owner: every business of the agency (last 30 days against the 30 before) and
  the ones needing attention; then the current business as a client admin sees it.
- Client admin: today's appointments, the next 7 days, alerts, the month's key figures.
- Staff: their own appointments today with the customer's details and meeting links;
  "attended" marks one completed (through booking.set_status).
- Auditor: the same figures, read-only.
The home is the landing page of signed-in users (FAB_INDEX_VIEW = HomeIndexView).
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from flask import abort, current_app, flash, g, redirect, request, url_for
from flask_appbuilder import BaseView, expose, has_access
from flask_appbuilder.security.decorators import permission_name
from flask_appbuilder.views import IndexView

from app import security
from app.errors import ApiError
from app.extensions import db
from app.models.public import ROLE_AGENCY_OWNER, ROLE_AUDITOR
from app.replica import read_session
from app.services import analytics, booking
from app.services import calendar as cal
from app.services import dashboards
from app.uow import run_unit

UTC = dt.timezone.utc


def _now() -> dt.datetime:
    return dt.datetime.now(UTC)


def _checklist():
    """The getting-started checklist of an empty business, when the admin home provides one."""
    fn = current_app.jinja_env.globals.get("home_checklist")
    try:
        return fn() if fn else None
    except Exception:  # noqa: BLE001 - the checklist is a hint; the dashboard must still open
        return None


def _rollup_for_agencies(agency_ids, now: dt.datetime) -> dict | None:
    if not agency_ids:
        return None
    today = now.date()
    tenants = []
    for agency_id in sorted(agency_ids):
        tenants += analytics.agency_tenants(db.session, agency_id)
    return analytics.recent_agency_rollup(db.session, tenants, today - dt.timedelta(days=29), today, now,
                                          current_app.config.get("AGENCY_ROLLUP_CACHE_SECONDS", 0))


# Where an alert is dealt with: (endpoint, permission, view) per alert kind.
ALERT_PAGES = {
    "calendar_sync": ("CalendarConnectionsView.index", "can_index", "CalendarConnections"),
    "notifications": ("FailedJobsView.list", "can_list", "NotificationFailures"),
}


def _with_links(appbuilder, alerts: list[dict]) -> list[dict]:
    """Each alert with the address of the page that deals with it, when this user may open that page."""
    for alert in alerts:
        page = ALERT_PAGES.get(alert["kind"])
        if page and appbuilder.sm.has_access(page[1], page[2]):
            alert["url"] = url_for(page[0])
    return alerts


def home_context(appbuilder) -> dict:
    """What the dashboard home shows the current user, by role (see the module docstring)."""
    now = _now()
    scope = g.get("scope")
    roles = g.get("effective_roles") or set()
    tenant = g.get("tenant")
    staff_only = security.is_staff_only()
    rollup = None
    if scope is not None and (ROLE_AGENCY_OWNER in roles or ROLE_AUDITOR in roles) and scope.agency_ids:
        rollup = _rollup_for_agencies(scope.agency_ids, now)
    context = {"rollup": rollup, "staff_only": staff_only, "tenant": tenant, "now": now}
    if tenant is not None:
        tz = tenant.timezone
        today = now.astimezone(ZoneInfo(tz)).date()
        only = (security.current_staff_id() or -1) if staff_only else None
        context.update(tz=tz, today=today, appointments=dashboards.day_appointments(db.session, today, tz, only))
        context["may_act"] = appbuilder.sm.has_access("can_act", "Calendar")
        if not staff_only:
            r = analytics.Range(today - dt.timedelta(days=29), today)
            context.update(
                upcoming=dashboards.upcoming_count(db.session, now),
                alerts=_with_links(appbuilder, dashboards.alerts(db.session, now)),
                checklist=_checklist(),
            )
            # The month's figures may be a few seconds stale: the replica's, when one is configured.
            with read_session(tenant.schema) as figures:
                context.update(analytics.home_figures(figures, tenant, r, now))
    return context


class HomeIndexView(IndexView):
    """The site's index: a signed-in user's index page is their dashboard (anonymous: FAB's page)."""

    @expose("/")
    def index(self):
        user = g.get("user")
        if user is not None and getattr(user, "is_authenticated", False):
            self.update_redirect()
            return self.render_template("dash_home.html", **home_context(self.appbuilder))
        return super().index()


class DashboardView(BaseView):
    route_base = "/dashboard"
    class_permission_name = "Dashboard"
    default_view = "home"

    @expose("/")
    @has_access
    @permission_name("list")
    def home(self):
        return self.render_template("dash_home.html", **home_context(self.appbuilder))

    @expose("/attended/<appointment_id>", methods=["POST"])
    @has_access
    @permission_name("list")
    def attended(self, appointment_id):
        """Mark one of today's appointments completed (staff: their own only; auditors cannot)."""
        if g.get("tenant") is None or not self.appbuilder.sm.has_access("can_act", "Calendar"):
            abort(403)  # auditors read only (the page shows them no button)
        only = (security.current_staff_id() or -1) if security.is_staff_only() else None
        actor = f"{'staff' if only is not None else 'admin'}:{g.user.username}"

        def work():
            appt = cal.load(db.session, appointment_id, only)
            return booking.set_status(db.session, g.tenant, actor, appt, "completed")

        try:
            run_unit(work, db.session, retry=True)
            flash("Marked as attended.", "success")
        except ApiError as exc:
            flash(exc.message, "danger")
            if exc.status == 404:
                return redirect(url_for("DashboardView.home")), 404
        return redirect(url_for("DashboardView.home"))


class AnalyticsView(BaseView):
    route_base = "/analytics"
    class_permission_name = "AnalyticsPage"
    default_view = "page"

    @expose("/")
    @has_access
    @permission_name("list")
    def page(self):
        from sqlalchemy import select

        from app.models import tenant as m

        if g.get("tenant") is None:
            return redirect(url_for("TenantSwitchView.choose"))
        try:
            r = analytics.parse_range(request.args, _now().astimezone(ZoneInfo(g.tenant.timezone)).date())
        except ApiError as exc:
            flash(exc.message, "danger")
            r = analytics.parse_range({}, _now().date())
        choices = {
            "location": list(db.session.execute(select(m.Location.key, m.Location.name).order_by(m.Location.name))),
            "staff": list(db.session.execute(select(m.Staff.key, m.Staff.name).order_by(m.Staff.name))),
            "service": list(db.session.execute(select(m.Service.key, m.Service.name).order_by(m.Service.name))),
        }
        return self.render_template("dash_analytics.html", r=r, choices=choices, tenant=g.tenant,
                                    metrics=analytics.FIGURES, previous=r.previous())

    @expose("/agency")
    @has_access
    @permission_name("list")
    def agency(self):
        scope = g.get("scope")
        if scope is None or not scope.agency_ids:
            flash("The agency overview is for agency owners and auditors.", "warning")
            return redirect(url_for("DashboardView.home"))
        try:
            r = analytics.parse_range(request.args, _now().date())
        except ApiError as exc:
            flash(exc.message, "danger")
            r = analytics.parse_range({}, _now().date())
        tenants = []
        for agency_id in sorted(scope.agency_ids):
            tenants += analytics.agency_tenants(db.session, agency_id)
        rollup = analytics.recent_agency_rollup(db.session, tenants, r.date_from, r.date_to, _now(),
                                                current_app.config.get("AGENCY_ROLLUP_CACHE_SECONDS", 0))
        return self.render_template("dash_agency.html", rollup=rollup, r=r)


VIEWS = [
    (DashboardView, "Dashboard", "Dashboard", security.SWITCH_VIEWS, {"icon": "fa-tachometer"}),
    (AnalyticsView, "Analytics", "Dashboard", security.TENANT_VIEWS, {"icon": "fa-bar-chart"}),
]
