"""Notification jobs: turn an event into deliveries and send each delivery at most once.

Sending one delivery:
1. claim: one UPDATE flips the row to "sending" with a lease, and commits, so
   only one worker (of any number) talks to the provider for that row;
2. check it still matters (cancelled appointment, moved reminder, opt-out);
3. render, send, record the outcome in a second transaction.
A worker killed before step 3 leaves the row "sending"; when the lease runs out
`sweep_due` dispatches it again. Temporary failures wait with exponential
backoff and full jitter (`retry_delay`); after `NOTIFY_MAX_ATTEMPTS` the row is
"failed" and the admin shows it.
"""

from __future__ import annotations

import datetime as dt
import logging

from redis.exceptions import RedisError
from sqlalchemy import delete, select, text, update

from app.jobs.runtime import config, engine, mailer, setting, sms_client
from app.models import tenant as m
from app.models.notifications import NotificationDelivery
from app.services import notify
from app.tenancy import tenant_session

log = logging.getLogger(__name__)
SEND_JOB = "app.jobs.notify.send_delivery"
UTC = dt.timezone.utc


def _now() -> dt.datetime:
    return dt.datetime.now(UTC)


def handle_event(tenant: str, event_id: int) -> int:
    """RQ job: plan the deliveries of one outbox event and send those due now; returns how many were new."""
    now = _now()
    settings = notify.Settings.from_config(config())
    with tenant_session(engine(), tenant) as (session, ref):
        event = session.get(m.OutboxEvent, event_id)
        if event is None:
            return 0
        rows = notify.plan_event(session, ref, event, settings, now)
        ids = notify.insert_deliveries(session, rows)
        later = {r["not_before"] for r in rows if r["not_before"] > now}
    for delivery_id in ids:
        deliver(tenant, delivery_id)
    if later:
        log.info("%s: %d delivery(ies) wait until %s", tenant, len(later), min(later))
    return len(ids)


def send_delivery(tenant: str, delivery_id: int) -> str:
    """RQ job: send one delivery (no-op when another worker has it or it is done)."""
    return deliver(tenant, delivery_id)


def _claim(session, delivery_id: int, now: dt.datetime, lease: float) -> NotificationDelivery | None:
    claimed = session.execute(
        update(NotificationDelivery)
        .where(NotificationDelivery.id == delivery_id)
        .where(text("((status IN ('queued', 'retry') AND not_before <= :now) "
                    "OR (status = 'sending' AND lease_until < :now))"))
        .values(status="sending", lease_until=now + dt.timedelta(seconds=lease),
                attempts=NotificationDelivery.attempts + 1, updated_at=now)
        .returning(NotificationDelivery.id),
        {"now": now},
    ).scalar()
    return session.get(NotificationDelivery, claimed, populate_existing=True) if claimed else None


def _irrelevant(session, d: NotificationDelivery) -> str | None:
    """Why the message should not go out any more, or "moved" for a reminder to re-plan."""
    appt = session.get(m.Appointment, d.appointment_id)
    if appt is None:
        return "appointment deleted"
    if d.kind in notify.NEEDS_LIVE and appt.status == m.STATUS_CANCELLED:
        return "appointment cancelled"
    if d.kind == "reminder":
        if appt.status not in notify.LIVE_FOR_REMINDERS:
            return f"appointment is {appt.status}"
        if d.due_at is not None and appt.start_at - dt.timedelta(minutes=d.offset_min) != d.due_at:
            return "moved"
    if d.channel == "sms" and appt.customer is not None and appt.customer.sms_opt_out:
        return "customer opted out of SMS"
    return None


def deliver(tenant: str, delivery_id: int, now: dt.datetime | None = None) -> str:
    """Claim, render and send one delivery; returns the resulting status ("busy" if not claimed)."""
    now = now or _now()
    lease = setting("NOTIFY_LEASE_SECONDS", 120)
    cfg = config()
    settings = notify.Settings.from_config(cfg)
    with tenant_session(engine(), tenant) as (session, ref):
        d = _claim(session, delivery_id, now, lease)
        if d is None:
            return "busy"
        reason = _irrelevant(session, d)
        if reason == "moved":
            # The reminder is due at another time now; the scan plans it afresh.
            session.execute(delete(NotificationDelivery).where(NotificationDelivery.id == d.id))
            return "moved"
        if reason:
            _finish(d, "skipped", now, error=reason)
            return "skipped"
        try:
            out = notify.compose(session, ref, d, settings, cfg["MAIL_FROM"], now)
        except Exception as exc:  # a broken template or data: retrying will not help
            _finish(d, "failed", now, error=f"cannot render: {exc}")
            return "failed"
        d.subject, d.body_text, d.body_html = out.subject, out.text, out.html
        sender_name, reply_to = notify.sender(session, ref)
        opted_out_phone = None
        callback = f"{settings.public_url}/hooks/sms/status/{tenant}"
    # The claim and the rendered text are committed: now talk to the provider.
    try:
        status, provider_id = _send(d, out, sender_name, reply_to, cfg, callback)
        error = None
    except Exception as exc:
        status, provider_id, error = _classify(exc, d)
        opted_out_phone = d.recipient if getattr(exc, "opted_out", False) else None
    with tenant_session(engine(), tenant) as (session, _ref):
        row = session.get(NotificationDelivery, delivery_id, with_for_update=True)
        if status == "retry":
            delay = _retry_delay(row.attempts, getattr(error, "retry_after", None))
            row.status, row.not_before, row.lease_until = "retry", now + dt.timedelta(seconds=delay), None
            row.last_error = str(error)[:2000]
        else:
            _finish(row, status, now, error=str(error)[:2000] if error else None, provider_id=provider_id)
        if opted_out_phone:
            session.execute(update(m.Customer).where(m.Customer.phone == opted_out_phone).values(sms_opt_out=True))
    if status == "retry":
        _schedule(tenant, delivery_id, delay)
    return status


def _finish(d: NotificationDelivery, status: str, now: dt.datetime, *, error: str | None = None,
            provider_id: str | None = None) -> None:
    d.status, d.lease_until, d.updated_at = status, None, now
    if error is not None:
        d.last_error = error
    if provider_id:
        d.provider_id = provider_id
    if status == "sent":
        d.sent_at = now


def _send(d: NotificationDelivery, out: notify.Composed, sender_name: str, reply_to: str | None, cfg,
          callback: str) -> tuple[str, str | None]:
    if d.channel == "sms":
        client = sms_client()
        if client is None:
            raise RuntimeError("SMS is not configured (SMS_API_BASE_URL, SMS_ACCOUNT_SID)")
        result = client.send(d.recipient, out.text, status_callback=callback)
        return "sent", result.sid
    from app.notifications.mailer import build_email

    msg = build_email(sender_name=sender_name, sender_email=cfg["MAIL_FROM"], reply_to=reply_to,
                      to=d.recipient, subject=out.subject, text=out.text, html=out.html, ics=out.ics,
                      ics_method=out.ics_method,
                      headers={"X-Upzento-Delivery": str(d.id)})
    smtp = mailer()
    if smtp is None:
        # Development: the admin's mail outbox page shows the stored message.
        return "sent", "dev-outbox"
    return "sent", smtp.send(msg)


def _classify(exc: Exception, d: NotificationDelivery):
    from app.notifications.mailer import MailTemporaryError
    from app.notifications.sms import SmsTemporaryError

    max_attempts = int(setting("NOTIFY_MAX_ATTEMPTS", 6))
    temporary = isinstance(exc, (MailTemporaryError, SmsTemporaryError))
    if temporary and getattr(exc, "maybe_sent", False):
        # The provider may hold the message already: a retry could send it twice.
        return "failed", None, exc
    if temporary and d.attempts < max_attempts:
        return "retry", None, exc
    if temporary:
        return "failed", None, RuntimeError(f"gave up after {d.attempts} attempts: {exc}")
    log.warning("delivery %s failed permanently: %s", d.id, exc)
    return "failed", None, exc


def _retry_delay(attempt: int, retry_after: float | None) -> float:
    from app.notifications.retry import retry_delay

    base = setting("NOTIFY_RETRY_BASE", 30)
    return retry_delay(max(attempt, 1), retry_after, base=base, cap=setting("NOTIFY_RETRY_CAP", 3600))


def _schedule(tenant: str, delivery_id: int, delay: float) -> None:
    from app.jobs.queues import queue

    try:
        queue("notifications").enqueue_in(dt.timedelta(seconds=delay), SEND_JOB, tenant, delivery_id,
                                          result_ttl=600, failure_ttl=7 * 86400)
    except (RedisError, OSError) as exc:
        log.warning("cannot schedule retry of %s/%s (%s); the sweep will pick it up", tenant, delivery_id, exc)


def dispatch(tenant: str, delivery_ids: list[int]) -> int:
    """Enqueue sending of `delivery_ids` now; returns how many were enqueued."""
    from app.jobs.queues import queue

    if not delivery_ids:
        return 0
    q = queue("notifications")
    with q.connection.pipeline() as pipe:
        for delivery_id in delivery_ids:
            q.enqueue_call(SEND_JOB, args=(tenant, delivery_id), result_ttl=600, failure_ttl=7 * 86400,
                           pipeline=pipe)
        pipe.execute()
    return len(delivery_ids)


def due_ids(session, now: dt.datetime, grace: dt.timedelta, limit: int = 500) -> list[int]:
    """Deliveries that should be in flight but may not be: due and unclaimed, or with an expired lease."""
    return list(session.scalars(
        select(NotificationDelivery.id)
        .where(text("((status IN ('queued', 'retry') AND not_before <= :cutoff) "
                    "OR (status = 'sending' AND lease_until < :now))"))
        .order_by(NotificationDelivery.not_before).limit(limit),
        {"cutoff": now - grace, "now": now},
    ))
