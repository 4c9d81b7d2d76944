"""Public-schema models: agencies, client businesses (tenants), memberships, API keys.

FAB's users and roles live beside these in the public schema. Business data of a
client never lives here; it sits in that client's own schema.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import PublicModel

# A tenant slug is a key of the setup format (tenant-setup.schema.json): `bella-salon` is one.
SLUG_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
SLUG_RE = re.compile(SLUG_PATTERN)
# PostgreSQL identifiers are at most 63 bytes; schema names are ASCII here.
SCHEMA_NAME_MAX = 63
SCHEMA_PREFIX = "tenant_"

# A lower-case DNS host name of two or more labels (the database's own check; app.services.custom_domains validates fully).
CUSTOM_DOMAIN_SQL_CHECK = r"custom_domain ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$'"

ROLE_PLATFORM_ADMIN = "Platform Admin"
ROLE_AGENCY_OWNER = "Agency Owner"
ROLE_CLIENT_ADMIN = "Client Admin"
ROLE_STAFF = "Staff"
ROLE_AUDITOR = "Auditor"
ROLES = (ROLE_PLATFORM_ADMIN, ROLE_AGENCY_OWNER, ROLE_CLIENT_ADMIN, ROLE_STAFF, ROLE_AUDITOR)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class Agency(PublicModel):
    __tablename__ = "agency"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(41), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    # Branding defaults that a client business inherits unless it sets its own.
    sender_name: Mapped[str | None] = mapped_column(String(200))
    primary_color: Mapped[str | None] = mapped_column(String(7))
    logo_url: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)

    tenants: Mapped[list["Tenant"]] = relationship(back_populates="agency")

    def __repr__(self) -> str:
        return self.name


class Tenant(PublicModel):
    """A client business of an agency; its data lives in schema `schema_name` (`tenant_<slug>` as a rule).

    The URL slug and the schema name are separate: the schema name is derived once, when
    the business is created (`derive_schema_name`), and stored; everything that routes
    reads the stored name.
    """

    __tablename__ = "tenant"
    __table_args__ = (
        CheckConstraint(r"slug ~ '^[a-z0-9][a-z0-9_-]{0,62}$'", name="slug_format"),
        CheckConstraint(r"schema_name ~ '^tenant_[a-z0-9_]{1,56}$'", name="schema_name_format"),
        CheckConstraint(CUSTOM_DOMAIN_SQL_CHECK, name="custom_domain_format"),
        # Several businesses may claim a host name while verifying; one holds it verified.
        Index("uq_tenant_custom_domain_verified", "custom_domain", unique=True,
              postgresql_where=text("custom_domain_verified_at IS NOT NULL")),
        Index("ix_tenant_custom_domain", "custom_domain"),
    )

    STATUS_PROVISIONING = "provisioning"
    STATUS_ACTIVE = "active"
    STATUS_SUSPENDED = "suspended"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agency.id", ondelete="RESTRICT"))
    slug: Mapped[str] = mapped_column(String(63), unique=True)
    schema_name: Mapped[str] = mapped_column(String(63), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    currency: Mapped[str] = mapped_column(String(3), default="EUR")
    locale: Mapped[str] = mapped_column(String(10), default="en")
    status: Mapped[str] = mapped_column(String(20), default=STATUS_PROVISIONING)
    schema_version: Mapped[str | None] = mapped_column(String(400))  # every tenant head, "+"-joined
    # Branding (the widget, portal and emails use these).
    logo_url: Mapped[str | None] = mapped_column(String(500))
    primary_color: Mapped[str | None] = mapped_column(String(7))
    accent_color: Mapped[str | None] = mapped_column(String(7))
    font_family: Mapped[str | None] = mapped_column(String(100))
    sender_name: Mapped[str | None] = mapped_column(String(200))
    reply_to: Mapped[str | None] = mapped_column(String(254))
    contact_email: Mapped[str | None] = mapped_column(String(254))
    contact_phone: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)
    # The business's own host name (app.services.custom_domains): links use it once verified.
    custom_domain: Mapped[str | None] = mapped_column(String(253))
    custom_domain_token: Mapped[str | None] = mapped_column(String(64))
    custom_domain_verified_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))

    agency: Mapped[Agency] = relationship(back_populates="tenants")

    @property
    def verified_domain(self) -> str | None:
        """The custom domain when its control was proven, else None (links then use PUBLIC_URL)."""
        return self.custom_domain if self.custom_domain and self.custom_domain_verified_at else None

    @property
    def schema(self) -> str:
        """The PostgreSQL schema of this business (the stored name)."""
        return self.schema_name

    def __repr__(self) -> str:
        return self.name


def derive_schema_name(slug: str, taken=frozenset()) -> str:
    """A safe PostgreSQL schema name for a new tenant: `tenant_` + the slug with `-` as `_`.

    When that is longer than 63 bytes or already `taken` (`bella-salon` and `bella_salon`
    both give `tenant_bella_salon`), a short hash of the slug disambiguates it:
    `tenant_<start of slug>_<8 hex>`. The result matches `^tenant_[a-z0-9_]{1,56}$`.
    """
    if not SLUG_RE.match(slug or ""):
        raise ValueError(f"invalid tenant slug {slug!r}")
    plain = SCHEMA_PREFIX + slug.replace("-", "_")
    if len(plain) <= SCHEMA_NAME_MAX and plain not in taken:
        return plain
    digest = hashlib.sha256(slug.encode()).hexdigest()
    for start in range(0, len(digest) - 8):
        suffix = "_" + digest[start:start + 8]
        name = plain[: SCHEMA_NAME_MAX - len(suffix)] + suffix
        if name not in taken:
            return name
    raise ValueError(f"no free schema name for tenant slug {slug!r}")


class Membership(PublicModel):
    """Who may act where: a user holds a role in an agency, in one tenant, or platform-wide."""

    __tablename__ = "membership"
    __table_args__ = (
        UniqueConstraint("user_id", "role", "agency_id", "tenant_id", name="scope"),
        CheckConstraint(
            "(role = 'Platform Admin' AND agency_id IS NULL AND tenant_id IS NULL)"
            " OR (role = 'Agency Owner' AND agency_id IS NOT NULL AND tenant_id IS NULL)"
            " OR (role IN ('Client Admin', 'Staff') AND tenant_id IS NOT NULL)"
            " OR (role = 'Auditor' AND (agency_id IS NOT NULL OR tenant_id IS NOT NULL))",
            name="role_scope",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("ab_user.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(40))
    agency_id: Mapped[int | None] = mapped_column(ForeignKey("agency.id", ondelete="CASCADE"))
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenant.id", ondelete="CASCADE"))
    # For role Staff: the staff row (inside the tenant schema) this login is.
    staff_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)

    agency: Mapped[Agency | None] = relationship()
    tenant: Mapped[Tenant | None] = relationship()


class ApiKey(PublicModel):
    """An API key of one business or of one agency; only a SHA-256 hash of the secret is stored.

    A business key reaches that business's REST API. An agency key (agency_id set, tenant_id
    NULL) reads the analytics API only: the agency rollup and, with `?tenant=`, any business
    of that agency.
    """

    __tablename__ = "tenant_api_key"
    __table_args__ = (CheckConstraint("(tenant_id IS NULL) <> (agency_id IS NULL)", name="owner"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenant.id", ondelete="CASCADE"), index=True)
    agency_id: Mapped[int | None] = mapped_column(ForeignKey("agency.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("ab_user.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    # "read" (GET only) or "read write" (also POST/PUT/PATCH/DELETE on the REST API).
    scopes: Mapped[str] = mapped_column(String(32), default="read write", server_default="read write")
    # Optional: refused from this instant on.
    expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    # Requests made with the key (counted beside last_used_at, one UPDATE per request).
    request_count: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # Optional location key: appointments and availability of that location only.
    location_key: Mapped[str | None] = mapped_column(String(63))
    # Rate-limit plan (a name in API_RATE_PLANS); NULL: API_RATE_PLAN_DEFAULT.
    rate_plan: Mapped[str | None] = mapped_column(String(32))

    tenant: Mapped[Tenant | None] = relationship()
    agency: Mapped[Agency | None] = relationship()

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def expired(self, now: dt.datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now

    def allows(self, scope: str) -> bool:
        return scope in (self.scopes or "").split()


class AccessToken(PublicModel):
    """Single-use tokens sent by email: invitations and password resets."""

    __tablename__ = "access_token"

    KIND_INVITE = "invite"
    KIND_RESET = "reset"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(254))
    role: Mapped[str | None] = mapped_column(String(40))
    agency_id: Mapped[int | None] = mapped_column(ForeignKey("agency.id", ondelete="CASCADE"))
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenant.id", ondelete="CASCADE"))
    staff_id: Mapped[int | None] = mapped_column(Integer)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("ab_user.id", ondelete="CASCADE"))
    invited_by_id: Mapped[int | None] = mapped_column(ForeignKey("ab_user.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class PlatformMail(PublicModel):
    """Mails about accounts (invites, resets, portal sign-in links): the outbox of account mail.

    Written in the request's transaction; the outbox relay enqueues the send job for rows
    with `relayed_at` NULL (and again for relayed rows still unsent after a while: a job
    lost with Redis). Kept for the development outbox page either way.
    """

    __tablename__ = "platform_mail"
    __table_args__ = (Index("ix_platform_mail_tenant_id", "tenant_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    to_email: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)
    sent: Mapped[bool] = mapped_column(Boolean, default=False)
    relayed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)
    # The business the mail is about (portal sign-in links, invitations into it): its admins see it in
    # the development outbox. None for mail about no business (an agency invitation, a password reset).
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenant.id", ondelete="CASCADE"))


class TenantLogo(PublicModel):
    """A business's uploaded logo, served by the app at /widget/v1/<slug>/logo/<digest>.<ext>
    (the widget frame and the portal show it; no other site has to stay reachable)."""

    __tablename__ = "tenant_logo"

    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenant.id", ondelete="CASCADE"), primary_key=True)
    content_type: Mapped[str] = mapped_column(String(40))
    digest: Mapped[str] = mapped_column(String(64))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)
