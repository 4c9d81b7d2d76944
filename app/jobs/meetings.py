"""Meeting jobs: make the provider's meeting match the appointment (create, move, delete).

Driven by the outbox relay (`handle_events`, for every event batch) and by its own
retries (`sync`). `sync` is idempotent: it reads the appointment, compares it with
what was last sent to the provider (kept in `meeting_details["synced"]`), makes one
call, stores the result, and looks again if the appointment changed meanwhile.
One sync per appointment at a time (a Redis lock).

A meeting that cannot be made never touches the booking: the appointment shows
`meeting_status` retry (then failed after the schedule), the admin's Meetings
health page lists it, and the staff member is mailed once when it first fails.

Confirmation mails and the link: the notification job holds the confirmation of an
online service (app.services.notify.meeting_hold) up to MEETING_HOLD_SECONDS; this
job releases the held rows the moment the link is stored, so the mail carries it.
If the provider is down the hold ends and the confirmation goes out without a link.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import uuid

from redis.exceptions import RedisError
from sqlalchemy import select, update
from sqlalchemy.orm import joinedload

from app.jobs.runtime import config, job_session
from app.meetings import MeetingError
from app.models import tenant as m
from app.services import events
from app.services import calendar_sync
from app.services import meetings as svc

log = logging.getLogger(__name__)
UTC = dt.timezone.utc
SYNC_JOB = "app.jobs.meetings.sync"
QUEUE = "integrations"
SCHEDULE = (30, 120, 600, 1800, 3600, 3600, 3600, 3600)
MEETING_EVENTS = (events.BOOKED, events.RESCHEDULED, events.CANCELLED, events.STATUS_CHANGED)
LOCK_TTL = 60


def _now() -> dt.datetime:
    return dt.datetime.now(UTC)


def retry_schedule() -> tuple[float, ...]:
    raw = os.environ.get("MEETING_RETRY_SCHEDULE") or config().get("MEETING_RETRY_SCHEDULE")
    return tuple(float(x) for x in str(raw).split(",")) if raw else SCHEDULE


def handle_events(tenant: str, event_ids: list[int]) -> int:
    """RQ job (from the outbox relay): sync the meetings of the appointments these events touched."""
    with job_session(tenant) as (session, _ref):
        ids = list(dict.fromkeys(session.scalars(
            select(m.OutboxEvent.aggregate_id).where(m.OutboxEvent.id.in_(event_ids),
                                                     m.OutboxEvent.event_type.in_(MEETING_EVENTS))
            .order_by(m.OutboxEvent.id))))
        keys = []
        for value in ids:
            try:
                keys.append(uuid.UUID(str(value)))
            except ValueError:
                continue
        if not keys:
            return 0
        wanted = session.execute(
            select(m.Appointment.id).join(m.Service, m.Service.id == m.Appointment.service_id)
            .where(m.Appointment.id.in_(keys))
            .where((m.Service.meeting != "none") | m.Appointment.meeting_id.is_not(None))).scalars().all()
        if wanted:
            session.execute(update(m.Appointment).where(m.Appointment.id.in_(wanted),
                                                        m.Appointment.meeting_status.is_(None))
                            .values(meeting_status="pending"))
    for appointment_id in wanted:
        sync(tenant, str(appointment_id))
    return len(wanted)


def _enqueue(tenant: str, appointment_id: str, delay: float) -> None:
    from app.queueing import queue

    try:
        queue(QUEUE).enqueue_in(dt.timedelta(seconds=max(delay, 0.05)), SYNC_JOB, tenant, appointment_id,
                                result_ttl=600, failure_ttl=7 * 86400)
    except (RedisError, OSError) as exc:
        log.warning("meeting of %s/%s: cannot schedule a retry (%s); the sweep will", tenant, appointment_id, exc)


def sync(tenant: str, appointment_id: str) -> str:
    """RQ job: bring the appointment's meeting in line with the appointment; returns what it did."""
    from app.queueing import redis_connection

    from app.meetings.base import TOKENS

    r = redis_connection()
    TOKENS.shared = r  # one provider token for all workers
    lock_key, token = f"upz:mtg:{tenant}:{appointment_id}", uuid.uuid4().hex
    if not r.set(lock_key, token, nx=True, ex=LOCK_TTL):
        _enqueue(tenant, appointment_id, 1.0)
        return "busy"
    try:
        outcome = "in sync"
        for _ in range(3):
            outcome, again = _sync_once(tenant, appointment_id)
            if not again:
                break
        return outcome
    finally:
        r.eval("if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0",
               1, lock_key, token)


def _synced(appt: m.Appointment) -> dict:
    return {"start": appt.start_at.isoformat(), "end": appt.end_at.isoformat()}


def _sync_once(tenant: str, appointment_id: str) -> tuple[str, bool]:
    key = uuid.UUID(appointment_id)
    with job_session(tenant) as (session, ref):
        appt = session.get(m.Appointment, key, options=[joinedload(m.Appointment.service),
                                                         joinedload(m.Appointment.staff),
                                                         joinedload(m.Appointment.customer)])
        if appt is None:
            return "gone", False
        wanted = svc.wants_meeting(appt)
        on_event = svc.made_on_calendar(appt)
        if on_event or (wanted and not appt.meeting_id):
            on_calendar = svc.calendar_connection_for_meeting(session, appt)
            if on_calendar is not None:
                # The staff member's own calendar event carries the link (the calendar push makes,
                # moves and deletes it with the event): nothing for the provider's API. Taken in
                # turn with that push and read again, so a link it has just stored is kept.
                calendar_sync.lock_appointment(session, key)
                session.refresh(appt, svc.MEETING_COLUMNS)
                svc.store_calendar_meeting(session, appt, on_calendar, "", None, {})
                return "on the staff member's calendar", False
            if on_event:
                if wanted and appt.meeting_join_url and svc.calendar_meeting_owner(session, appt) == appt.staff_id:
                    # Their connection needs a reconnect: the event and its link still exist; keep them.
                    return "on the staff member's calendar", False
                # Cancelled, or the staff member or their connection changed: the push removes the
                # old event with its link; a still wanted meeting is made afresh below.
                appt.meeting_id, appt.meeting_join_url, appt.meeting_details = None, None, {}
                if not wanted:
                    appt.meeting_status, appt.meeting_error = "deleted", None
                    return "deleted with the calendar event", False
                appt.meeting_status = "pending"
        provider = appt.meeting_provider or (appt.service.meeting if wanted else None)
        details = dict(appt.meeting_details or {})
        snapshot = (appt.status, appt.start_at, appt.end_at, appt.sequence)
        if not wanted and not appt.meeting_id:
            if appt.meeting_status in ("pending", "retry", "failed"):
                appt.meeting_status, appt.meeting_error = "deleted", None
            return "nothing to do", False
        if wanted and appt.meeting_id and details.get("synced") == _synced(appt):
            if appt.meeting_status != "ready":
                appt.meeting_status, appt.meeting_error = "ready", None
            return "in sync", False
        creds = svc.credentials(session, provider, ref.id, ref.agency_id, config())
        host = details.get("host") or svc.host_for(provider, creds, appt.staff)
        topic = f"{appt.service.name} – {ref.name}" if getattr(ref, "name", None) else appt.service.name
        customer = appt.customer.name if appt.customer else ""
        agenda = f"{appt.service.name} with {appt.staff.name}" + (f" for {customer}" if customer else "")
        meeting_id, start, end, zone = appt.meeting_id, appt.start_at, appt.end_at, appt.timezone
        synced = _synced(appt)
    try:
        client = svc.client_for(provider, creds)
        if not wanted:
            client.delete(meeting_id, user_id=host)
            action, made = "deleted", None
        elif meeting_id:
            client.update(meeting_id, topic, start, end, timezone=zone, agenda=agenda, user_id=host)
            action, made = "updated", None
        else:
            made = client.create(host, topic, start, end, timezone=zone, agenda=agenda, request_id=key.hex)
            action = "created"
    except MeetingError as exc:
        return _failed(tenant, key, provider, exc), False
    now = _now()
    with job_session(tenant) as (session, ref):
        appt = session.get(m.Appointment, key, with_for_update=True, populate_existing=True)
        if appt is None:
            return action, False
        details = dict(appt.meeting_details or {})
        before_url = appt.meeting_join_url
        if made is not None:
            details = {**made.details, "host": host}
            appt.meeting_provider, appt.meeting_id, appt.meeting_join_url = made.provider, made.id, made.join_url
            svc.index_meeting(session, ref.id, made.provider, made.id, appt.id)
        if action == "deleted":
            svc.unindex_meeting(session, appt.meeting_provider, meeting_id)
            appt.meeting_status = "deleted"
            details.pop("synced", None)
            appt.meeting_id = None
        else:
            details["synced"] = synced
            appt.meeting_status = "ready"
        appt.meeting_details, appt.meeting_error, appt.meeting_attempts = details, None, 0
        changed = (appt.status, appt.start_at, appt.end_at, appt.sequence) != snapshot
        if action != "deleted" and appt.meeting_join_url and appt.meeting_join_url != before_url:
            released = svc.link_ready(session, ref.slug, appt, now)
        else:
            released = svc.release_held_confirmations(session, key, now) if action != "deleted" else []
    if released:
        dispatch_confirmations(tenant, released)
    log.info("meeting %s for appointment %s of %s", action, appointment_id, tenant)
    return action, changed


def dispatch_confirmations(tenant: str, delivery_ids: list[int]) -> None:
    from app.jobs.notify import dispatch

    try:
        dispatch(tenant, delivery_ids)
    except (RedisError, OSError) as exc:
        log.warning("held confirmations of %s: cannot enqueue (%s); the sweep sends them", tenant, exc)


def _failed(tenant: str, key: uuid.UUID, provider: str, exc: MeetingError) -> str:
    """Record a failed attempt, schedule the next, tell the staff member the first time."""
    now = _now()
    schedule = retry_schedule()
    with job_session(tenant) as (session, ref):
        appt = session.get(m.Appointment, key, with_for_update=True, populate_existing=True)
        if appt is None:
            return "gone"
        attempts = (appt.meeting_attempts or 0) + 1
        appt.meeting_attempts = attempts
        appt.meeting_error = str(exc)[:2000]
        appt.meeting_provider = appt.meeting_provider or provider
        final = attempts > len(schedule) or not exc.temporary and attempts >= 3
        appt.meeting_status = "failed" if final else "retry"
        released = svc.release_held_confirmations(session, key, now) if final else []
        staff = appt.staff
        if attempts == 1 and staff is not None and staff.email:
            _tell_staff(session, staff.email, appt, ref, exc)
    if released:
        dispatch_confirmations(tenant, released)
    if not final:
        delay = schedule[attempts - 1]
        if exc.retry_after:
            delay = max(delay, exc.retry_after)
        _enqueue(tenant, str(key), delay)
    log.warning("meeting for appointment %s of %s failed (attempt %d%s): %s", key, tenant, attempts,
                ", giving up" if final else "", exc)
    return "failed" if final else "retry"


def _tell_staff(session, email: str, appt: m.Appointment, ref, exc: Exception) -> None:
    from app.jobs.context import job_app
    from app.services.mail import queue_mail

    provider = {"zoom": "Zoom", "teams": "Microsoft Teams", "google_meet": "Google Meet"}.get(
        appt.meeting_provider or appt.service.meeting, "online")
    with job_app().app_context():
        queue_mail(session, email, f"No {provider} link yet for {appt.service.name} on "
                                   f"{appt.start_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC",
                   f"The {provider} meeting for this booking could not be made: {exc}\n\n"
                   "The booking stands. We keep trying and mail the link to the customer when it exists; "
                   "the admin's Meetings page shows the state. You may send the customer a link yourself.")


def retry_now(tenant: str, appointment_id: str) -> None:
    """Admin "retry now": a fresh schedule and an immediate attempt."""
    with job_session(tenant) as (session, _ref):
        session.execute(update(m.Appointment).where(m.Appointment.id == uuid.UUID(appointment_id))
                        .values(meeting_attempts=0, meeting_status="pending"))
    _enqueue(tenant, appointment_id, 0.05)


def sweep(now=None) -> int:
    """RQ/cron job: appointments whose meeting is pending but no job holds it (Redis was down) get one."""
    from app.jobs.relay import active_tenants
    from app.jobs.runtime import engine
    from app.tenancy import tenant_session

    cutoff = (now or _now()) - dt.timedelta(minutes=2)
    total = 0
    for slug in active_tenants(engine()):
        with tenant_session(engine(), slug) as (session, _ref):
            ids = session.scalars(select(m.Appointment.id).where(
                m.Appointment.meeting_status == "pending", m.Appointment.updated_at < cutoff).limit(200)).all()
        for appointment_id in ids:
            _enqueue(slug, str(appointment_id), 0.05)
        total += len(ids)
    return total
