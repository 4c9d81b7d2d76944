"""Tenant resolution and schema routing.

Every SQLAlchemy transaction starts with `SET LOCAL search_path`: to the
tenant's schema (then public) when the session carries a tenant, to `public`
alone otherwise. Tenant tables exist only in tenant schemas, so a query made
without a tenant fails ("relation does not exist") instead of reading another
tenant's rows. `SET LOCAL` dies with the transaction, so pooled connections
never leak a path.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator

from flask import abort, g, has_request_context
from sqlalchemy import event, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, object_session, scoped_session

from app.boundedcache import BoundedCache
from app.models.public import Tenant

TENANT_INFO_KEY = "tenant_schema"


class NoTenant(RuntimeError):
    """Raised when tenant data is asked for and no tenant has been resolved."""


@dataclass(frozen=True)
class TenantRef:
    """What request-scoped and job code needs of a tenant, without an ORM object."""

    id: int
    slug: str
    name: str
    timezone: str
    currency: str
    locale: str
    agency_id: int
    status: str
    schema_name: str
    verified_domain: str | None = None  # the business's own host name, once verified (links use it)

    @property
    def schema(self) -> str:
        """The tenant's PostgreSQL schema: the name stored on its row, never derived from the slug here."""
        return self.schema_name

    @classmethod
    def of(cls, tenant: Tenant) -> "TenantRef":
        return cls(
            id=tenant.id,
            slug=tenant.slug,
            name=tenant.name,
            timezone=tenant.timezone,
            currency=tenant.currency,
            locale=tenant.locale,
            agency_id=tenant.agency_id,
            status=tenant.status,
            schema_name=tenant.schema_name,
            verified_domain=tenant.verified_domain,
        )


@event.listens_for(Session, "after_begin")
def _route_transaction(session: Session, transaction, connection) -> None:
    schema = session.info.get(TENANT_INFO_KEY)
    _set_search_path(connection, schema)


def _set_search_path(connection, schema: str | None) -> None:
    if schema:
        # Stored schema names match ^tenant_[a-z0-9_]{1,56}$ (a check constraint); quote anyway.
        connection.exec_driver_sql(f'SET LOCAL search_path TO "{schema}", public')
    else:
        connection.exec_driver_sql("SET LOCAL search_path TO public")


def plain_session(session: Session | scoped_session) -> Session:
    """The Session itself behind a scoped_session proxy (Flask-SQLAlchemy's db.session)."""
    return session() if isinstance(session, scoped_session) else session


def route_session(session: Session, schema: str | None) -> None:
    """Route `session` to `schema` (or to public only), now and for later transactions."""
    session = plain_session(session)
    if schema is None:
        session.info.pop(TENANT_INFO_KEY, None)
    else:
        session.info[TENANT_INFO_KEY] = schema
    if session.in_transaction():
        # The path is set when a transaction begins; re-apply it to the open one.
        _set_search_path(session.connection(), schema)


def session_schema(session: Session) -> str | None:
    """The tenant schema a session is routed to (None: public only)."""
    return plain_session(session).info.get(TENANT_INFO_KEY)


def find_tenant(session: Session, slug: str) -> Tenant | None:
    """Look a tenant up by slug in the public schema."""
    return session.scalar(select(Tenant).where(Tenant.slug == slug))


# Public endpoints (availability, bookings, the widget frame) look the tenant up on
# every request; a row read moments ago answers instead, saving a round trip and
# the public-schema transaction start. A write to any tenant row in this process
# drops the cache at once; other processes notice within RECENT_TENANT_SECONDS.
# Bounded (CACHE_RECENT_TENANTS_ENTRIES): a process that has served 1,000 businesses keeps
# the most recent ones only.
RECENT_TENANT_SECONDS = 5.0
_recent = BoundedCache("recent_tenants", 1024, ttl=RECENT_TENANT_SECONDS)


def find_recent_tenant(session: Session, slug: str) -> Tenant | None:
    """find_tenant() for hot public endpoints: a detached, read-only row, at most a few seconds old."""
    engine = session.get_bind()
    key = (str(engine.url), slug)
    hit = _recent.get(key, max_age=RECENT_TENANT_SECONDS)
    if hit is not None:
        return hit
    # Its own short transaction: the caller's session then starts straight in the tenant's schema.
    with Session(engine, expire_on_commit=False) as lookup:
        tenant = find_tenant(lookup, slug)
    if tenant is not None:
        _recent.put(key, tenant)
    return tenant


_TENANT_WRITTEN = "tenant_written"


@event.listens_for(Tenant, "after_update")
@event.listens_for(Tenant, "after_delete")
def _forget_recent_tenants(mapper, connection, target) -> None:
    _forget_recent()
    session = object_session(target)
    if session is not None:
        session.info[_TENANT_WRITTEN] = True


@event.listens_for(Session, "after_commit")
def _forget_recent_tenants_on_commit(session: Session) -> None:
    # A public request between the flush and the commit still read the old row
    # (the change was not committed yet) and may have kept it: drop it again.
    if session.info.pop(_TENANT_WRITTEN, False):
        _forget_recent()


def _forget_recent() -> None:
    _recent.clear()
    _domains.clear()


# Verified custom domains (host name -> slug) of every business, per database, re-read at
# most every RECENT_TENANT_SECONDS (and at once after a tenant write in this process): a
# request on any host but the platform's costs a dict lookup, not a query.
_domains: dict[str, tuple[float, dict[str, str]]] = {}


def slug_for_domain(session: Session, host: str) -> str | None:
    """The slug of the business whose *verified* custom domain `host` is, else None."""
    import time

    engine = session.get_bind()
    key = str(engine.url)
    now = time.monotonic()
    hit = _domains.get(key)
    if hit is None or now - hit[0] > RECENT_TENANT_SECONDS:
        with Session(engine) as lookup:
            rows = lookup.execute(select(Tenant.custom_domain, Tenant.slug).where(
                Tenant.custom_domain.is_not(None), Tenant.custom_domain_verified_at.is_not(None))).all()
        hit = (now, {domain: slug for domain, slug in rows})
        _domains[key] = hit
    return hit[1].get(host)


# Only these blueprints answer on a business's custom domain; the admin, the REST API
# and everything else stay on the platform's own host.
CUSTOM_HOST_BLUEPRINTS = frozenset({"portal", "public_api", "widget"})


def resolve_custom_host(endpoint: str | None, values: dict | None) -> None:
    """Before every request (an app-wide url_value_preprocessor, so before the blueprints'):
    a request whose Host is a verified custom domain serves that business's widget,
    portal and public API only.

    The host is the request's own Host header (ProxyFix never trusts X-Forwarded-Host
    here); it only selects which business answers, never what links say. An unknown or
    unverified host gets the platform's usual behaviour.
    """
    from flask import current_app, redirect, request, url_for

    host = (request.host or "").rsplit(":", 1)[0].strip().lower().rstrip(".")
    if not host or host == current_app.config.get("_PLATFORM_HOST") or host.startswith("["):
        return
    from app.extensions import db

    slug = slug_for_domain(db.session, host)
    if slug is None:
        return
    g.host_tenant_slug = slug
    if request.blueprint in CUSTOM_HOST_BLUEPRINTS:
        return
    if request.path == "/":
        abort(redirect(url_for("portal.home", tenant_slug=slug), 302))
    abort(404)


def activate(session: Session, tenant: Tenant | TenantRef) -> TenantRef:
    """Make `tenant` the current tenant of this request (or job) and route the session."""
    ref = tenant if isinstance(tenant, TenantRef) else TenantRef.of(tenant)
    route_session(session, ref.schema)
    if has_request_context():
        g.tenant = ref
    return ref


def public_tenant(session: Session, slug: str) -> Tenant:
    """The business a public URL names (public API, widget frame, portal), made current.

    The one rule for who is open: unknown or still provisioning is 404 `not_found`,
    suspended is 403 `tenant_suspended`. The row is find_recent_tenant()'s
    (detached, read-only, at most a few seconds old).
    """
    from app.errors import ApiError, NotFound

    host_slug = g.get("host_tenant_slug") if has_request_context() else None
    if host_slug is not None and slug != host_slug:
        # A business's own domain serves that business only.
        raise NotFound(f"unknown business {slug!r}", "tenant")
    tenant = find_recent_tenant(session, slug or "")
    if tenant is None or tenant.status == Tenant.STATUS_PROVISIONING:
        raise NotFound(f"unknown business {slug!r}", "tenant")
    if tenant.status != Tenant.STATUS_ACTIVE:
        raise ApiError("tenant_suspended", "this business does not take bookings at the moment", None, status=403)
    activate(session, tenant)
    return tenant


def current_tenant(required: bool = True) -> TenantRef | None:
    """The tenant resolved for this request; aborts 404 when required and absent."""
    ref = g.get("tenant") if has_request_context() else None
    if ref is None and required:
        abort(404)
    return ref


@contextlib.contextmanager
def tenant_session(engine: Engine, slug: str, *, public_session: Session | None = None) -> Iterator[tuple[Session, TenantRef]]:
    """A fresh session routed to one tenant, for jobs, CLI commands and tests.

    Commits when the block ends without error, rolls back otherwise (`app.uow.unit_of_work`).
    """
    with Session(engine, expire_on_commit=False) as lookup:
        tenant = find_tenant(lookup, slug)
        if tenant is None:
            raise NoTenant(f"unknown tenant {slug!r}")
        ref = TenantRef.of(tenant)
    from app.uow import unit_of_work

    with Session(engine, expire_on_commit=False, info={TENANT_INFO_KEY: ref.schema}) as session:
        with unit_of_work(session):
            yield session, ref


def schema_exists(session: Session, schema: str) -> bool:
    return bool(
        session.execute(
            text("SELECT 1 FROM information_schema.schemata WHERE schema_name = :s"), {"s": schema}
        ).scalar()
    )
