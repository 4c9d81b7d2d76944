"""Admin: Team → Calendar connections (every connection of the business) and Me → My calendar (own only).

Both pages call the same service (`app.services.calendar_sync`) and write through
`app.uow.run_unit`. A connection id that is not in the current business (or, for
the Staff role, not the user's own) is a 404, like any other id.
"""

from __future__ import annotations

import datetime as dt
import secrets

from flask import abort, current_app, flash, g, redirect, request, session as web_session, url_for
from flask_appbuilder import BaseView, expose, has_access
from sqlalchemy import select

from app import security
from app.extensions import db
from app.models import tenant as m
from app.uow import run_unit

UTC = dt.timezone.utc


def _now() -> dt.datetime:
    return dt.datetime.now(UTC)


def _cfg():
    from app.services.calendar_sync import SyncConfig

    return SyncConfig.from_config(current_app.config)


class _CalendarPages(BaseView):
    """Shared pages; `own_only` narrows everything to the signed-in staff member's connections."""

    route_base = "/calendar-connections"
    default_view = "index"
    own_only = False
    template = "calendar_connections.html"

    def _staff_scope(self) -> int | None:
        if self.own_only or security.is_staff_only():
            sid = security.current_staff_id()
            if sid is None:
                abort(404)
            return sid
        return None

    def _conn(self, connection_id: int):
        from app.services.calendar_sync import CalendarError, connection_for

        try:
            return connection_for(db.session, connection_id, staff_id=self._staff_scope())
        except CalendarError:
            abort(404)

    def _back(self):
        return redirect(url_for(f"{type(self).__name__}.index"))

    @expose("/")
    @has_access
    def index(self):
        from app.services import calendar_sync as cal

        if g.get("tenant") is None:
            flash("Choose a client business first.", "warning")
            return redirect(url_for("TenantSwitchView.choose"))
        sid = self._staff_scope()
        rows = run_unit(lambda: cal.health(db.session, _now(), staff_id=sid), db.session)
        staff = list(db.session.scalars(select(m.Staff).where(
            m.Staff.id == sid if sid is not None else m.Staff.active.is_(True)).order_by(m.Staff.name)))
        locations = [] if sid is not None else list(db.session.scalars(select(m.Location).order_by(m.Location.name)))
        prefs = cal.settings(db.session)
        apps = None
        if sid is None and not self.own_only and _agency_admin():
            apps = {p: cal.describe_agency_app(db.session, g.tenant.agency_id, p) for p in cal.APP_KINDS}
        return self.render_template(self.template, rows=rows, staff=staff, locations=locations, prefs=prefs,
                                    own_only=sid is not None, view=type(self).__name__, form=request.args, apps=apps)

    @expose("/caldav", methods=["POST"])
    @has_access
    def caldav(self):
        from app.services import calendar_sync as cal

        sid = self._staff_scope()
        f = request.form
        owner = "staff" if sid is not None else f.get("owner", "staff")

        def work():
            return cal.connect_caldav(
                db.session, owner_kind=owner.split(":")[0],
                staff_id=sid if sid is not None else _int(f.get("staff_id")),
                location_id=_int(f.get("location_id")), url=f.get("url", ""), username=f.get("username", ""),
                password=f.get("password", ""), busy=[b.strip() for b in f.get("busy", "").split(",") if b.strip()],
                target=f.get("target") or None, actor=g.user.username if g.get("user") else "admin", cfg=_cfg())

        try:
            run_unit(work, db.session)
        except cal.CalendarError as exc:
            flash(f"{exc.field or 'calendar'}: {exc.message}", "danger")
            return redirect(url_for(f"{type(self).__name__}.index", url=f.get("url", ""), username=f.get("username", ""),
                                    target=f.get("target", ""), busy=f.get("busy", "")))
        flash("Calendar connected.", "success")
        return self._back()

    @expose("/<int:connection_id>/caldav", methods=["POST"])
    @has_access
    def caldav_update(self, connection_id: int):
        """Change a CalDAV connection's URL, user or app password in place (empty fields keep what is stored)."""
        from app.services import calendar_sync as cal

        conn = self._conn(connection_id)
        f = request.form
        try:
            run_unit(lambda: cal.reconnect_caldav(db.session, conn, url=f.get("url"), username=f.get("username"),
                                                  password=f.get("password"), cfg=_cfg(), now=_now()), db.session)
        except cal.CalendarError as exc:
            flash(f"{exc.field or 'calendar'}: {exc.message}", "danger")
            return self._back()
        flash("CalDAV connection updated; it is active again.", "success")
        return self._back()

    @expose("/oauth/<provider>", methods=["POST"])
    @has_access
    def oauth_start(self, provider: str):
        """Send the user to Google / Microsoft to grant access (state ties the answer to this request)."""
        from app.calendars import oauth
        from app.calendars.base import ProviderError

        if provider not in ("google", "microsoft"):
            abort(404)
        from app.services import calendar_sync as cal

        sid = self._staff_scope()
        f = request.form
        state = secrets.token_urlsafe(24)
        # The agency's own app when it has one, else the platform's; the callback uses the same one.
        app = cal.current_app_for(db.session, provider, _cfg(), g.tenant.agency_id)
        web_session["calendar_oauth"] = {
            "state": state, "provider": provider, "tenant": g.tenant.slug, "view": type(self).__name__,
            "owner": "staff" if sid is not None else f.get("owner", "staff"),
            "staff_id": sid if sid is not None else _int(f.get("staff_id")), "location_id": _int(f.get("location_id")),
            "reconnect": _int(f.get("reconnect")), "app": app.source, "client_id": app.client_id}
        try:
            return redirect(oauth.authorize_url(provider, app.config(_cfg()), self._callback_url(), state))
        except ProviderError as exc:
            flash(str(exc), "danger")
            return self._back()

    def _callback_url(self) -> str:
        base = (current_app.config.get("PUBLIC_URL") or request.host_url).rstrip("/")
        return base + url_for(f"{type(self).__name__}.oauth_callback")

    @expose("/<int:connection_id>/sync", methods=["POST"])
    @has_access
    def sync_now(self, connection_id: int):
        from app.jobs import calendar_sync as jobs

        conn = self._conn(connection_id)
        result = jobs.sync(g.tenant.slug, conn.id)
        if result.get("error"):
            flash(f"Sync finished with an error: {result['error']}", "danger")
        else:
            flash(f"Synced: {result['pulled_events']} changed event(s) read, {result['pushed']} appointment(s) written.",
                  "success")
        return self._back()

    @expose("/<int:connection_id>/disconnect", methods=["POST"])
    @has_access
    def disconnect(self, connection_id: int):
        from app.services import calendar_sync as cal

        conn = self._conn(connection_id)
        remove = request.form.get("our_events") == "remove"
        removed = run_unit(lambda: cal.disconnect(db.session, conn, remove_future_events=remove, cfg=_cfg(), now=_now()),
                           db.session)
        flash(f"Disconnected; {removed} of our future events removed there." if remove
              else "Disconnected; our events there were left as they are.", "success")
        return self._back()

    @expose("/feed", methods=["POST"])
    @has_access
    def feed(self):
        """A new private subscription URL for a staff member (the old one stops working), or revoke it."""
        from app.services import calendar_sync as cal

        sid = self._staff_scope() if self.own_only or security.is_staff_only() else _int(request.form.get("staff_id"))
        if sid is None or db.session.get(m.Staff, sid) is None:
            abort(404)
        if request.form.get("action") == "revoke":
            run_unit(lambda: cal.revoke_feeds(db.session, staff_id=sid), db.session)
            flash("The subscription URL was revoked.", "success")
            return self._back()
        token = run_unit(lambda: cal.create_feed(db.session, staff_id=sid), db.session)
        base = (current_app.config.get("PUBLIC_URL") or request.host_url).rstrip("/")
        url = f"{base}/hooks/calendar/feed/{g.tenant.slug}/{token}.ics"
        flash(f"Subscription URL (shown once; any earlier one stops working): {url} — "
              f"webcal: {url.replace('https://', 'webcal://').replace('http://', 'webcal://')}", "success")
        return self._back()

    @expose("/<int:connection_id>/calendars", methods=["POST"])
    @has_access
    def pick(self, connection_id: int):
        from app.services import calendar_sync as cal

        conn = self._conn(connection_id)
        f = request.form

        def work():
            available = cal.client_for(db.session, conn, _cfg()).calendars()
            cal.choose_calendars(conn, available, f.getlist("busy") or None, f.get("target") or None)
            conn.include_tentative = bool(f.get("include_tentative"))
            conn.sync_state = {}  # busy calendars changed: next pull lists them in full
            conn.next_pull_at = _now()

        try:
            run_unit(work, db.session)
            flash("Calendars saved.", "success")
        except (cal.CalendarError, cal.ProviderError) as exc:
            flash(str(exc), "danger")
        return self._back()

    @expose("/oauth/callback")
    @has_access
    def oauth_callback(self):
        """The provider sends the user back here with ?code&state."""
        from app.calendars import oauth
        from app.calendars.base import ProviderError
        from app.services import calendar_sync as cal

        pending = web_session.pop("calendar_oauth", None)
        if not pending or request.args.get("state") != pending.get("state") or g.get("tenant") is None \
                or g.tenant.slug != pending.get("tenant"):
            abort(400)
        back = redirect(url_for(f"{pending['view']}.index"))
        if request.args.get("error") or not request.args.get("code"):
            flash(f"The calendar was not connected: {request.args.get('error', 'no code')}", "danger")
            return back
        cfg = _cfg()
        provider = pending["provider"]
        app = cal.agency_app(db.session, provider, g.tenant.agency_id) if pending.get("app") == "agency" \
            else cal.platform_app(provider, cfg)
        if app is None or app.client_id != pending.get("client_id"):
            flash("The calendar was not connected: the agency's app changed during sign-in; try again.", "danger")
            return back
        try:
            tokens = oauth.exchange_code(provider, app.config(cfg), request.args["code"], self._callback_url())

            def work():
                existing = None
                if pending.get("reconnect"):
                    existing = cal.connection_for(db.session, pending["reconnect"], staff_id=self._staff_scope())
                return cal.connect_oauth(db.session, provider=pending["provider"], owner_kind=pending["owner"],
                                         staff_id=pending.get("staff_id"), location_id=pending.get("location_id"),
                                         tokens=tokens, account=oauth.account_of(tokens), cfg=cfg, existing=existing,
                                         actor=g.user.username if g.get("user") else "admin", app=app).id

            run_unit(work, db.session)
        except (ProviderError, cal.CalendarError) as exc:
            flash(f"The calendar was not connected: {exc}", "danger")
            return back
        flash("Calendar connected.", "success")
        return back


def _int(value) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


class CalendarConnectionsView(_CalendarPages):
    """Team → Calendar connections: every connection of the business, the settings, the OAuth callback."""

    class_permission_name = "CalendarConnections"
    route_base = "/calendar-connections"

    @expose("/settings", methods=["POST"])
    @has_access
    def save_settings(self):
        from app.services import calendar_sync as cal

        if security.is_staff_only():
            abort(404)
        f = request.form

        def work():
            prefs = cal.settings(db.session)
            if f.get("external_changes") in ("reflect", "ignore"):
                prefs.external_changes = f["external_changes"]
            if f.get("privacy") in ("details", "busy"):
                prefs.privacy = f["privacy"]
            prefs.title_template = (f.get("title_template") or prefs.title_template)[:500]
            prefs.description_template = f.get("description_template") or prefs.description_template
            prefs.failing_alert_minutes = max(5, _int(f.get("failing_alert_minutes")) or prefs.failing_alert_minutes)

        run_unit(work, db.session)
        flash("Calendar settings saved.", "success")
        return self._back()


    @expose("/apps/<provider>", methods=["POST"])
    @has_access
    def agency_app(self, provider: str):
        """The agency's own Google / Microsoft app (agency owners and platform admins only)."""
        from app.services import calendar_sync as cal

        if not _agency_admin():
            abort(403)
        if g.get("tenant") is None or provider not in cal.APP_KINDS:
            abort(404)
        from app.jobs.calendar_sync import check_agency_apps

        f = request.form
        agency_id = g.tenant.agency_id
        try:
            if f.get("action") == "remove":
                run_unit(lambda: cal.remove_agency_app(db.session, agency_id, provider), db.session)
                said = f"The agency's {provider} app was removed; new connections use the platform's."
            else:
                run_unit(lambda: cal.set_agency_app(db.session, agency_id, provider, client_id=f.get("client_id", ""),
                                                    client_secret=f.get("client_secret"),
                                                    ms_tenant=f.get("ms_tenant")), db.session)
                said = f"The agency's {provider} app was saved (the secret is stored encrypted)."
        except cal.CalendarError as exc:
            flash(f"{exc.field or 'app'}: {exc.message}", "danger")
            return self._back()
        marked = check_agency_apps(agency_id)  # its businesses' connections that app no longer serves
        flash(f"{said} {marked} connection(s) of the agency's businesses now need a reconnect." if marked else said,
              "success")
        return self._back()


def _agency_admin() -> bool:
    from app.models.public import ROLE_AGENCY_OWNER, ROLE_PLATFORM_ADMIN

    return bool((g.get("effective_roles") or set()) & {ROLE_AGENCY_OWNER, ROLE_PLATFORM_ADMIN})


class MyCalendarView(_CalendarPages):
    """Me → My calendar: the staff member's own connections only."""

    class_permission_name = "MyCalendar"
    route_base = "/my-calendar"
    own_only = True


VIEWS = [
    (CalendarConnectionsView, "Calendar connections", "Team", security.TENANT_VIEWS, {"icon": "fa-calendar-check-o"}),
    (MyCalendarView, "My calendar", "Me", security.STAFF_VIEWS, {"icon": "fa-calendar-check-o"}),
]
