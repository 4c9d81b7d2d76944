"""People in the admin: invitations, staff log-ins, a staff member's own profile,
and the public account pages (accept an invitation, forgot / reset password).
"""

from __future__ import annotations

from flask import abort, flash, g, redirect, request, url_for
from flask_appbuilder import BaseView, expose, has_access

from app.views.base import ModelView
from flask_appbuilder.models.sqla.filters import FilterEqualFunction
from app.views.base import Interface
from flask_appbuilder.security.decorators import permission_name
from sqlalchemy import select

from app import security
from app.extensions import db
from app.models import tenant as tm
from app.models.public import AccessToken, Agency, Tenant
from app.services import invitations as inv
from app.services.people import PeopleError
from app.uow import run_unit


def _scope() -> security.Scope:
    scope = g.get("scope")
    if scope is None:
        abort(403)
    return scope


def _current_tenant() -> Tenant:
    ref = g.get("tenant")
    tenant = db.session.get(Tenant, ref.id) if ref is not None else None
    if tenant is None:
        abort(404)
    return tenant


def _places(scope: security.Scope) -> list[tuple[str, str]]:
    """Scope choices of the invite form: agencies the user owns, then businesses they manage."""
    choices = []
    if scope.platform:
        agencies = list(db.session.scalars(select(Agency).order_by(Agency.name)))
    else:
        owned = [a for a, roles in scope.agency_roles.items() if security.ROLE_AGENCY_OWNER in roles]
        agencies = list(db.session.scalars(select(Agency).where(Agency.id.in_(owned or [-1])).order_by(Agency.name)))
    choices += [(f"agency:{a.id}", f"Agency: {a.name}") for a in agencies]
    for tenant in g.get("visible_tenants", []):
        if inv.manages_tenant(scope, tenant):
            choices.append((f"tenant:{tenant.id}", f"Business: {tenant.name}"))
    return choices


def _target_from_form(form) -> inv.Target:
    kind, _, ident = (form.get("scope") or "").partition(":")
    role = form.get("role") or ""
    try:
        ident_id = int(ident) if ident else None
        staff_id = int(form["staff_id"]) if form.get("staff_id") else None
    except ValueError:
        raise PeopleError("choose a scope from the list", "scope")
    if kind not in ("agency", "tenant", ""):
        raise PeopleError("choose a scope from the list", "scope")
    return inv.Target(
        role=role,
        agency_id=ident_id if kind == "agency" else None,
        tenant_id=ident_id if kind == "tenant" else None,
        staff_id=staff_id,
    )


class InvitationsView(BaseView):
    """Pending invitations of this business and agency-level ones the user manages: invite, revoke."""

    route_base = "/invitations"
    class_permission_name = "Invitations"
    default_view = "list"

    def _pending(self):
        ref = g.get("tenant")
        ids = inv.pending_invitations_query(_scope(), ref.id if ref else None)
        rows = list(db.session.scalars(select(AccessToken).where(AccessToken.id.in_(ids)).order_by(AccessToken.created_at.desc())))
        names = {t.id: t.name for t in db.session.scalars(select(Tenant).where(Tenant.id.in_({r.tenant_id for r in rows} or {-1})))}
        names_a = {a.id: a.name for a in db.session.scalars(select(Agency).where(Agency.id.in_({r.agency_id for r in rows} or {-1})))}
        return [
            (r, names.get(r.tenant_id) or names_a.get(r.agency_id) or "platform") for r in rows
        ]

    def _staff_choices(self):
        if g.get("tenant") is None:
            return []
        return list(db.session.scalars(select(tm.Staff).where(tm.Staff.user_id.is_(None)).order_by(tm.Staff.name)))

    def _render(self, values=None, status=200):
        scope = _scope()
        page = self.render_template(
            "people_invitations.html", rows=self._pending(), roles=inv.roles_for(scope), places=_places(scope),
            staff=self._staff_choices(), values=values or {}, current=g.get("tenant"),
            may_invite=self.appbuilder.sm.has_access("can_add", self.class_permission_name),
            may_revoke=self.appbuilder.sm.has_access("can_delete", self.class_permission_name),
        )
        return page, status

    @expose("/")
    @has_access
    def list(self):
        return self._render()

    @expose("/new", methods=["POST"])
    @has_access
    @permission_name("add")
    def invite(self):
        scope = _scope()
        try:
            target = _target_from_form(request.form)
            current = g.get("tenant")
            row = run_unit(lambda: inv.invite_staff(db.session, scope, g.user.id, current.id if current else None,
                                                    request.form.get("email", ""), target))
        except PeopleError as exc:
            flash(str(exc), "danger")
            return self._render(request.form, 400)
        flash(f"Invitation sent to {row.email}.", "success")
        return redirect(url_for("InvitationsView.list"))

    @expose("/<int:token_id>/revoke", methods=["POST"])
    @has_access
    @permission_name("delete")
    def revoke(self, token_id):
        scope = _scope()
        ref = g.get("tenant")
        visible = inv.pending_invitations_query(scope, ref.id if ref else None)
        token = db.session.scalar(select(AccessToken).where(AccessToken.id == token_id, AccessToken.id.in_(visible)))
        if token is None:
            abort(404)
        try:
            run_unit(lambda: inv.revoke(db.session, scope, token))
        except PeopleError as exc:
            flash(str(exc), "danger")
            return redirect(url_for("InvitationsView.list"))
        flash("Invitation revoked.", "success")
        return redirect(url_for("InvitationsView.list"))


class StaffAccountsView(BaseView):
    """Which staff records of this business have a log-in; link, invite or unlink."""

    route_base = "/staffaccounts"
    class_permission_name = "StaffAccounts"
    default_view = "list"

    @expose("/")
    @has_access
    def list(self):
        tenant = _current_tenant()
        staff = list(db.session.scalars(select(tm.Staff).order_by(tm.Staff.name)))
        user_model = self.appbuilder.sm.user_model
        ids = {s.user_id for s in staff if s.user_id}
        users = {u.id: u for u in db.session.scalars(select(user_model).where(user_model.id.in_(ids or {-1})))}
        return self.render_template(
            "people_staff_accounts.html", tenant=tenant, staff=staff, users=users,
            may_edit=self.appbuilder.sm.has_access("can_edit", self.class_permission_name),
        )

    def _finish(self, call, done: str):
        try:
            run_unit(call)
            flash(done, "success")
        except PeopleError as exc:
            flash(str(exc), "danger")
        return redirect(url_for("StaffAccountsView.list"))

    def _staff(self, staff_id: int) -> tm.Staff:
        staff = db.session.get(tm.Staff, staff_id)
        if staff is None:
            abort(404)
        return staff

    @expose("/<int:staff_id>/link", methods=["POST"])
    @has_access
    @permission_name("edit")
    def link(self, staff_id):
        tenant, staff = _current_tenant(), self._staff(staff_id)
        name = (request.form.get("username") or "").strip()
        return self._finish(lambda: inv.link_staff_login(db.session, _scope(), tenant, staff.id, name),
                            f"{staff.name} now logs in as {name}.")

    @expose("/<int:staff_id>/invite", methods=["POST"])
    @has_access
    @permission_name("edit")
    def invite(self, staff_id):
        tenant, staff = _current_tenant(), self._staff(staff_id)
        email = (request.form.get("email") or staff.email or "").strip()
        target = inv.Target(security.ROLE_STAFF, tenant_id=tenant.id, staff_id=staff.id)
        return self._finish(lambda: inv.invite(db.session, _scope(), g.user.id, email, target),
                            f"Invitation sent to {email}.")

    @expose("/<int:staff_id>/unlink", methods=["POST"])
    @has_access
    @permission_name("edit")
    def unlink(self, staff_id):
        tenant, staff = _current_tenant(), self._staff(staff_id)
        return self._finish(lambda: inv.unlink_staff(db.session, _scope(), tenant, staff.id),
                            f"{staff.name} no longer has a log-in.")


class MyProfileView(ModelView):
    """A staff member's own profile; the filter narrows every query to their own staff row."""

    datamodel = Interface(tm.Staff)
    class_permission_name = "MyProfile"
    route_base = "/myprofile"
    base_permissions = ["can_list", "can_show", "can_edit"]
    list_columns = ["name", "email", "phone", "active"]
    show_columns = ["name", "email", "phone", "bio", "photo_url", "services", "locations"]
    edit_columns = ["phone", "bio", "photo_url"]
    search_columns = ["name"]
    base_filters = [["id", FilterEqualFunction, lambda: security.current_staff_id() or -1]]


class AccountView(BaseView):
    """Public pages behind the links in account mail; no log-in needed, the token is the proof."""

    route_base = "/account"
    class_permission_name = "Account"
    default_view = "forgot"

    def create_blueprint(self, appbuilder, *args, **kwargs):
        # The sign-in page gains a "forgot password" link: FAB's own template plus one line.
        login_view = appbuilder.sm.auth_view
        if getattr(login_view, "login_template", "") == "appbuilder/general/security/login_db.html":
            login_view.login_template = "people_login.html"
        return super().create_blueprint(appbuilder, *args, **kwargs)

    def _message(self, title: str, text: str, status: int = 200):
        return self.render_template("people_message.html", title=title, text=text), status

    @expose("/accept/<token>", methods=["GET", "POST"])
    def accept(self, token):
        try:
            row = inv.find_token(db.session, AccessToken.KIND_INVITE, token)
        except PeopleError as exc:
            return self._message("Invitation", str(exc), 404)
        existing = inv.user_by_email(db.session, row.email)
        if request.method == "POST":
            form = request.form
            try:
                user = run_unit(lambda: inv.accept(db.session, token, form.get("username"), form.get("password"), form.get("confirm")))
            except PeopleError as exc:
                flash(str(exc), "danger")
                return self.render_template("people_accept.html", invite=row, existing=existing, values=form), 400
            flash(f"Welcome, {user.username}. Sign in to start.", "success")
            return redirect(self.appbuilder.get_url_for_login)
        return self.render_template("people_accept.html", invite=row, existing=existing,
                                    values={"username": row.email.split("@")[0]})

    @expose("/forgot", methods=["GET", "POST"])
    def forgot(self):
        if request.method == "POST":
            run_unit(lambda: inv.request_reset(db.session, request.form.get("email", "")))
            # The same answer whether or not the address is known, so nobody can probe for accounts.
            return self._message("Check your mail", "If an account uses this address, a link to choose a new password is on its way.")
        return self.render_template("people_forgot.html")

    @expose("/reset/<token>", methods=["GET", "POST"])
    def reset(self, token):
        try:
            inv.find_token(db.session, AccessToken.KIND_RESET, token)
        except PeopleError as exc:
            return self._message("Password reset", str(exc), 404)
        if request.method == "POST":
            try:
                run_unit(lambda: inv.reset_password(db.session, token, request.form.get("password", ""), request.form.get("confirm")))
            except PeopleError as exc:
                flash(str(exc), "danger")
                return self.render_template("people_reset.html"), 400
            flash("Your password is changed. Sign in with it.", "success")
            return redirect(self.appbuilder.get_url_for_login)
        return self.render_template("people_reset.html")


VIEWS = [
    (InvitationsView, "Invitations", "Settings", security.TENANT_VIEWS, {"icon": "fa-envelope"}),
    (StaffAccountsView, "Staff log-ins", "Team", security.TENANT_VIEWS, {"icon": "fa-user-plus"}),
    (MyProfileView, "My profile", "Me", security.STAFF_VIEWS, {"icon": "fa-user"}),
]
NO_MENU = [(AccountView, security.SWITCH_VIEWS)]
