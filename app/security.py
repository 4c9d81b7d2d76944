"""RBAC: the five roles, their permissions (defined here, synced at start-up), and tenant scope.

FAB decides *what* a role may do (permission on a view); memberships decide
*where* (platform, one agency, one tenant). `resolve_request_scope` runs before
every request, after FAB has loaded the user, and routes the session to the
tenant the user is working in.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass, field

from flask import abort, current_app, g, has_request_context, request, session as web_session
from flask_appbuilder.security.api import SecurityApi
from flask_appbuilder.security.sqla.manager import SecurityManager
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from app.extensions import db
from app.models.public import (
    ROLE_AGENCY_OWNER,
    ROLE_AUDITOR,
    ROLE_CLIENT_ADMIN,
    ROLE_PLATFORM_ADMIN,
    ROLE_STAFF,
    ROLES,
    ApiKey,
    Membership,
    Tenant,
)
from app.tenancy import activate, route_session

API_KEY_PREFIX = "upz_"
READ_PERMISSIONS = {"can_list", "can_show", "can_get", "can_info", "menu_access", "can_download"}

# View names are FAB class_permission_names. Each view declares its audience by
# listing itself in one of these groups (see app/views/__init__.py).
TENANT_VIEWS: set[str] = set()        # business data of one tenant: full CRUD for admins
AGENCY_VIEWS: set[str] = set()        # agencies/tenants management
PLATFORM_VIEWS: set[str] = set()      # platform admin only
STAFF_VIEWS: set[str] = set()         # "my day", own profile: staff read/write within their filters
STAFF_READ_VIEWS: set[str] = set()    # tenant data staff may read (services, locations)
AUDIT_VIEWS: set[str] = set()         # reports for auditors
SWITCH_VIEWS: set[str] = set()        # every signed-in role (tenant switcher)
MENU_VIEWS: dict[str, str] = {}       # menu item name -> class_permission_name of its view
MENU_CATEGORIES: dict[str, set[str]] = {}  # menu category -> class_permission_names under it
MENU_LANDING: dict[str, str] = {}     # class_permission_name -> permission its menu entry's page needs


def role_allows(role: str, view: str, permission: str) -> bool:
    """The permission policy, in one place: may `role` use `permission` on `view`?"""
    if role == ROLE_PLATFORM_ADMIN or view in SWITCH_VIEWS:
        return True
    if permission == "can_override":
        # Booking outside hours/notice is an explicit privilege, not part of "client admin".
        return role == ROLE_AGENCY_OWNER and view in TENANT_VIEWS
    if permission == "menu_access":
        # A menu entry (or category) shows when its view (or any view under it) may be listed.
        # Only what the role may open: the entry's page needs MENU_LANDING's permission (can_list, can_week...).
        if view in MENU_VIEWS:
            target = MENU_VIEWS[view]
            return role_allows(role, target, MENU_LANDING.get(target, "can_list"))
        return any(role_allows(role, v, MENU_LANDING.get(v, "can_list")) for v in MENU_CATEGORIES.get(view, ()))
    is_read = permission in READ_PERMISSIONS
    if role == ROLE_AGENCY_OWNER:
        return view in TENANT_VIEWS | AGENCY_VIEWS | STAFF_READ_VIEWS | AUDIT_VIEWS
    if role == ROLE_CLIENT_ADMIN:
        return view in TENANT_VIEWS | STAFF_READ_VIEWS or (view in AGENCY_VIEWS and is_read and view == "Tenants")
    if role == ROLE_STAFF:
        return view in STAFF_VIEWS or (view in STAFF_READ_VIEWS and is_read)
    if role == ROLE_AUDITOR:
        return (view in TENANT_VIEWS | STAFF_READ_VIEWS and is_read) or view in AUDIT_VIEWS
    return False


@dataclass
class Scope:
    """Where the current user may act."""

    platform: bool = False
    agency_roles: dict[int, set[str]] = field(default_factory=dict)  # agency id -> roles held there
    tenant_roles: dict[int, set[str]] = field(default_factory=dict)  # tenant id -> roles held there
    staff_ids: dict[int, int] = field(default_factory=dict)          # tenant id -> own staff id

    @property
    def agency_ids(self) -> set[int]:
        return set(self.agency_roles)

    def can_see_tenant(self, tenant: Tenant) -> bool:
        return self.platform or tenant.agency_id in self.agency_ids or tenant.id in self.tenant_roles


def user_scope(session, user_id: int) -> Scope:
    scope = Scope()
    for m in session.scalars(select(Membership).where(Membership.user_id == user_id)):
        if m.role == ROLE_PLATFORM_ADMIN:
            scope.platform = True
        elif m.tenant_id is not None:
            scope.tenant_roles.setdefault(m.tenant_id, set()).add(m.role)
            if m.role == ROLE_STAFF and m.staff_id is not None:
                scope.staff_ids[m.tenant_id] = m.staff_id
        elif m.agency_id is not None:
            scope.agency_roles.setdefault(m.agency_id, set()).add(m.role)
    return scope


def visible_tenants(session, scope: Scope) -> list[Tenant]:
    query = select(Tenant).order_by(Tenant.name)
    if not scope.platform:
        query = query.where(
            (Tenant.agency_id.in_(scope.agency_ids or {-1})) | (Tenant.id.in_(set(scope.tenant_roles) or {-1}))
        )
    return list(session.scalars(query))


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_api_key() -> tuple[str, str, str]:
    """A fresh key: (full key shown once, prefix stored in clear, sha256 of the whole key)."""
    prefix = secrets.token_hex(6)
    full = f"{API_KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    return full, prefix, hash_secret(full)


def api_key_user_name(tenant_slug: str) -> str:
    return f"apikey@{tenant_slug}"


def agency_key_user_name(agency_slug: str) -> str:
    # A dot never occurs in a business slug, so this cannot be a business key's user.
    return f"apikey@agency.{agency_slug}"


class _NoTokenLogin(SecurityApi):
    """FAB's REST log-in (`/api/v1/security/login`, `/refresh`) is not offered: it issues JWTs, a
    second kind of session that logout, reset and role removal would not end. The REST API takes
    API keys; the admin's own pages use the browser session."""

    include_route_methods: set[str] = set()


class UpzentoSecurityManager(SecurityManager):
    security_api = _NoTokenLogin

    """FAB's manager plus per-tenant API keys and a tenant scope per request."""

    def get_user_roles(self, user):
        """Only the roles the user holds where they are working now (this tenant, its agency)."""
        roles = super().get_user_roles(user)
        names = g.get("effective_roles") if user is not None and user.is_authenticated else None
        if names is None:
            return roles
        return [role for role in roles if role.name in names]

    def _has_view_access(self, user, permission_name: str, view_name: str) -> bool:
        """Answer from the user's (tenant-scoped) permission set, loaded once per request.

        FAB asks once per menu entry and button; without this a list page cost
        about fifty permission queries.
        """
        if not has_request_context():
            return super()._has_view_access(user, permission_name, view_name)
        cache_key = ("_upz_permissions", getattr(user, "id", None), frozenset(g.get("effective_roles") or ()))
        cached = g.get("_upz_permission_cache")
        if cached is None or cached[0] != cache_key:
            if getattr(user, "id", None) is not None and user.is_authenticated:
                pairs = self._permission_names(self._working_role_ids(user.id, g.get("effective_roles")))
            else:
                pairs = self._permission_names([role.id for role in self.get_user_roles(user)])
            cached = (cache_key, pairs)
            g._upz_permission_cache = cached
        return (permission_name, view_name) in cached[1]

    def is_item_public(self, permission_name, view_name):
        """FAB asks this before every protected API call: the public role's pairs, read once per request."""
        if not has_request_context():
            return super().is_item_public(permission_name, view_name)
        pairs = g.get("_upz_public_permissions")
        if pairs is None:
            role = self.role_model
            pairs = self._permission_names(select(role.id).where(role.name == self.auth_role_public))
            g._upz_public_permissions = pairs
        return (permission_name, view_name) in pairs

    def _working_role_ids(self, user_id: int, names):
        """Ids of the roles get_user_roles answers (held directly or through a group, only those
        named in `names` unless it is None), as a subquery: no Role or Group objects are loaded."""
        from flask_appbuilder.security.sqla.models import assoc_group_role, assoc_user_group, assoc_user_role

        direct = select(assoc_user_role.c.role_id.label("role_id")).where(assoc_user_role.c.user_id == user_id)
        grouped = (select(assoc_group_role.c.role_id)
                   .join(assoc_user_group, assoc_user_group.c.group_id == assoc_group_role.c.group_id)
                   .where(assoc_user_group.c.user_id == user_id))
        held = direct.union(grouped).subquery()
        role = self.role_model
        query = select(role.id).where(role.id.in_(select(held.c.role_id)))
        if names is not None:
            query = query.where(role.name.in_(sorted(names) or [""]))
        return query

    def _permission_names(self, role_ids) -> frozenset[tuple[str, str]]:
        """(permission, view) names granted to these roles (ids, or a select of ids), in one statement.

        Loading `role.permissions` built a few hundred PermissionView objects (each with its
        permission and view menu) per request: most of an API call's time. Same answer, no objects.
        """
        from flask_appbuilder.security.sqla.models import assoc_permissionview_role as granted

        if isinstance(role_ids, list) and not role_ids:
            return frozenset()
        pv, perm, view = self.permissionview_model, self.permission_model, self.viewmenu_model
        rows = self.session.execute(
            select(perm.name, view.name)
            .select_from(granted)
            .join(pv, pv.id == granted.c.permission_view_id)
            .join(perm, perm.id == pv.permission_id)
            .join(view, view.id == pv.view_menu_id)
            .where(granted.c.role_id.in_(role_ids))
        )
        return frozenset((p, v) for p, v in rows)

    def load_user(self, pk):
        """Flask-Login's user loader: also refuses a session of an older session generation."""
        from app.session_generation import session_is_current

        user = super().load_user(pk)
        if user is not None and not session_is_current(self.session, user):
            return None
        return user

    def load_user_jwt(self, _jwt_header, jwt_data):
        """No JWT is a credential here: the REST API takes API keys (scoped to one business) or the
        admin's browser session, both of which end with logout, reset or revocation. FAB's JWT login
        API is not registered, and a token signed some other way is refused (401), not trusted
        without a business, a scope or a session generation."""
        return None

    def validate_api_key(self, api_key_string: str):
        if getattr(g, "_api_key_user", False):
            return g.user
        return None

    def sync_roles(self) -> None:
        """Create the five roles and give each exactly the permissions the policy allows."""
        from app.uow import unit_of_work

        for role_name in ROLES:
            self.add_role(role_name)
        self.add_permissions_view_menus_for_registered_views()
        with unit_of_work(self.session):
            pvms = self.get_all_permissions_views_menus()
            for role_name in ROLES:
                role = self.find_role(role_name)
                wanted = [pvm for pvm in pvms if role_allows(role_name, pvm.view_menu.name, pvm.permission.name)]
                role.permissions = wanted
            self.add_role(current_app.config["AUTH_ROLE_PUBLIC"])

    def add_permissions_view_menus_for_registered_views(self) -> None:
        self.appbuilder.add_permissions(update_perms=True)

    def get_all_permissions_views_menus(self):
        return self.session.query(self.permissionview_model).all()


def _api_key_from_request() -> str | None:
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        token = header[7:].strip()
        if token.startswith(API_KEY_PREFIX):
            return token
    return request.headers.get("X-Api-Key")


# The REST API an API key may reach (FAB's ModelRestApi of tenant data, its OpenAPI).
# Never the admin views, FAB's security API (log-in, tokens) or anything under /api/v1/public.
API_KEY_PATHS = ("/api/v1/",)
API_KEY_EXCLUDED = ("/api/v1/security/", "/api/v1/public/")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def api_key_allowed_here() -> bool:
    path = request.path
    return path.startswith(API_KEY_PATHS) and not path.startswith(API_KEY_EXCLUDED)


def _api_error(status: int, code: str, message: str, field: str | None = None):
    from flask import jsonify

    response = jsonify({"error": {"code": code, "message": message, "field": field}})
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="api"'
    abort(response)


def _authenticate_api_key(token: str) -> None:
    # Whatever happens below, this request never sets or refreshes a session cookie.
    g._no_session_cookie = True
    if not api_key_allowed_here():
        _api_error(401, "unauthorized", "API keys authenticate the REST API (/api/v1/...) only")
    parts = token.split("_")
    if len(parts) < 3 or parts[0] + "_" != API_KEY_PREFIX:
        _api_error(401, "unauthorized", "invalid API key")
    key = db.session.scalar(select(ApiKey).where(ApiKey.prefix == parts[1]).options(joinedload(ApiKey.tenant)))
    if key is None or key.revoked_at is not None or not hmac.compare_digest(key.secret_hash, hash_secret(token)):
        _api_error(401, "unauthorized", "invalid API key")
    now = dt.datetime.now(dt.timezone.utc)
    if key.expired(now):
        _api_error(401, "key_expired", "this API key has expired")
    if request.method not in SAFE_METHODS and not key.allows("write"):
        _api_error(403, "not_allowed", "this API key is read-only")
    if key.agency_id is not None:
        _authenticate_agency_key(key, now)
        return
    tenant = key.tenant
    if tenant.status != Tenant.STATUS_ACTIVE:
        _api_error(403, "tenant_suspended", "this business is suspended")
    _act_as_key_user(key, api_key_user_name(tenant.slug), now)
    g.api_key_location = key.location_key
    g.scope = Scope(tenant_roles={tenant.id: {ROLE_CLIENT_ADMIN}})
    g.effective_roles = {ROLE_CLIENT_ADMIN}
    activate(db.session, tenant)


def _act_as_key_user(key: ApiKey, user_name: str, now: dt.datetime) -> None:
    """The request acts as the key's service user (a business's or an agency's), counted as a use of the key."""
    user = current_app.appbuilder.sm.find_user(username=user_name)
    if user is None or not user.is_active:
        abort(401)
    _count_use(key.id, now)
    g.user = user
    g._api_key_user = True
    g.api_key_id, g.api_key_label = key.id, f"{key.name} ({key.prefix})"
    g.api_key_plan = key.rate_plan


# What an agency key reaches: the analytics API (the rollup, and one business's figures with ?tenant=).
AGENCY_KEY_PATHS = ("/api/v1/analytics/",)


def _authenticate_agency_key(key: ApiKey, now: dt.datetime) -> None:
    """An agency key acts as an Auditor of its agency, on the analytics API only. The business is
    named by `?tenant=<slug>`: one of another agency (or none at all) is 404, a suspended one 403."""
    if not request.path.startswith(AGENCY_KEY_PATHS):
        _api_error(403, "not_allowed", "an agency API key reads the analytics API (/api/v1/analytics/...) only")
    _act_as_key_user(key, agency_key_user_name(key.agency.slug), now)
    g.api_key_agency_id = key.agency_id
    g.scope = Scope(agency_roles={key.agency_id: {ROLE_AUDITOR}})
    g.effective_roles = {ROLE_AUDITOR}
    slug = request.args.get("tenant")
    if not slug:
        return
    tenant = db.session.scalar(select(Tenant).where(Tenant.slug == slug[:63], Tenant.agency_id == key.agency_id))
    if tenant is None or tenant.status == Tenant.STATUS_PROVISIONING:
        _api_error(404, "not_found", "no business of this agency has that slug", field="tenant")
    if tenant.status != Tenant.STATUS_ACTIVE:
        _api_error(403, "tenant_suspended", "this business is suspended", field="tenant")
    activate(db.session, tenant)


def _count_use(key_id: int, now: dt.datetime) -> None:
    """Last-used time and request count, on a connection of their own: a request that
    writes nothing (or fails) still counts, and the request's transaction stays clean."""
    from sqlalchemy import update

    with db.engine.begin() as conn:
        conn.execute(update(ApiKey).where(ApiKey.id == key_id)
                     .values(last_used_at=now, request_count=ApiKey.request_count + 1))


def reject_misplaced_api_key() -> None:
    """First before_request: an API key anywhere but the REST API is 401, and no cookie is set."""
    if _api_key_from_request() is not None:
        g._no_session_cookie = True
        if not api_key_allowed_here():
            _api_error(401, "unauthorized", "API keys authenticate the REST API (/api/v1/...) only")


def resolve_request_scope() -> None:
    """Before every request: authenticate API keys, then pick the tenant this user works in."""
    if g.get("tenant") is not None:
        # Public endpoints name their tenant in the URL (resolved by their blueprint).
        return
    route_session(db.session, None)
    token = _api_key_from_request()
    if token:
        _authenticate_api_key(token)
        return
    user = g.get("user")
    if user is None or not getattr(user, "is_authenticated", False):
        return
    scope = user_scope(db.session, user.id)
    g.scope = scope
    tenants = visible_tenants(db.session, scope)
    g.visible_tenants = tenants
    g.effective_roles = effective_roles(scope, None).union(*scope.agency_roles.values())
    if not tenants:
        return
    wanted = web_session.get("tenant_slug")
    chosen = next((t for t in tenants if t.slug == wanted), None) or tenants[0]
    if chosen.status == Tenant.STATUS_PROVISIONING:
        ready = [t for t in tenants if t.status != Tenant.STATUS_PROVISIONING]
        if not ready:
            return
        chosen = ready[0]
    activate(db.session, chosen)
    g.effective_roles = effective_roles(scope, chosen)


def effective_roles(scope: Scope, tenant) -> set[str]:
    """Role names that apply while working in `tenant` (platform and agency roles included)."""
    names: set[str] = set()
    if scope.platform:
        names.add(ROLE_PLATFORM_ADMIN)
    if tenant is not None:
        names |= scope.agency_roles.get(tenant.agency_id, set())
        names |= scope.tenant_roles.get(tenant.id, set())
    return names


def current_staff_id() -> int | None:
    """The staff id the logged-in user is, in the current tenant (None if not staff there)."""
    scope: Scope | None = g.get("scope")
    tenant = g.get("tenant")
    if scope is None or tenant is None:
        return None
    return scope.staff_ids.get(tenant.id)


def is_staff_only() -> bool:
    """True when the user's only role in the current tenant is Staff (views narrow to own data)."""
    scope: Scope | None = g.get("scope")
    tenant = g.get("tenant")
    if scope is None or tenant is None:
        return False
    return effective_roles(scope, tenant) == {ROLE_STAFF}


def sync_all_roles(app) -> None:
    """Create the five roles with their permissions (run at migrate time and at start-up)."""
    with app.app_context():
        app.appbuilder.sm.sync_roles()
