"""Admin: a business's custom domain (set, verify, remove), for its agency owners and client admins.

Reached from the menu (Settings → Custom domain, the current business) and from the
business's edit page (any business of the agency). The rules live in
app.services.custom_domains; this view parses, checks who may manage which business,
and renders.
"""

from __future__ import annotations

import datetime as dt

from flask import abort, current_app, flash, g, redirect, request, url_for
from flask_appbuilder import BaseView, expose, has_access
from flask_appbuilder.security.decorators import permission_name

from app import security
from app.errors import ApiError
from app.extensions import db
from app.models.public import ROLE_AGENCY_OWNER, ROLE_CLIENT_ADMIN, Tenant
from app.services import custom_domains
from app.uow import discard, run_unit


def may_manage(tenant: Tenant) -> bool:
    """Platform admins, the owning agency's owners and the business's own client admins."""
    scope = g.get("scope")
    if scope is None:
        return False
    return (scope.platform or ROLE_AGENCY_OWNER in scope.agency_roles.get(tenant.agency_id, set())
            or ROLE_CLIENT_ADMIN in scope.tenant_roles.get(tenant.id, set()))


class CustomDomainView(BaseView):
    route_base = "/customdomain"
    class_permission_name = "CustomDomain"
    default_view = "current"
    base_permissions = ["can_show", "can_edit"]

    def _tenant(self, pk: int, manage: bool = False) -> Tenant:
        scope = g.get("scope")
        tenant = db.session.get(Tenant, pk)
        # Out of scope is the same 404 as unknown.
        if tenant is None or scope is None or not scope.can_see_tenant(tenant) or (manage and not may_manage(tenant)):
            abort(404)
        return tenant

    def _settings(self) -> custom_domains.CheckSettings:
        return custom_domains.CheckSettings.from_config(current_app.config)

    @expose("/")
    @has_access
    @permission_name("show")
    def current(self):
        tenant = g.get("tenant")
        if tenant is None:
            abort(404)
        return redirect(url_for("CustomDomainView.show", pk=tenant.id))

    @expose("/<int:pk>")
    @has_access
    @permission_name("show")
    def show(self, pk: int):
        tenant = self._tenant(pk)
        state = custom_domains.status_of(tenant)
        discard()
        return self.render_template("custom_domain.html", tenant=tenant, state=state, may_manage=may_manage(tenant),
                                    error=None, typed=None)

    def _refused(self, tenant: Tenant, exc: ApiError, typed: str | None = None):
        discard()
        state = custom_domains.status_of(tenant)
        return self.render_template("custom_domain.html", tenant=tenant, state=state, may_manage=True,
                                    error=exc.message, typed=typed), exc.status

    @expose("/<int:pk>/set", methods=["POST"])
    @has_access
    @permission_name("edit")
    def set(self, pk: int):
        tenant = self._tenant(pk, manage=True)
        typed = request.form.get("domain", "")
        try:
            run_unit(lambda: custom_domains.set_domain(db.session, tenant, typed, self._settings()))
        except ApiError as exc:
            return self._refused(tenant, exc, typed)
        flash(f"Publish the token at {custom_domains.status_of(tenant)['publish_at']}, then verify.", "info")
        return redirect(url_for("CustomDomainView.show", pk=pk), 303)

    @expose("/<int:pk>/verify", methods=["POST"])
    @has_access
    @permission_name("edit")
    def verify(self, pk: int):
        tenant = self._tenant(pk, manage=True)
        domain, token = tenant.custom_domain, tenant.custom_domain_token
        discard()  # no transaction open while the domain answers
        if not domain or not token:
            abort(404)
        try:
            custom_domains.check_published(domain, token, self._settings())
            run_unit(lambda: custom_domains.mark_verified(db.session, self._tenant(pk, manage=True), domain, token,
                                                          dt.datetime.now(dt.timezone.utc)))
        except ApiError as exc:
            return self._refused(self._tenant(pk, manage=True), exc)
        flash(f"{domain} is verified: links of this business now use https://{domain}.", "success")
        return redirect(url_for("CustomDomainView.show", pk=pk), 303)

    @expose("/<int:pk>/remove", methods=["POST"])
    @has_access
    @permission_name("edit")
    def remove(self, pk: int):
        tenant = self._tenant(pk, manage=True)
        run_unit(lambda: custom_domains.remove_domain(db.session, tenant))
        flash("Custom domain removed: links use the platform's address again.", "success")
        return redirect(url_for("CustomDomainView.show", pk=pk), 303)


VIEWS = [
    (CustomDomainView, "Custom domain", "Settings", security.TENANT_VIEWS, {"icon": "fa-globe"}),
]
