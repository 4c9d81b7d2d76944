"""The daily appointment rollup behind the analytics figures (tenant migration t0014day).

Triggers on `appointment` append signed rows to `appointment_day_delta`; the figures read
rollup and delta together (app/services/analytics.py), so they are exact whether or not the
delta has been compacted. Compaction only keeps the delta short: the cron job
(app/jobs/periodic.py `compact_day_rollups`) and the end of a bulk import. A change of the
business's time zone recounts the days in the new zone in the caller's transaction
(`rebuild`); a figure asked in another zone than the rollup's reads the rows instead.
"""

from __future__ import annotations

import logging

from sqlalchemy import text
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)


def compact(session: Session) -> int:
    """Move the routed tenant's delta into the rollup; rows moved, or -1 when another compaction holds it."""
    return session.scalar(text("SELECT appointment_day_compact()"))


def rebuild(session: Session, schema: str, timezone: str) -> None:
    """Recount schema `schema`'s rollup in `timezone`, in the caller's transaction (writers to its
    appointments wait until it commits). Call it wherever the business's time zone changes."""
    session.execute(text(f'SELECT "{schema}".appointment_day_rebuild(:tz)'), {"tz": timezone})


def follow_timezone(session: Session, tenant) -> bool:
    """Rebuild the rollup of `tenant` (a Tenant row) if its time zone was changed and not yet flushed;
    in the caller's transaction, so the zone and the days it counts commit together."""
    from sqlalchemy import inspect

    from app.models.public import Tenant

    history = inspect(tenant).attrs.timezone.history
    if tenant.status != Tenant.STATUS_ACTIVE or not history.deleted or history.deleted[0] == tenant.timezone:
        return False
    # A schema not yet migrated to t0014day has no rollup: its migration counts in the zone then current.
    if session.scalar(text("SELECT to_regprocedure(:fn)"), {"fn": f'"{tenant.schema}".appointment_day_rebuild(text)'}) is None:
        return False
    rebuild(session, tenant.schema, tenant.timezone)
    return True


def zone(session: Session, schema: str) -> str | None:
    """The zone schema `schema`'s rollup counts days in."""
    return session.scalar(text(f'SELECT timezone FROM "{schema}".appointment_day_zone'))


def compact_tenant(engine, slug: str) -> int:
    """Compact one tenant's delta; rebuild first if its rollup counts another zone than the business's."""
    from app.tenancy import tenant_session

    with tenant_session(engine, slug) as (session, ref):
        if zone(session, ref.schema) != ref.timezone:
            log.warning("day rollup of %s counted another zone than %s: rebuilt", slug, ref.timezone)
            rebuild(session, ref.schema, ref.timezone)
            return 0
        return compact(session)
