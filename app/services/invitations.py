"""Invitations, password resets and staff log-ins.

An invitation is an AccessToken (kind "invite") carrying a role and a scope; the
invitee gets a single-use, expiring link by mail and sets a password. A reset is
the same kind of token (kind "reset") bound to an existing user. Tokens are
stored hashed and consumed with a conditional UPDATE, so a link works once even
when clicked twice at the same time. Services flush; the request commits.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session
from werkzeug.security import generate_password_hash

from app.models import tenant as tm
from app.models.public import (
    ROLE_AGENCY_OWNER,
    ROLE_AUDITOR,
    ROLE_CLIENT_ADMIN,
    ROLE_PLATFORM_ADMIN,
    ROLE_STAFF,
    ROLES,
    AccessToken,
    Agency,
    Membership,
    Tenant,
)
from app.security import Scope, hash_secret
from app.services.mail import queue_mail
from app.services.people import PeopleError, grant, new_access_token
from app.tenancy import route_session

INVITE_HOURS = 72
RESET_HOURS = 2
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
USERNAME_RE = re.compile(r"^[A-Za-z0-9_.@+-]{3,64}$")
MIN_PASSWORD = 8


class TokenInvalid(PeopleError):
    """The link is unknown, used, revoked or expired."""


@dataclass(frozen=True)
class Target:
    """Where an invitation puts the invitee: one agency or one tenant (never both)."""

    role: str
    agency_id: int | None = None
    tenant_id: int | None = None
    staff_id: int | None = None


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def manages_agency(scope: Scope, agency_id: int | None) -> bool:
    """May this user run the agency (create businesses, invite owners)?"""
    return scope.platform or ROLE_AGENCY_OWNER in scope.agency_roles.get(agency_id, set())


def manages_tenant(scope: Scope, tenant: Tenant) -> bool:
    """May this user manage the business's people and setup (its agency's owner or its client admin)?"""
    return manages_agency(scope, tenant.agency_id) or ROLE_CLIENT_ADMIN in scope.tenant_roles.get(tenant.id, set())


def roles_for(scope: Scope) -> list[str]:
    """The roles this inviter may hand out (only a platform admin makes platform admins)."""
    if scope.platform:
        return list(ROLES)
    if any(ROLE_AGENCY_OWNER in roles for roles in scope.agency_roles.values()):
        return [ROLE_AGENCY_OWNER, ROLE_CLIENT_ADMIN, ROLE_STAFF, ROLE_AUDITOR]
    if any(ROLE_CLIENT_ADMIN in roles for roles in scope.tenant_roles.values()):
        return [ROLE_CLIENT_ADMIN, ROLE_STAFF, ROLE_AUDITOR]
    return []


def check_target(session: Session, scope: Scope, target: Target) -> None:
    """Raise PeopleError unless `scope` may invite into `target` and the role fits the scope."""
    if target.role not in ROLES:
        raise PeopleError(f"unknown role {target.role!r}", "role")
    if target.role not in roles_for(scope):
        raise PeopleError(f"you may not invite a {target.role}", "role")
    if target.agency_id and target.tenant_id:
        raise PeopleError("choose an agency or one business, not both", "scope")
    if target.role == ROLE_PLATFORM_ADMIN:
        if target.agency_id or target.tenant_id:
            raise PeopleError("a platform admin has no agency or business", "scope")
        return
    if target.role == ROLE_AGENCY_OWNER and not target.agency_id:
        raise PeopleError("an agency owner is invited into an agency", "scope")
    if target.role in (ROLE_CLIENT_ADMIN, ROLE_STAFF) and not target.tenant_id:
        raise PeopleError(f"a {target.role} is invited into one business", "scope")
    if target.role == ROLE_AUDITOR and not (target.agency_id or target.tenant_id):
        raise PeopleError("an auditor is invited into an agency or a business", "scope")
    if target.staff_id is not None and target.role != ROLE_STAFF:
        raise PeopleError("only a Staff invitation links a staff record", "staff")
    if target.agency_id:
        if session.get(Agency, target.agency_id) is None:
            raise PeopleError("unknown agency", "scope")
        if not manages_agency(scope, target.agency_id):
            raise PeopleError("you may not invite into that agency", "scope")
    if target.tenant_id:
        tenant = session.get(Tenant, target.tenant_id)
        if tenant is None:
            raise PeopleError("unknown business", "scope")
        if not manages_tenant(scope, tenant):
            raise PeopleError("you may not invite into that business", "scope")
        if target.staff_id is not None:
            _free_staff(session, tenant, target.staff_id)


def _free_staff(session: Session, tenant: Tenant, staff_id: int, user_id: int | None = None) -> None:
    """The staff record exists in `tenant` and no other user logs in as it."""
    with _routed(session, tenant):
        staff = session.get(tm.Staff, staff_id)
        if staff is None:
            raise PeopleError("no such staff record in that business", "staff")
        if staff.user_id is not None and staff.user_id != user_id:
            raise PeopleError(f"{staff.name} is already linked to a user account", "staff")


class _routed:
    """Route `session` to a tenant for a block, then back to where it was (same transaction)."""

    def __init__(self, session: Session, tenant: Tenant):
        self.session, self.tenant = session, tenant

    def __enter__(self):
        from app.tenancy import TENANT_INFO_KEY

        self.before = self.session.info.get(TENANT_INFO_KEY)
        route_session(self.session, self.tenant.schema)
        return self.session

    def __exit__(self, *exc):
        route_session(self.session, self.before)


def user_by_email(session: Session, email: str):
    """The account with this address, whatever its letter case (FAB's lookup is exact)."""
    model = current_app.appbuilder.sm.user_model
    return session.scalars(select(model).where(func.lower(model.email) == (email or "").strip().lower())).first()


def base_url() -> str:
    from app.links import public_base

    return public_base()


def invite(session: Session, scope: Scope, inviter_id: int | None, email: str, target: Target) -> AccessToken:
    """Create an invitation and queue its mail; returns the token row (the secret is only in the mail)."""
    email = (email or "").strip().lower()
    if not EMAIL_RE.match(email):
        raise PeopleError("enter a valid email address", "email")
    check_target(session, scope, target)
    if _already_member(session, email, target):
        raise PeopleError(f"{email} already has this role there", "email")
    secret = new_access_token(
        session, AccessToken.KIND_INVITE, email, hours=INVITE_HOURS, role=target.role, agency_id=target.agency_id,
        tenant_id=target.tenant_id, staff_id=target.staff_id, invited_by_id=inviter_id,
    )
    row = session.scalar(select(AccessToken).where(AccessToken.token_hash == hash_secret(secret)))
    where = _place_name(session, target)
    queue_mail(
        session, email, f"You are invited to {where} on {current_app.config['APP_NAME']}",
        f"Hello,\n\nyou have been invited as {target.role} for {where}.\n"
        f"Accept and choose your password here (valid {INVITE_HOURS} hours, once):\n\n"
        f"{base_url()}/account/accept/{secret}\n\nIf you did not expect this, ignore this mail.\n",
        tenant_id=target.tenant_id,
    )
    return row


def _already_member(session: Session, email: str, target: Target) -> bool:
    user = user_by_email(session, email)
    if user is None:
        return False
    return session.scalar(
        select(Membership.id).where(
            Membership.user_id == user.id, Membership.role == target.role,
            Membership.agency_id.is_(None) if target.agency_id is None else Membership.agency_id == target.agency_id,
            Membership.tenant_id.is_(None) if target.tenant_id is None else Membership.tenant_id == target.tenant_id,
        )
    ) is not None


def _place_name(session: Session, target: Target) -> str:
    if target.tenant_id:
        return session.get(Tenant, target.tenant_id).name
    if target.agency_id:
        return session.get(Agency, target.agency_id).name
    return "the platform"


def pending_invitations_query(scope: Scope, tenant_id: int | None):
    """Open invitations of the business the user works in, plus agency-level ones they manage.

    Invitations into other businesses stay out of this list even for owners and platform
    admins: they see them after switching there, like every other row of a business.
    """
    query = select(AccessToken.id).where(AccessToken.kind == AccessToken.KIND_INVITE, AccessToken.used_at.is_(None))
    clauses = [AccessToken.tenant_id == (tenant_id or -1)]
    if scope.platform:
        clauses.append(AccessToken.tenant_id.is_(None))
    else:
        owned = [a for a, roles in scope.agency_roles.items() if ROLE_AGENCY_OWNER in roles]
        if owned:
            clauses.append(AccessToken.tenant_id.is_(None) & AccessToken.agency_id.in_(owned))
    return query.where(or_(*clauses))


def revoke(session: Session, scope: Scope, token: AccessToken) -> None:
    """Withdraw an open invitation; its link stops working at once."""
    target = Target(token.role or "", token.agency_id, token.tenant_id)
    allowed = scope.platform or (
        target.agency_id and manages_agency(scope, target.agency_id)
    ) or (target.tenant_id and manages_tenant(scope, session.get(Tenant, target.tenant_id)))
    if not allowed:
        raise PeopleError("you may not revoke that invitation", "id")
    session.execute(delete(AccessToken).where(AccessToken.id == token.id))
    session.flush()


def find_token(session: Session, kind: str, secret: str) -> AccessToken:
    """The open token behind a link, or TokenInvalid."""
    token = session.scalar(select(AccessToken).where(AccessToken.token_hash == hash_secret(secret or ""), AccessToken.kind == kind))
    if token is None or token.used_at is not None:
        raise TokenInvalid("this link is not valid (any more); ask for a new one", "token")
    if token.expires_at <= _now():
        raise TokenInvalid("this link has expired; ask for a new one", "token")
    return token


def _consume(session: Session, token: AccessToken) -> None:
    # Two clicks at once: only one UPDATE finds used_at still empty.
    done = session.execute(
        update(AccessToken).where(AccessToken.id == token.id, AccessToken.used_at.is_(None)).values(used_at=_now())
    )
    if done.rowcount != 1:
        raise TokenInvalid("this link has just been used", "token")


def _check_password(password: str, confirm: str | None) -> None:
    if len(password or "") < MIN_PASSWORD:
        raise PeopleError(f"the password needs at least {MIN_PASSWORD} characters", "password")
    if confirm is not None and password != confirm:
        raise PeopleError("the two passwords differ", "confirm")


def accept(session: Session, secret: str, username: str | None, password: str | None, confirm: str | None = None):
    """Accept an invitation: a new user sets username and password; an existing user just gains the role."""
    token = find_token(session, AccessToken.KIND_INVITE, secret)
    sm = current_app.appbuilder.sm
    user = user_by_email(session, token.email)
    if user is None:
        username = (username or "").strip()
        if not USERNAME_RE.match(username):
            raise PeopleError("a user name has 3-64 letters, digits or . _ @ + -", "username")
        if sm.find_user(username=username):
            raise PeopleError("that user name is taken", "username")
        _check_password(password or "", confirm)
        user = sm.user_model(
            username=username, email=token.email, first_name=username, last_name="-", active=True,
            password=_hash(password),
        )
        session.add(user)
        session.flush()
    _consume(session, token)
    tenant = session.get(Tenant, token.tenant_id) if token.tenant_id else None
    if token.staff_id is not None and tenant is not None:
        _free_staff(session, tenant, token.staff_id, user.id)
    grant(session, user, token.role, token.agency_id, token.tenant_id, token.staff_id)
    if token.staff_id is not None and tenant is not None:
        with _routed(session, tenant):
            session.get(tm.Staff, token.staff_id).user_id = user.id
            session.flush()
    return user


def _hash(password: str) -> str:
    config = current_app.config
    return generate_password_hash(
        password, method=config.get("FAB_PASSWORD_HASH_METHOD", "scrypt"),
        salt_length=config.get("FAB_PASSWORD_HASH_SALT_LENGTH", 16),
    )


def request_reset(session: Session, email: str) -> bool:
    """Mail a reset link if an active user has this email; the caller answers the same either way."""
    email = (email or "").strip().lower()
    user = user_by_email(session, email) if EMAIL_RE.match(email) else None
    if user is None or not user.active or user.username.startswith("apikey@"):
        return False
    secret = new_access_token(session, AccessToken.KIND_RESET, email, hours=RESET_HOURS, user_id=user.id)
    queue_mail(
        session, email, f"Reset your {current_app.config['APP_NAME']} password",
        f"Hello {user.username},\n\nchoose a new password here (valid {RESET_HOURS} hours, once):\n\n"
        f"{base_url()}/account/reset/{secret}\n\nIf you did not ask for this, ignore this mail; nothing changes.\n",
    )
    return True


def reset_password(session: Session, secret: str, password: str, confirm: str | None = None):
    """Set a new password through a reset link; the link is then spent."""
    token = find_token(session, AccessToken.KIND_RESET, secret)
    _check_password(password, confirm)
    sm = current_app.appbuilder.sm
    user = session.get(sm.user_model, token.user_id)
    if user is None or not user.active:
        raise TokenInvalid("this account is not active", "token")
    _consume(session, token)
    user.password = _hash(password)
    # Other open reset links for this user die with this one.
    session.execute(
        update(AccessToken)
        .where(AccessToken.user_id == user.id, AccessToken.kind == AccessToken.KIND_RESET, AccessToken.used_at.is_(None))
        .values(used_at=_now())
    )
    session.flush()
    return user


# ------------------------------------------------------------------ staff log-ins


NOT_LINKABLE = "no user of this business has that name or address; invite them instead"


def in_business_scope(session: Session, user_id: int, tenant: Tenant) -> bool:
    """Has the user a membership in this business or in the agency that runs it?"""
    return session.scalar(
        select(Membership.id).where(
            Membership.user_id == user_id,
            (Membership.tenant_id == tenant.id) | (Membership.agency_id == tenant.agency_id),
        ).limit(1)
    ) is not None


def link_staff(session: Session, scope: Scope, tenant: Tenant, staff_id: int, user) -> Membership:
    """Let `user` log in as staff record `staff_id` of `tenant` (role Staff, own calendar only)."""
    if not manages_tenant(scope, tenant):
        raise PeopleError("you may not manage people of this business", "staff")
    # One answer for unknown users and for users outside this business (no probing for names).
    if user is None or user.username.startswith("apikey@") or not in_business_scope(session, user.id, tenant):
        raise PeopleError(NOT_LINKABLE, "username")
    _free_staff(session, tenant, staff_id, user.id)
    taken = session.scalar(
        select(Membership).where(Membership.user_id == user.id, Membership.tenant_id == tenant.id,
                                 Membership.role == ROLE_STAFF, Membership.staff_id.is_not(None),
                                 Membership.staff_id != staff_id)
    )
    if taken is not None:
        raise PeopleError(f"{user.username} is already linked to another staff record here", "username")
    membership = grant(session, user, ROLE_STAFF, None, tenant.id, staff_id)
    with _routed(session, tenant):
        session.get(tm.Staff, staff_id).user_id = user.id
        session.flush()
    return membership


def find_login(session: Session, name: str):
    """The account a person typed: a user name, or an email address (any letter case); None if none."""
    name = (name or "").strip()
    user = current_app.appbuilder.sm.find_user(username=name) if name else None
    if user is None and "@" in name:
        user = user_by_email(session, name)
    return user


def link_staff_login(session: Session, scope: Scope, tenant: Tenant, staff_id: int, name: str) -> Membership:
    """link_staff() to the account named by a user name or an email address."""
    return link_staff(session, scope, tenant, staff_id, find_login(session, name))


def invite_staff(session: Session, scope: Scope, inviter_id: int | None, current_tenant_id: int | None, email: str,
                 target: Target) -> AccessToken:
    """invite(); a staff record can be linked only in the business the inviter works in."""
    if target.staff_id is not None and (current_tenant_id is None or target.tenant_id != current_tenant_id):
        raise PeopleError("a staff record can be linked only in the business you work in", "staff_id")
    return invite(session, scope, inviter_id, email, target)


def unlink_staff(session: Session, scope: Scope, tenant: Tenant, staff_id: int) -> None:
    """Stop the linked user logging in as this staff record (their Staff membership here goes)."""
    if not manages_tenant(scope, tenant):
        raise PeopleError("you may not manage people of this business", "staff")
    with _routed(session, tenant):
        staff = session.get(tm.Staff, staff_id)
        if staff is None:
            raise PeopleError("no such staff record in that business", "staff")
        user_id, staff.user_id = staff.user_id, None
        session.flush()
    if user_id is not None:
        session.execute(
            delete(Membership).where(Membership.user_id == user_id, Membership.tenant_id == tenant.id,
                                     Membership.role == ROLE_STAFF)
        )
        from app.session_generation import bump

        bump(session, [user_id])  # the role is gone: so are the sessions that held it
        session.flush()
