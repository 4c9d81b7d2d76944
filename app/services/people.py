"""People and access: users with a role and a scope, API keys, invitations."""

from __future__ import annotations

import datetime as dt
import secrets

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models.public import (
    ROLE_AGENCY_OWNER,
    ROLE_AUDITOR,
    ROLE_CLIENT_ADMIN,
    ROLE_PLATFORM_ADMIN,
    ROLE_STAFF,
    ROLES,
    AccessToken,
    Agency,
    ApiKey,
    Membership,
    Tenant,
)
from app.security import agency_key_user_name, api_key_user_name, hash_secret, new_api_key


class PeopleError(ValueError):
    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


def _scope_ids(session: Session, role: str, agency_slug: str | None, tenant_slug: str | None) -> tuple[int | None, int | None]:
    if role not in ROLES:
        raise PeopleError(f"unknown role {role!r}", "role")
    agency_id = tenant_id = None
    if tenant_slug:
        tenant = session.scalar(select(Tenant).where(Tenant.slug == tenant_slug))
        if tenant is None:
            raise PeopleError(f"unknown tenant {tenant_slug!r}", "tenant")
        tenant_id = tenant.id
    if agency_slug:
        agency = session.scalar(select(Agency).where(Agency.slug == agency_slug))
        if agency is None:
            raise PeopleError(f"unknown agency {agency_slug!r}", "agency")
        agency_id = agency.id
    if role == ROLE_PLATFORM_ADMIN and (agency_id or tenant_id):
        raise PeopleError("a platform admin has no agency or tenant", "role")
    if role == ROLE_AGENCY_OWNER and (not agency_id or tenant_id):
        raise PeopleError("an agency owner needs --agency (and no --tenant)", "agency")
    if role in (ROLE_CLIENT_ADMIN, ROLE_STAFF) and not tenant_id:
        raise PeopleError(f"a {role} needs --tenant", "tenant")
    if role in (ROLE_CLIENT_ADMIN, ROLE_STAFF):
        agency_id = None
    if role == ROLE_AUDITOR and not (agency_id or tenant_id):
        raise PeopleError("an auditor needs --agency or --tenant", "agency")
    if role == ROLE_AUDITOR and tenant_id:
        agency_id = None
    return agency_id, tenant_id


def grant(session: Session, user, role: str, agency_id: int | None, tenant_id: int | None, staff_id: int | None = None) -> Membership:
    """Give `user` a role in a scope; the FAB role is added to the user if missing."""
    sm = current_app.appbuilder.sm
    fab_role = sm.find_role(role)
    if fab_role is None:
        raise PeopleError(f"role {role!r} is not set up; run `flask tenants migrate --all`", "role")
    if fab_role not in user.roles:
        user.roles.append(fab_role)
    membership = session.scalar(
        select(Membership).where(
            Membership.user_id == user.id,
            Membership.role == role,
            Membership.agency_id.is_(None) if agency_id is None else Membership.agency_id == agency_id,
            Membership.tenant_id.is_(None) if tenant_id is None else Membership.tenant_id == tenant_id,
        )
    )
    if membership is None:
        membership = Membership(user_id=user.id, role=role, agency_id=agency_id, tenant_id=tenant_id, staff_id=staff_id)
        session.add(membership)
    elif staff_id is not None:
        membership.staff_id = staff_id
    session.flush()
    return membership


def create_user_with_role(
    session: Session,
    *,
    username: str,
    email: str,
    password: str,
    role: str,
    agency_slug: str | None = None,
    tenant_slug: str | None = None,
    first_name: str = "",
    last_name: str = "",
    staff_id: int | None = None,
):
    agency_id, tenant_id = _scope_ids(session, role, agency_slug, tenant_slug)
    if len(password or "") < 8:
        raise PeopleError("password must have at least 8 characters", "password")
    sm = current_app.appbuilder.sm
    if sm.find_user(username=username) or sm.find_user(email=email):
        raise PeopleError(f"a user {username!r} or with email {email!r} already exists", "username")
    user = sm.add_user(
        username=username,
        first_name=first_name or username,
        last_name=last_name or "-",
        email=email,
        role=sm.find_role(role),
        password=password,
    )
    if not user:
        raise PeopleError("the user could not be created (see the log)", "username")
    grant(session, user, role, agency_id, tenant_id, staff_id)
    return user


API_KEY_SCOPES = ("read", "read write")


def _key_expiry(expires_at: dt.datetime | None) -> dt.datetime | None:
    if expires_at is None:
        return None
    if expires_at.tzinfo is None:
        expires_at = expires_at.replace(tzinfo=dt.timezone.utc)
    if expires_at <= dt.datetime.now(dt.timezone.utc):
        raise PeopleError("the expiry must lie in the future", "expires_at")
    return expires_at


def check_rate_plan(rate_plan: str | None) -> str | None:
    """The plan if API_RATE_PLANS names it, None (the configured default) for an empty one; else PeopleError."""
    from app.ratelimit import rate_plans

    rate_plan = (rate_plan or "").strip() or None
    if rate_plan is not None and rate_plan not in rate_plans():
        raise PeopleError(f"unknown rate plan {rate_plan!r}; one of {', '.join(sorted(rate_plans()))}", "rate_plan")
    return rate_plan


def _key_user(username: str, first: str, last: str, email: str, role: str):
    """The FAB user an API key acts as (created on first use; its password is never given out)."""
    sm = current_app.appbuilder.sm
    user = sm.find_user(username=username)
    if user is None:
        user = sm.add_user(username=username, first_name=first, last_name=last, email=email,
                           role=sm.find_role(role), password=secrets.token_urlsafe(32))
    return user


def create_api_key(session: Session, tenant: Tenant, name: str, created_by_id: int | None = None,
                   scopes: str = "read write", expires_at: dt.datetime | None = None,
                   location_key: str | None = None, rate_plan: str | None = None) -> tuple[ApiKey, str]:
    """A new API key for `tenant`; returns the row and the secret, which is shown once.

    `scopes`: "read" (GET only) or "read write" (REST writes too). `expires_at`: refused from
    then on (None: never). `location_key`: that location's data only. `rate_plan`: a name in
    API_RATE_PLANS (None: the default plan).
    """
    if not (name or "").strip():
        raise PeopleError("a key needs a name", "name")
    if scopes not in API_KEY_SCOPES:
        raise PeopleError("access is 'read' or 'read write'", "scopes")
    expires_at = _key_expiry(expires_at)
    rate_plan = check_rate_plan(rate_plan)
    location_key = (location_key or "").strip() or None
    user = _key_user(api_key_user_name(tenant.slug), "API key", tenant.slug, f"apikey+{tenant.slug}@upzento.invalid",
                     ROLE_CLIENT_ADMIN)
    grant(session, user, ROLE_CLIENT_ADMIN, None, tenant.id)
    full, prefix, digest = new_api_key()
    key = ApiKey(tenant_id=tenant.id, name=name.strip(), prefix=prefix, secret_hash=digest, created_by_id=created_by_id,
                 scopes=scopes, expires_at=expires_at, location_key=location_key, rate_plan=rate_plan)
    session.add(key)
    session.flush()
    return key, full


def create_agency_api_key(session: Session, agency: Agency, name: str, created_by_id: int | None = None,
                          expires_at: dt.datetime | None = None, rate_plan: str | None = None) -> tuple[ApiKey, str]:
    """A new read-only analytics key of `agency`; returns the row and the secret, which is shown once.

    It reads the agency rollup and, with `?tenant=`, the figures of any business of that agency
    (nothing else: no business data, no writes). It acts as an Auditor-role user with no
    membership, so the key alone decides where it reaches.
    """
    if not (name or "").strip():
        raise PeopleError("a key needs a name", "name")
    expires_at = _key_expiry(expires_at)
    rate_plan = check_rate_plan(rate_plan)
    _key_user(agency_key_user_name(agency.slug), "Agency API key", agency.slug,
              f"apikey+agency.{agency.slug}@upzento.invalid", ROLE_AUDITOR)
    full, prefix, digest = new_api_key()
    key = ApiKey(agency_id=agency.id, name=name.strip(), prefix=prefix, secret_hash=digest, created_by_id=created_by_id,
                 scopes="read", expires_at=expires_at, rate_plan=rate_plan)
    session.add(key)
    session.flush()
    return key, full


def set_api_key_plan(session: Session, key: ApiKey, rate_plan: str | None) -> None:
    """Move a key to another rate-limit plan (None: the default plan); takes effect on its next request."""
    key.rate_plan = check_rate_plan(rate_plan)
    session.flush()


def revoke_api_key(session: Session, key: ApiKey) -> None:
    key.revoked_at = dt.datetime.now(dt.timezone.utc)
    session.flush()


def new_access_token(session: Session, kind: str, email: str, hours: int = 72, **fields) -> str:
    token = secrets.token_urlsafe(32)
    session.add(
        AccessToken(
            kind=kind,
            token_hash=hash_secret(token),
            email=email,
            expires_at=dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=hours),
            **fields,
        )
    )
    session.flush()
    return token
