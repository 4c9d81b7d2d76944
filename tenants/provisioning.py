"""Create, migrate, suspend and delete client businesses (tenants) and their schemas."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from app.models.public import SLUG_PATTERN, SLUG_RE, Agency, Membership, Tenant, derive_schema_name
from app.services import catalogue_rules as rules
from tenants.migrate import current_revision, head_revision, migrate_public, migrate_schema

AGENCY_SLUG_RE = re.compile(r"^[a-z][a-z0-9_-]{1,40}$")
CURRENCY_RE = rules.CURRENCY_RE
LOCALES = ("en", "de", "fr", "es")


class ProvisioningError(ValueError):
    """A request to create or change a tenant that cannot be carried out; says why."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


def check_timezone(name: str, field: str = "timezone") -> str:
    """The catalogue rule (app.services.catalogue_rules), as a ProvisioningError."""
    try:
        return rules.check_timezone(name, field)
    except rules.RuleError as exc:
        raise ProvisioningError(exc.message, field)


def create_agency(session: Session, slug: str, name: str) -> Agency:
    if not AGENCY_SLUG_RE.match(slug or ""):
        raise ProvisioningError("agency slug must match ^[a-z][a-z0-9_-]{1,40}$", "slug")
    if not (name or "").strip():
        raise ProvisioningError("agency name is required", "name")
    if session.scalar(select(Agency).where(Agency.slug == slug)):
        raise ProvisioningError(f"agency {slug!r} already exists", "slug")
    agency = Agency(slug=slug, name=name.strip())
    session.add(agency)
    session.flush()
    return agency


@dataclass(frozen=True)
class TenantSpec:
    slug: str
    name: str
    timezone: str = "UTC"
    currency: str = "EUR"
    locale: str = "en"


def validate_spec(spec: TenantSpec) -> None:
    if not SLUG_RE.match(spec.slug or ""):
        raise ProvisioningError(f"tenant slug must match {SLUG_PATTERN}", "slug")
    if not (spec.name or "").strip():
        raise ProvisioningError("tenant name is required", "name")
    check_timezone(spec.timezone)
    try:
        rules.check_currency(spec.currency)
    except rules.RuleError as exc:
        raise ProvisioningError(exc.message, "currency")
    if spec.locale not in LOCALES:
        raise ProvisioningError(f"locale must be one of {', '.join(LOCALES)}", "locale")


def create_tenant(engine: Engine, agency_slug: str, spec: TenantSpec) -> Tenant:
    """Register a tenant and build its schema in one transaction: all of it or nothing."""
    validate_spec(spec)
    with Session(engine, expire_on_commit=False) as session, session.begin():
        agency = session.scalar(select(Agency).where(Agency.slug == agency_slug))
        if agency is None:
            raise ProvisioningError(f"unknown agency {agency_slug!r}", "agency")
        return create_tenant_in(session, agency, spec)


def create_tenant_in(session: Session, agency: Agency, spec: TenantSpec) -> Tenant:
    """Insert the tenant row and build its schema inside the caller's transaction."""
    validate_spec(spec)
    if session.scalar(select(Tenant).where(Tenant.slug == spec.slug)):
        raise ProvisioningError(f"tenant {spec.slug!r} already exists", "slug")
    tenant = Tenant(
        agency_id=agency.id,
        slug=spec.slug,
        schema_name=new_schema_name(session, spec.slug),
        name=spec.name.strip(),
        timezone=spec.timezone,
        currency=spec.currency,
        locale=spec.locale,
        status=Tenant.STATUS_PROVISIONING,
    )
    session.add(tenant)
    session.flush()
    tenant.schema_version = migrate_schema(session.connection(), tenant.schema_name)
    tenant.status = Tenant.STATUS_ACTIVE
    return tenant


def new_schema_name(session: Session, slug: str) -> str:
    """The schema name a new tenant `slug` gets: derived from the slug, unique among tenants."""
    plain = derive_schema_name(slug)
    with session.no_autoflush:
        taken = set(session.scalars(
            select(Tenant.schema_name).where(Tenant.schema_name.startswith(plain[:40], autoescape=True))))
    return derive_schema_name(slug, taken)


def migrate_tenant(engine: Engine, slug: str) -> str:
    with Session(engine) as session, session.begin():
        tenant = session.scalar(select(Tenant).where(Tenant.slug == slug).with_for_update())
        if tenant is None:
            raise ProvisioningError(f"unknown tenant {slug!r}", "slug")
        tenant.schema_version = migrate_schema(session.connection(), tenant.schema_name)
        if tenant.status == Tenant.STATUS_PROVISIONING:
            tenant.status = Tenant.STATUS_ACTIVE
        return tenant.schema_version


def migrate_all(engine: Engine, progress=None) -> list[tuple[str, float]]:
    """Public schema first, then every tenant schema; returns (slug, seconds) per tenant."""
    migrate_public(engine)
    with Session(engine) as session:
        slugs = list(session.scalars(select(Tenant.slug).order_by(Tenant.slug)))
    timings = []
    for slug in slugs:
        started = time.perf_counter()
        migrate_tenant(engine, slug)
        timings.append((slug, time.perf_counter() - started))
        if progress:
            progress(slug, timings[-1][1])
    return timings


def tenant_revision(engine: Engine, slug: str) -> str | None:
    with Session(engine) as session:
        schema = session.scalar(select(Tenant.schema_name).where(Tenant.slug == slug))
    if schema is None:
        raise ProvisioningError(f"unknown tenant {slug!r}", "slug")
    with engine.connect() as conn:
        return current_revision(conn, schema)


def set_status(engine: Engine, slug: str, status: str) -> None:
    if status not in (Tenant.STATUS_ACTIVE, Tenant.STATUS_SUSPENDED):
        raise ProvisioningError("status must be active or suspended", "status")
    with Session(engine) as session, session.begin():
        tenant = session.scalar(select(Tenant).where(Tenant.slug == slug))
        if tenant is None:
            raise ProvisioningError(f"unknown tenant {slug!r}", "slug")
        tenant.status = status


def drop_tenant_data(session: Session, tenant: Tenant) -> None:
    """What goes with a tenant's row, in the caller's transaction: its memberships and its schema."""
    session.execute(delete(Membership).where(Membership.tenant_id == tenant.id))
    session.connection().exec_driver_sql(f'DROP SCHEMA IF EXISTS "{tenant.schema_name}" CASCADE')


def delete_tenant(engine: Engine, slug: str) -> None:
    """Drop the tenant's schema and every public row that points at it, in one transaction."""
    with Session(engine) as session, session.begin():
        tenant = session.scalar(select(Tenant).where(Tenant.slug == slug))
        if tenant is None:
            raise ProvisioningError(f"unknown tenant {slug!r}", "slug")
        drop_tenant_data(session, tenant)
        session.delete(tenant)


__all__ = [
    "ProvisioningError",
    "TenantSpec",
    "check_timezone",
    "create_agency",
    "create_tenant",
    "create_tenant_in",
    "delete_tenant",
    "drop_tenant_data",
    "head_revision",
    "migrate_all",
    "migrate_public",
    "migrate_tenant",
    "new_schema_name",
    "set_status",
]
