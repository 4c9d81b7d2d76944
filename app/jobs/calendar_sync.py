"""Calendar sync jobs (queue "integrations"): push from outbox events, pulls, retries, the periodic tick.

Jobs carry the tenant slug and ids. Each push or pull runs in one unit of work
(`app.uow`) of its own tenant session. A temporary provider failure (429 with
Retry-After, 5xx, no answer) leaves the link in "retry" with its due time; the
job re-enqueues itself for then (RQ scheduler) and `tick` picks up anything
missed. `tick` (every minute from `rq cron`) also pulls connections whose poll
is due (the only path for CalDAV, the safety net for the others), renews push
channels and raises the failing-connection alert.
"""

from __future__ import annotations

import datetime as dt
import logging

from redis.exceptions import RedisError
from sqlalchemy import or_, select

from app.jobs.context import job_app
from app.jobs.runtime import config, engine
from app.models import tenant as m
from app.models.calendar_sync import STATUS_ACTIVE, CalendarConnection, CalendarEventLink
from app.services import calendar_sync as cal
from app.services import events as domain_events

log = logging.getLogger(__name__)
UTC = dt.timezone.utc
PUSH_EVENTS = (domain_events.BOOKED, domain_events.RESCHEDULED, domain_events.CANCELLED,
               domain_events.STATUS_CHANGED)
PUSH_JOB = "app.jobs.calendar_sync.push"
PULL_JOB = "app.jobs.calendar_sync.pull"


def _now() -> dt.datetime:
    return dt.datetime.now(UTC)


def _session(slug: str):
    from app.tenancy import tenant_session

    return tenant_session(engine(), slug)


def _cfg() -> cal.SyncConfig:
    return cal.SyncConfig.from_config(config())


def handle_events(tenant: str, event_ids: list[int]) -> int:
    """RQ job (from the outbox relay): push the appointments these events touched; returns how many."""
    with job_app().app_context():
        with _session(tenant) as (session, _ref):
            if not session.scalar(select(CalendarConnection.id).where(CalendarConnection.status == STATUS_ACTIVE).limit(1)) \
                    and not session.scalar(select(CalendarEventLink.id).limit(1)):
                return 0
            rows = session.execute(select(m.OutboxEvent.aggregate_id, m.OutboxEvent.event_type)
                                   .where(m.OutboxEvent.id.in_(event_ids)).order_by(m.OutboxEvent.id)).all()
        ids = list(dict.fromkeys(a for a, kind in rows if kind in PUSH_EVENTS))
        for appointment_id in ids:
            push(tenant, appointment_id)
        return len(ids)


def push(tenant: str, appointment_id: str, connection_id: int | None = None) -> list[dict]:
    """RQ job: bring one appointment's events up to date; schedules its own retry on temporary failures."""
    with job_app().app_context():
        now = _now()
        with _session(tenant) as (session, _ref):
            outcomes = cal.push_appointment(session, tenant, appointment_id, _cfg(), now, only=connection_id)
        released = [i for o in outcomes for i in o.released]
        if released:  # committed: the confirmations held for the meeting link go out now
            from app.jobs.meetings import dispatch_confirmations

            dispatch_confirmations(tenant, released)
        for o in outcomes:
            if o.action == "retry" and o.retry_in is not None:
                _enqueue_in(o.retry_in, PUSH_JOB, tenant, appointment_id, o.connection_id)
        return [o.__dict__ for o in outcomes]


def pull(tenant: str, connection_id: int, force_full: bool = False) -> dict:
    """RQ job: one incremental pull of a connection (from a change notification or the tick)."""
    with job_app().app_context():
        now = _now()
        with _session(tenant) as (session, _ref):
            conn = session.get(CalendarConnection, connection_id, with_for_update={"skip_locked": True})
            if conn is None:
                return {"skipped": "busy or gone"}
            result = cal.pull_connection(session, tenant, conn, _cfg(), now, force_full=force_full)
        for appointment_id in result.repush:
            push(tenant, appointment_id, connection_id)
        return result.__dict__


def sync(tenant: str, connection_id: int, force_full: bool = False) -> dict:
    """One pull and push pass of one connection (CLI `calendars sync`, admin "sync now")."""
    with job_app().app_context():
        now = _now()
        with _session(tenant) as (session, _ref):
            conn = session.get(CalendarConnection, connection_id, with_for_update=True)
            if conn is None:
                return {"connection": connection_id, "error": "no such connection"}
            return cal.sync_connection(session, tenant, conn, _cfg(), now, force_full=force_full)


def _enqueue_in(seconds: float, func: str, *args) -> None:
    from app.queueing import queue

    try:
        queue("integrations").enqueue_in(dt.timedelta(seconds=max(1.0, seconds)), func, *args,
                                         meta={"tenant": args[0]}, result_ttl=600, failure_ttl=7 * 86400)
    except (RedisError, OSError) as exc:  # the tick retries it
        log.warning("calendar retry of %s not scheduled (%s); the tick will pick it up", args, exc)


def tick_tenant(tenant: str, now: dt.datetime | None = None, inline: bool = True) -> dict:
    """Due pulls, due push retries, channel renewals and alerts of one tenant."""
    now = now or _now()
    with job_app().app_context(), _session(tenant) as (session, _ref):
        due_pulls = list(session.scalars(select(CalendarConnection.id).where(
            CalendarConnection.status == STATUS_ACTIVE,
            or_(CalendarConnection.next_pull_at.is_(None), CalendarConnection.next_pull_at <= now))))
        due_pushes = list(session.execute(select(CalendarEventLink.appointment_id, CalendarEventLink.connection_id).where(
            CalendarEventLink.push_status.in_(("pending", "retry")),
            or_(CalendarEventLink.next_attempt_at.is_(None), CalendarEventLink.next_attempt_at <= now))).all())
        renew = list(session.scalars(select(CalendarConnection.id).where(
            CalendarConnection.status == STATUS_ACTIVE, CalendarConnection.provider != "caldav",
            or_(CalendarConnection.next_renewal_at <= now + dt.timedelta(hours=1),
                CalendarConnection.next_renewal_at.is_(None)))))
        cal.raise_alerts(session, now)
    if inline:
        for cid in due_pulls:
            pull(tenant, cid)
        for appointment_id, cid in due_pushes:
            push(tenant, str(appointment_id), cid)
    else:
        from app.queueing import queue

        q = queue("integrations")
        for cid in due_pulls:
            q.enqueue(PULL_JOB, tenant, cid, job_id=f"calpull-{tenant}-{cid}-{int(now.timestamp() // 60)}",
                      meta={"tenant": tenant}, result_ttl=300, failure_ttl=86400)
        for appointment_id, cid in due_pushes:
            q.enqueue(PUSH_JOB, tenant, str(appointment_id), cid, meta={"tenant": tenant}, result_ttl=300,
                      failure_ttl=86400)
    for cid in renew:
        renew_channel(tenant, cid)
    return {"pulls": len(due_pulls), "pushes": len(due_pushes), "renewals": len(renew)}


def renew_channel(tenant: str, connection_id: int) -> None:
    """Renew (or open) a connection's change-notification channel."""
    with job_app().app_context():
        with _session(tenant) as (session, _ref):
            conn = session.get(CalendarConnection, connection_id)
            if conn is not None:
                cal.renew_channel(session, tenant, conn, _cfg(), _now())


def tick(now=None) -> dict:
    """RQ/cron job (every minute): enqueue due pulls and retries of every active tenant."""
    from app.jobs.relay import active_tenants

    when = dt.datetime.fromisoformat(now.replace("Z", "+00:00")) if isinstance(now, str) else (now or _now())
    totals = {"pulls": 0, "pushes": 0, "renewals": 0}
    with job_app().app_context():
        for slug in active_tenants(engine()):
            try:
                for k, v in tick_tenant(slug, when, inline=False).items():
                    totals[k] += v
            except Exception:  # one broken tenant must not stop the others
                log.exception("calendar tick of %s failed", slug)
    return totals


def check_agency_apps(agency_id: int) -> int:
    """After an agency's app changed: mark its businesses' connections that app no longer serves (CLI, admin)."""
    from sqlalchemy.orm import Session as PlainSession

    from app.models.public import Tenant

    marked = 0
    with job_app().app_context():
        with PlainSession(engine()) as lookup:
            slugs = list(lookup.scalars(select(Tenant.slug).where(Tenant.agency_id == agency_id,
                                                                  Tenant.status == Tenant.STATUS_ACTIVE)))
        for slug in slugs:
            try:
                with _session(slug) as (session, _ref):
                    marked += cal.check_oauth_apps(session, _cfg(), _now())
            except Exception:  # one broken business must not stop the others; their next use marks them
                log.exception("calendar app check of %s failed", slug)
    return marked


def enqueue_pull(tenant: str, connection_id: int) -> None:
    """Queue one incremental pull (a change notification arrived); several in a row are harmless."""
    from app.queueing import queue

    queue("integrations").enqueue(PULL_JOB, tenant, connection_id, meta={"tenant": tenant}, result_ttl=300,
                                  failure_ttl=86400)
