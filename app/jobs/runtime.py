"""Per-process handles for jobs: the app's engine, config, mail and SMS clients.

RQ forks a work-horse per job; a pooled PostgreSQL connection must never be
shared across a fork, so the engine's pool is reset whenever the pid changes
(`dispose(close=False)` leaves the parent's sockets alone).
"""

from __future__ import annotations

import os
from functools import lru_cache

from sqlalchemy.engine import Engine

from app.boundedcache import BoundedCache
from app.jobs.context import job_app

_engine_pid: list[int] = []


def engine() -> Engine:
    """The app's engine, safe to use in this process."""
    from app.extensions import db

    app = job_app()
    with app.app_context():
        eng = db.engine
    if _engine_pid and _engine_pid[0] != os.getpid():
        eng.dispose(close=False)
    _engine_pid[:] = [os.getpid()]
    return eng


def config():
    """The app config of this process."""
    return job_app().config


@lru_cache(maxsize=4)
def _sms_client(base_url: str, sid: str, token: str, sender: str):
    from app.notifications.sms import SmsClient

    return SmsClient(base_url, sid, token, sender, timeout=10)


def sms_client():
    """The SMS client of this process, or None when SMS is not configured."""
    cfg = config()
    if not (cfg.get("SMS_API_BASE_URL") and cfg.get("SMS_ACCOUNT_SID")):
        return None
    return _sms_client(cfg["SMS_API_BASE_URL"], cfg["SMS_ACCOUNT_SID"], cfg.get("SMS_AUTH_TOKEN") or "",
                       cfg.get("SMS_FROM") or "")


@lru_cache(maxsize=1)
def _tls_context():
    import ssl

    # Building a default context reads the system CA store (~25 ms); do it once per process.
    return ssl.create_default_context()


def mailer():
    """An SMTP mailer, or None in development (no SMTP_HOST): mail then stays in the outbox page."""
    from app.notifications.mailer import SmtpMailer

    cfg = config()
    if not cfg.get("SMTP_HOST"):
        return None
    return SmtpMailer(cfg["SMTP_HOST"], int(cfg.get("SMTP_PORT") or 25), cfg.get("SMTP_USER"),
                      cfg.get("SMTP_PASSWORD"), starttls=bool(cfg.get("SMTP_TLS")), timeout=10,
                      ssl_context=_tls_context())


def setting(name: str, default: float) -> float:
    """A numeric tuning value from the environment (tests shorten retry delays and leases)."""
    value = os.environ.get(name) or config().get(name)
    return float(value) if value not in (None, "") else default


REF_TTL_SECONDS = 60.0
# Bounded (CACHE_JOB_TENANTS_ENTRIES): a worker serving every business keeps the recent ones.
_refs = BoundedCache("job_tenants", 1024, ttl=REF_TTL_SECONDS)


def tenant_ref(slug: str):
    """The TenantRef of `slug`, cached for a minute (saves a round trip per job)."""
    from sqlalchemy.orm import Session

    from app.tenancy import NoTenant, TenantRef, find_tenant

    hit = _refs.get(slug)
    if hit is not None:
        return hit
    with Session(engine()) as lookup:
        tenant = find_tenant(lookup, slug)
        if tenant is None:
            raise NoTenant(f"unknown tenant {slug!r}")
        ref = TenantRef.of(tenant)
    _refs.put(slug, ref)
    return ref


class job_session:
    """`with job_session(slug) as (session, ref)`: like tenancy.tenant_session, with the tenant cached.

    The block is one unit of work (app.uow): committed at its end, rolled back when it raises.
    """

    def __init__(self, slug: str):
        self.slug = slug

    def __enter__(self):
        from sqlalchemy.orm import Session

        from app.tenancy import TENANT_INFO_KEY
        from app.uow import unit_of_work

        self.ref = tenant_ref(self.slug)
        self.session = Session(engine(), expire_on_commit=False, info={TENANT_INFO_KEY: self.ref.schema})
        self._unit = unit_of_work(self.session)
        self._unit.__enter__()
        return self.session, self.ref

    def __exit__(self, exc_type, exc, tb):
        try:
            return self._unit.__exit__(exc_type, exc, tb)
        finally:
            self.session.close()
