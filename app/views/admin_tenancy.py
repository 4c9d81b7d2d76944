"""Agencies, client businesses, people and API keys; the tenant switcher."""

from __future__ import annotations

import re

from flask import abort, flash, g, jsonify, redirect, request, session as web_session, url_for
from flask_appbuilder import BaseView, expose, has_access

from app.views.base import ModelView
from flask_appbuilder.security.decorators import permission_name
from flask_appbuilder.actions import action
from flask_appbuilder.models.sqla.filters import FilterEqualFunction, FilterInFunction
from app.views.base import FieldRefused, FormModelView, Interface, time_zone_field, titles
from sqlalchemy import select
from wtforms import DateField, SelectField, StringField
from wtforms.validators import DataRequired, Optional, Regexp

from app import security
from app.headers import no_line_breaks, single_address
from app.extensions import db
from app.models.public import SLUG_PATTERN, Agency, ApiKey, Membership, Tenant
from app.uow import discard, run_unit


def slug_from_name(name: str) -> str:
    """'Nails & Co. Wien' -> 'nails_co_wien' (the rule of a short name; a leading digit gets a 'b')."""
    import unicodedata

    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    slug = re.sub(r"[^a-z0-9]+", "_", plain).strip("_")[:40] or "business"
    return slug if slug[0].isalpha() else f"b{slug}"[:40]


def _visible_tenant_ids() -> list[int]:
    return [t.id for t in g.get("visible_tenants", [])] or [-1]


def _own_agency_ids() -> list[int]:
    scope = g.get("scope")
    if scope is not None and scope.platform:
        return list(db.session.scalars(select(Agency.id))) or [-1]
    owned = [a for a, roles in (scope.agency_roles.items() if scope else ()) if security.ROLE_AGENCY_OWNER in roles]
    return owned or [-1]


def _current_tenant_id() -> int:
    tenant = g.get("tenant")
    return tenant.id if tenant else -1


def _set_status(items, status: str) -> None:
    for item in items if isinstance(items, list) else [items]:
        item.status = status


class AgencyView(FormModelView):
    locals().update(titles("agency", "Agencies"))
    datamodel = Interface(Agency)
    class_permission_name = "Agencies"
    list_columns = ["name", "slug", "created_at"]
    add_columns = edit_columns = ["name", "slug", "sender_name", "primary_color", "logo_url"]
    show_columns = ["name", "slug", "sender_name", "primary_color", "logo_url", "created_at"]
    search_columns = ["name", "slug"]
    validators_columns = {"slug": [DataRequired(), Regexp(r"^[a-z][a-z0-9_-]{1,40}$")],
                          "sender_name": [no_line_breaks], "name": [no_line_breaks]}


class TenantView(FormModelView):
    """Client businesses of the agencies the user may see; creating one provisions its schema."""

    locals().update(titles("client business", "Client businesses"))
    label_columns = {"slug": "Short name", "timezone": "Time zone", "locale": "Language", "schema_version": "Database version"}
    description_columns = {
        "slug": "Used in links and the widget: lower-case letters, digits and _, starting with a letter. "
                "Leave empty to derive it from the name.",
        "currency": "Three letters, e.g. EUR.",
    }

    datamodel = Interface(Tenant, optional=("slug",))
    class_permission_name = "Tenants"
    list_columns = ["name", "slug", "agency", "status", "timezone", "currency", "locale"]
    show_columns = [
        "name", "slug", "agency", "status", "timezone", "currency", "locale", "schema_version", "logo_url",
        "primary_color", "accent_color", "font_family", "sender_name", "reply_to", "contact_email", "contact_phone",
    ]
    add_columns = ["agency", "name", "slug", "timezone", "currency", "locale"]
    edit_columns = [
        "name", "timezone", "currency", "locale", "logo_url", "primary_color", "accent_color", "font_family",
        "sender_name", "reply_to", "contact_email", "contact_phone",
    ]
    search_columns = ["name", "slug", "status", "agency"]
    add_form_extra_fields = edit_form_extra_fields = {
        "timezone": time_zone_field(description="Where the business is: type to search, e.g. Vienna. Locations start with it.")}
    base_filters = [["id", FilterInFunction, _visible_tenant_ids]]
    # The agency choices (form and search) list only agencies the user may create businesses in.
    add_form_query_rel_fields = search_form_query_rel_fields = {"agency": [["id", FilterInFunction, _own_agency_ids]]}
    validators_columns = {
        "slug": [Optional(), Regexp(SLUG_PATTERN, message="lower-case letters, digits, - and _ (max 63)")],
        "name": [no_line_breaks], "sender_name": [no_line_breaks],
        "reply_to": [single_address], "contact_email": [single_address],
    }

    edit_template = "tenant_edit.html"

    def prefill_form(self, form, pk):
        # The edit page's "Custom domain" section (managed on CustomDomainView).
        from app.services.custom_domains import status_of

        item = self.datamodel.get(pk, self._base_filters)
        if item is not None:
            g.custom_domain_state, g.custom_domain_pk = status_of(item), item.id

    def pre_update(self, item):
        # A new time zone recounts the analytics day rollup in the same transaction as the row.
        from app.services import day_rollup

        day_rollup.follow_timezone(db.session, item)

    def pre_delete(self, item):
        """Only the owning agency (or a platform admin) deletes a business; its schema goes with it."""
        from app.models.public import ROLE_AGENCY_OWNER
        from tenants.provisioning import drop_tenant_data

        scope = g.get("scope")
        owner = scope is not None and (
            scope.platform or ROLE_AGENCY_OWNER in scope.agency_roles.get(item.agency_id, set())
        )
        if not owner:
            raise ValueError("Only the agency that owns this business may delete it.")
        # Same transaction as FAB's delete of the row: both happen or neither does.
        drop_tenant_data(db.session, item)

    def pre_add(self, item):
        from tenants.provisioning import ProvisioningError, TenantSpec, new_schema_name, validate_spec

        if not item.slug:
            item.slug = slug_from_name(item.name or "")
        scope = g.get("scope")
        if scope is None or not (scope.platform or item.agency_id in scope.agency_ids or (item.agency and item.agency.id in scope.agency_ids)):
            abort(403)
        try:
            validate_spec(TenantSpec(item.slug, item.name, item.timezone, item.currency, item.locale))
        except ProvisioningError as exc:
            raise FieldRefused(getattr(exc, "field", None), str(exc))
        item.status = Tenant.STATUS_PROVISIONING
        item.schema_name = new_schema_name(db.session, item.slug)

    def post_add(self, item):
        # The row is committed with status "provisioning" first, so the list and the
        # progress page show it even if building the schema fails half-way.
        g.provisioned_id = item.id
        self._provision(item)

    def _provision(self, item) -> bool:
        from tenants.provisioning import migrate_tenant

        try:
            migrate_tenant(db.engine, item.slug)
        except Exception as exc:  # noqa: BLE001 - any failure leaves the business in "provisioning", retryable
            discard()
            flash(f"Building the schema of {item.name} failed: {exc}. Retry from the progress page.", "danger")
            return False
        db.session.expire(item)
        flash(f"Client business {item.name} is ready (schema {item.schema_name}).", "success")
        return True

    def post_add_redirect(self):
        if g.get("provisioned_id"):
            return redirect(url_for(f"{self.endpoint}.provisioning", pk=g.provisioned_id))
        return super().post_add_redirect()

    def _visible_item(self, pk):
        item = self.datamodel.get(pk, self._base_filters)
        if item is None:
            abort(404)
        return item

    @expose("/provisioning/<int:pk>")
    @has_access
    @permission_name("show")
    def provisioning(self, pk):
        """Where building this business's schema stands (the page refreshes itself until it is done)."""
        from app.tenancy import schema_exists
        from tenants.migrate import head_revision

        item = self._visible_item(pk)
        steps = [
            ("Business recorded", True),
            (f"Schema {item.schema} created", schema_exists(db.session, item.schema)),
            (f"Tables migrated (revision {item.schema_version or '-'} of {head_revision('tenant')})",
             item.schema_version is not None and item.schema_version == head_revision("tenant")),
            ("Open for bookings", item.status != Tenant.STATUS_PROVISIONING),
        ]
        if request.args.get("format") == "json":
            return jsonify({"slug": item.slug, "status": item.status, "steps": [{"step": s, "done": d} for s, d in steps]})
        return self.render_template("setup_provisioning.html", item=item, steps=steps,
                                    may_retry=self.appbuilder.sm.has_access("can_add", self.class_permission_name))

    @expose("/provision/<int:pk>", methods=["POST"])
    @has_access
    @permission_name("add")
    def provision(self, pk):
        """Retry building the schema of a business stuck in "provisioning" (idempotent)."""
        item = self._visible_item(pk)
        self._provision(item)
        return redirect(url_for(f"{self.endpoint}.provisioning", pk=pk))

    @action("suspend", "Suspend", "Suspend the selected businesses?", "fa-pause")
    def suspend(self, items):
        run_unit(lambda: _set_status(items, Tenant.STATUS_SUSPENDED))
        return redirect(self.get_redirect())

    @action("reactivate", "Activate", "Activate the selected businesses?", "fa-play")
    def reactivate(self, items):
        run_unit(lambda: _set_status(items, Tenant.STATUS_ACTIVE))
        return redirect(self.get_redirect())


def _plan_choices() -> list[tuple[str, str]]:
    """The rate-limit plans of the configuration; "" keeps the key on the default plan."""
    from flask import current_app

    from app.ratelimit import rate_plans

    default = current_app.config.get("API_RATE_PLAN_DEFAULT") or "standard"
    plans = rate_plans()
    return [("", f"default ({default}: {plans.get(default, '-')})")] + [
        (name, f"{name} ({limit})") for name, limit in sorted(plans.items())]


def _plan_field() -> SelectField:
    return SelectField("Rate plan", choices=_plan_choices, default="", validators=[Optional()],
                       description="Requests per time this key may make (API_RATE_PLANS); changeable later.")


def _expiry_field() -> DateField:
    return DateField("Expires on", validators=[Optional()],
                     description="Optional: the key is refused from this date on (00:00 UTC).")


def _form_expiry():
    """The add form's expiry date as an instant (00:00 UTC), or None."""
    import datetime as dt

    from app.services.people import PeopleError

    raw = (request.form.get("expires_at") or "").strip()
    try:
        return dt.datetime.combine(dt.date.fromisoformat(raw), dt.time(), dt.timezone.utc) if raw else None
    except ValueError:
        raise PeopleError("the expiry is a date (YYYY-MM-DD)", "expires_at") from None


class _KeyViewBase(FormModelView):
    """What business and agency keys share: shown once, revocable, plan changeable (edit)."""

    base_permissions = ["can_list", "can_show", "can_add", "can_edit", "can_delete"]
    label_columns = {"location_key": "Location", "expires_at": "Expires", "request_count": "Requests",
                     "last_used_at": "Last used", "rate_plan": "Rate plan", "agency": "Agency"}
    edit_columns = ["name", "rate_plan"]
    edit_form_extra_fields = {"rate_plan": _plan_field()}
    search_columns = ["name", "prefix"]

    def _created(self, key, secret):
        # Shown in this answer only: never in a flash message, which would carry it in the session cookie.
        response = self.render_template("apikey_created.html", key=key, secret=secret,
                                        list_url=url_for(f"{self.endpoint}.list"))
        return response, 201, {"Cache-Control": "no-store"}

    def pre_update(self, item):
        from app.services.people import PeopleError, check_rate_plan

        try:
            item.rate_plan = check_rate_plan(item.rate_plan)
        except PeopleError as exc:
            raise FieldRefused("rate_plan", str(exc)) from None
        if not (item.name or "").strip():
            raise FieldRefused("name", "a key needs a name")

    @action("revoke", "Revoke", "Revoke the selected keys?", "fa-ban")
    def revoke(self, items):
        from app.services.people import revoke_api_key

        run_unit(lambda: [revoke_api_key(db.session, item) for item in (items if isinstance(items, list) else [items])])
        return redirect(self.get_redirect())


class ApiKeyView(_KeyViewBase):
    """API keys of the current tenant; the secret is shown once, at creation."""

    datamodel = Interface(ApiKey)
    class_permission_name = "ApiKeys"
    list_columns = ["name", "prefix", "scopes", "location_key", "rate_plan", "created_at", "expires_at", "last_used_at",
                    "request_count", "revoked_at"]
    show_columns = list_columns
    add_columns = ["name", "scopes", "expires_at", "location_key", "rate_plan"]
    add_form_extra_fields = {
        "scopes": SelectField("Access", choices=[("read", "read only"), ("read write", "read and write")],
                              default="read"),
        "expires_at": _expiry_field(),
        "location_key": StringField("Location", validators=[Optional(), Regexp(r"^[a-z0-9][a-z0-9_-]{0,62}$")],
                                    description="Optional: a location's key; the key then sees and books "
                                                "appointments of that location only."),
        "rate_plan": _plan_field(),
    }
    # Explicit: FAB's default search adds a "tenant" filter listing every tenant's name.
    base_filters = [["tenant_id", FilterEqualFunction, _current_tenant_id]]

    @expose("/add", methods=["GET", "POST"])
    @has_access
    def add(self):
        from app.services.people import PeopleError, create_api_key

        if request.method == "POST":
            tenant = db.session.get(Tenant, _current_tenant_id())
            if tenant is None:
                abort(404)
            try:
                expires = _form_expiry()
                key, secret = run_unit(lambda: create_api_key(db.session, tenant, request.form.get("name", ""), g.user.id,
                                                              scopes=request.form.get("scopes") or "read",
                                                              expires_at=expires,
                                                              location_key=request.form.get("location_key"),
                                                              rate_plan=request.form.get("rate_plan")))
            except PeopleError as exc:
                flash(str(exc), "danger")
                return redirect(self.get_redirect())
            return self._created(key, secret)
        return super().add()


def _owned_agency_choices() -> list[tuple[str, str]]:
    ids = _own_agency_ids()
    return [(str(a.id), f"{a.name} ({a.slug})")
            for a in db.session.scalars(select(Agency).where(Agency.id.in_(ids)).order_by(Agency.name))]


class AgencyApiKeyView(_KeyViewBase):
    """Read-only analytics keys of the agencies the user owns: the rollup and each business's figures."""

    datamodel = Interface(ApiKey)
    class_permission_name = "AgencyApiKeys"
    list_title = "Agency API keys"
    list_columns = ["name", "prefix", "agency", "rate_plan", "created_at", "expires_at", "last_used_at",
                    "request_count", "revoked_at"]
    show_columns = list_columns
    add_columns = ["agency_id", "name", "expires_at", "rate_plan"]
    add_form_extra_fields = {
        "agency_id": SelectField("Agency", choices=_owned_agency_choices, validators=[DataRequired()],
                                 description="The key reads the analytics of every business of this agency "
                                             "(GET /api/v1/analytics/agency, /api/v1/analytics/<figure>?tenant=<slug>)."),
        "expires_at": _expiry_field(),
        "rate_plan": _plan_field(),
    }
    base_filters = [["agency_id", FilterInFunction, _own_agency_ids]]

    @expose("/add", methods=["GET", "POST"])
    @has_access
    def add(self):
        from app.services.people import PeopleError, create_agency_api_key

        if request.method == "POST":
            raw = request.form.get("agency_id") or ""
            agency = db.session.get(Agency, int(raw)) if raw.isdigit() and int(raw) in _own_agency_ids() else None
            if agency is None:
                abort(404)
            try:
                expires = _form_expiry()
                key, secret = run_unit(lambda: create_agency_api_key(
                    db.session, agency, request.form.get("name", ""), g.user.id, expires_at=expires,
                    rate_plan=request.form.get("rate_plan")))
            except PeopleError as exc:
                flash(str(exc), "danger")
                return redirect(self.get_redirect())
            return self._created(key, secret)
        return super().add()


class MembershipView(FormModelView):
    datamodel = Interface(Membership)
    class_permission_name = "Memberships"
    base_permissions = ["can_list", "can_show", "can_delete"]
    list_columns = ["role", "agency", "tenant", "staff_id", "created_at"]
    # Explicit: FAB's default search adds agency/tenant filters listing every agency and tenant.
    search_columns = ["role"]
    base_filters = [["tenant_id", FilterInFunction, _visible_tenant_ids]]


def safe_next(target: str | None) -> str | None:
    """`target` if it is a path on this site ("/..."), else None: no scheme, host, "//" or backslash tricks."""
    if not target or not isinstance(target, str):
        return None
    if not target.startswith("/") or target.startswith(("//", "/\\")) or "\\" in target:
        return None
    if any(ord(c) < 32 or ord(c) == 127 for c in target):
        return None
    from urllib.parse import urlsplit

    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target


class TenantSwitchView(BaseView):
    """Switch the client business the admin works in (for users with several)."""

    route_base = "/switch"
    class_permission_name = "TenantSwitch"
    default_view = "choose"

    @expose("/")
    @has_access
    def choose(self):
        return self.render_template(
            "switch_tenant.html", tenants=g.get("visible_tenants", []), current=g.get("tenant")
        )

    @expose("/<slug>", methods=["POST"])
    @has_access
    def switch(self, slug):
        """Switch on a POST with the CSRF token (checked for every admin form); `next` only to a path here."""
        if not any(t.slug == slug for t in g.get("visible_tenants", [])):
            abort(404)
        web_session["tenant_slug"] = slug
        return redirect(safe_next(request.form.get("next") or request.args.get("next"))
                        or self.appbuilder.get_url_for_index)


VIEWS = [
    (AgencyView, "Agencies", "Platform", security.PLATFORM_VIEWS, {"icon": "fa-building"}),
    (TenantView, "Client businesses", "Agency", security.AGENCY_VIEWS, {"icon": "fa-sitemap"}),
    (MembershipView, "Memberships", "Agency", security.AGENCY_VIEWS, {"icon": "fa-id-badge"}),
    (ApiKeyView, "API keys", "Settings", security.TENANT_VIEWS, {"icon": "fa-key"}),
    (AgencyApiKeyView, "Agency API keys", "Settings", security.AGENCY_VIEWS, {"icon": "fa-key"}),
]
NO_MENU = [(TenantSwitchView, security.SWITCH_VIEWS)]
