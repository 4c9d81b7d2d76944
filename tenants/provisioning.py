"""Create, migrate, suspend and delete client businesses (tenants) and their schemas."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from sqlalchemy import delete, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from app.models.public import SLUG_PATTERN, SLUG_RE, Agency, Membership, Tenant, derive_schema_name
from app.services import catalogue_rules as rules
from tenants.migrate import current_revision, head_revision, migrate_public, migrate_schema
from tenants.schema_script import build_schema

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
    # A new schema is built from the recorded migrations script (tenants/schema_script.py),
    # the same statements Alembic would run, without Alembic's cost per migration.
    tenant.schema_version = build_schema(session.connection(), tenant.schema_name)
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


@dataclass(frozen=True)
class Migrated:
    """One tenant's outcome in `migrate_all`: seconds taken, or the error that stopped it."""

    slug: str
    seconds: float
    error: str | None = None

    def __iter__(self):  # (slug, seconds), as callers unpacked it before failures were reported
        return iter((self.slug, self.seconds))


def tenants_behind(engine: Engine) -> list[str]:
    """Slugs of tenants whose schema is not at the newest revision (or has none, or whose
    provisioning never finished), in slug order. One statement reads every schema's own
    alembic_version table.
    """
    heads = set(head_revision("tenant").split("+"))
    with Session(engine) as session:
        rows = session.execute(select(Tenant.slug, Tenant.schema_name, Tenant.status).order_by(Tenant.slug)).all()
        present = set(session.execute(text(
            "SELECT table_schema FROM information_schema.tables WHERE table_name = 'alembic_version'"
        )).scalars())
        versions: dict[str, set[str]] = {}
        with_table = [schema for _, schema, _ in rows if schema in present]
        for start in range(0, len(with_table), 500):
            union = " UNION ALL ".join(
                f"SELECT '{s}' AS s, version_num FROM \"{s}\".alembic_version" for s in with_table[start:start + 500])
            for schema, version in session.execute(text(union)):
                versions.setdefault(schema, set()).add(version)
    return [slug for slug, schema, status in rows
            if versions.get(schema) != heads or status == Tenant.STATUS_PROVISIONING]


def _migrate_one(engine: Engine, slug: str) -> Migrated:
    started = time.perf_counter()
    try:
        migrate_tenant(engine, slug)
    except Exception as exc:  # noqa: BLE001 - reported per tenant; the others carry on
        return Migrated(slug, time.perf_counter() - started, f"{exc.__class__.__name__}: {exc}".splitlines()[0][:500])
    return Migrated(slug, time.perf_counter() - started)


_worker_engine: Engine | None = None


def _worker_start(url: str) -> None:
    global _worker_engine
    from sqlalchemy import create_engine

    # One connection per worker process: migrations are sequential inside it.
    _worker_engine = create_engine(url, pool_size=1, max_overflow=0)


def _worker_migrate(slug: str) -> Migrated:
    return _migrate_one(_worker_engine, slug)


def migrate_all(engine: Engine, progress=None, jobs: int = 1) -> list[Migrated]:
    """Public schema first, then every tenant schema not at the newest revision.

    `jobs` > 1 migrates that many schemas at once, each in its own process with one
    connection (Alembic's migration context is process-global). A tenant that fails is
    reported in its `Migrated.error` and the others carry on; a tenant already at the
    newest revision is skipped, so a rerun resumes where a failed run stopped and a run
    on an up-to-date database changes nothing. `progress(result)` is called per tenant.
    """
    migrate_public(engine)
    behind = tenants_behind(engine)
    results: list[Migrated] = []

    def done(result: Migrated) -> None:
        results.append(result)
        if progress:
            progress(result)

    if jobs <= 1 or len(behind) <= 1:
        for slug in behind:
            done(_migrate_one(engine, slug))
        return results
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    url = engine.url.render_as_string(hide_password=False)
    engine.dispose()  # no pooled connection may cross the fork
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_worker_start,
                             initargs=(url,)) as pool:
        for future in as_completed([pool.submit(_worker_migrate, slug) for slug in behind]):
            done(future.result())
    results.sort(key=lambda r: r.slug)
    return results


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
    "Migrated",
    "migrate_all",
    "migrate_public",
    "migrate_tenant",
    "new_schema_name",
    "set_status",
    "tenants_behind",
]
