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
from dataclasses import dataclass

from redis.exceptions import RedisError
from sqlalchemy import delete, select, text, update

from app import metrics
from app.jobs.mailout import BatchSender, fast_email
from app.jobs.runtime import config, job_session, mailer, setting, sms_client
from app.models import tenant as m
from app.models.notifications import NotificationDelivery
from app.services import messaging, notify

log = logging.getLogger(__name__)
SEND_JOB = "app.jobs.notify.send_delivery"
UTC = dt.timezone.utc


def _now() -> dt.datetime:
    return dt.datetime.now(UTC)


def handle_event(tenant: str, event_id: int) -> int:
    """RQ job: the deliveries of one outbox event (see handle_events)."""
    return handle_events(tenant, [event_id])


def handle_events(tenant: str, event_ids: list[int]) -> int:
    """RQ job: plan the deliveries of some outbox events and send those due now; returns how many were new.

    New rows due now are inserted already claimed ("sending", with a lease) and
    rendered in the same transaction, so a batch costs two commits in all.
    """
    now = _now()
    cfg = config()
    settings = notify.Settings.from_config(cfg)
    lease = dt.timedelta(seconds=setting("NOTIFY_LEASE_SECONDS", 120))
    with job_session(tenant) as (session, ref):
        events = session.scalars(select(m.OutboxEvent).where(m.OutboxEvent.id.in_(event_ids))
                                 .order_by(m.OutboxEvent.id)).all()
        notify.preload_appointments(session, [e.aggregate_id for e in events])
        rows = [row for event in events for row in notify.plan_event(session, ref, event, settings, now)]
        for row in rows:
            if row["not_before"] <= now:
                row.update(status="sending", lease_until=now + lease, attempts=1)
        ids = notify.insert_deliveries(session, rows)
        # Planned: the relay stops watching these events (it relays again events never handled).
        session.execute(update(m.OutboxEvent).where(m.OutboxEvent.id.in_(event_ids), m.OutboxEvent.handled_at.is_(None))
                        .values(handled_at=now))
        prepared = [_prepare(session, ref, d, settings, cfg, now) for d in _claimed(session, ids)]
    _send_and_record(tenant, prepared, now)
    return len(ids)


def send_delivery(tenant: str, delivery_id: int) -> str:
    """RQ job: send one delivery (no-op when another worker has it or it is done)."""
    return deliver(tenant, delivery_id)


def _claimed(session, ids: list[int]) -> list[NotificationDelivery]:
    if not ids:
        return []
    return list(session.scalars(select(NotificationDelivery).where(
        NotificationDelivery.id.in_(ids), NotificationDelivery.status == "sending").order_by(NotificationDelivery.id)))


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
    appt = notify.load_appointment(session, d.appointment_id)
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


@dataclass
class Prepared:
    """A claimed delivery, rendered and ready to hand to the provider (or already settled)."""

    delivery: NotificationDelivery
    outcome: str | None = None  # set when nothing is to be sent: skipped / failed / moved
    error: str | None = None
    out: notify.Composed | None = None
    sender_name: str = ""
    reply_to: str | None = None
    callback: str = ""


def _prepare(session, ref, d: NotificationDelivery, settings, cfg, now: dt.datetime) -> Prepared:
    """Check a claimed row still matters and render it (inside the claiming transaction)."""
    reason = _irrelevant(session, d)
    if reason == "moved":
        # The reminder is due at another time now; the scan plans it afresh.
        session.execute(delete(NotificationDelivery).where(NotificationDelivery.id == d.id))
        return Prepared(d, outcome="moved")
    if reason:
        _finish(d, "skipped", now, error=reason)
        return Prepared(d, outcome="skipped")
    try:
        out = notify.compose(session, ref, d, settings, cfg["MAIL_FROM"], now)
    except Exception as exc:  # a broken template or data: retrying will not help
        _finish(d, "failed", now, error=f"cannot render: {exc}")
        return Prepared(d, outcome="failed")
    d.subject, d.body_text, d.body_html = out.subject, out.text, out.html
    sender_name, reply_to = notify.sender(session, ref)
    return Prepared(d, out=out, sender_name=sender_name, reply_to=reply_to,
                    callback=f"{settings.public_url}/hooks/sms/status/{ref.slug}")


def deliver(tenant: str, delivery_id: int, now: dt.datetime | None = None) -> str:
    """Claim, render and send one delivery; returns the resulting status ("busy" if not claimed)."""
    now = now or _now()
    cfg = config()
    settings = notify.Settings.from_config(cfg)
    with job_session(tenant) as (session, ref):
        d = _claim(session, delivery_id, now, setting("NOTIFY_LEASE_SECONDS", 120))
        if d is None:
            return "busy"
        prepared = _prepare(session, ref, d, settings, cfg, now)
    # The claim (and the rendered text) is committed: now talk to the provider.
    return _send_and_record(tenant, [prepared], now)[0]


def _send_and_record(tenant: str, items: list[Prepared], now: dt.datetime) -> list[str]:
    """Send each prepared delivery, then record every outcome in one transaction."""
    cfg = config()
    results = []
    smtp_mailer = mailer()
    smtp = BatchSender(smtp_mailer) if smtp_mailer is not None else None
    try:
        for p in items:
            if p.outcome is not None:
                results.append((p, p.outcome, None, None, None))
                continue
            if _lease_lost(p.delivery):
                # A batch that ran past its lease: the sweep may have handed this row to another
                # worker already. Sending it here too could deliver it twice; leave it to the sweep.
                log.warning("delivery %s: lease ran out before its send; left to the sweep", p.delivery.id)
                results.append((p, LEASE_LOST, None, None, None))
                continue
            try:
                status, provider_id = _send(p.delivery, p.out, p.sender_name, p.reply_to, cfg, p.callback, smtp)
                results.append((p, status, provider_id, None, None))
            except Exception as exc:
                metrics.DELIVERY_FAILURES.labels(p.delivery.channel).inc()
                status, _none, error = _classify(exc, p.delivery)
                opted_out = p.delivery.recipient if getattr(exc, "opted_out", False) else None
                results.append((p, status, None, error, opted_out))
    finally:
        if smtp is not None:
            smtp.close()
    retries = []
    if any(r[0].outcome is None for r in results):
        with job_session(tenant) as (session, ref):
            for p, status, provider_id, error, opted_out in results:
                if p.outcome is not None or status == LEASE_LOST:
                    continue
                row = session.get(NotificationDelivery, p.delivery.id, with_for_update=True)
                if status == "retry":
                    delay = _retry_delay(row.attempts, getattr(error, "retry_after", None))
                    row.status, row.not_before, row.lease_until = "retry", now + dt.timedelta(seconds=delay), None
                    row.last_error = str(error)[:2000]
                    retries.append((row.id, delay))
                else:
                    _finish(row, status, now, error=str(error)[:2000] if error else None, provider_id=provider_id)
                if opted_out:
                    messaging.set_sms_opt_out(session, ref.slug, opted_out)
    for delivery_id, delay in retries:
        _schedule(tenant, delivery_id, delay)
    return [r[1] for r in results]


def _finish(d: NotificationDelivery, status: str, now: dt.datetime, *, error: str | None = None,
            provider_id: str | None = None) -> None:
    d.status, d.lease_until, d.updated_at = status, None, now
    if error is not None:
        d.last_error = error
    if provider_id:
        d.provider_id = provider_id
    if status == "sent":
        # When it went out: after the send, and never before the row's own (database-clock) creation.
        sent = _now()
        d.sent_at = max(sent, d.created_at) if d.created_at is not None else sent


LEASE_LOST = "lease-lost"
LEASE_MARGIN = dt.timedelta(seconds=0.5)


def _lease_lost(d: NotificationDelivery) -> bool:
    """True when this worker's claim on `d` has run out (or is about to): the sweep re-claims such rows."""
    return d.lease_until is not None and _now() >= d.lease_until - LEASE_MARGIN


def _send(d: NotificationDelivery, out: notify.Composed, sender_name: str, reply_to: str | None, cfg,
          callback: str, smtp: BatchSender | None) -> tuple[str, str | None]:
    if d.channel == "sms":
        client = sms_client()
        if client is None:
            raise RuntimeError("SMS is not configured (SMS_API_BASE_URL, SMS_ACCOUNT_SID)")
        result = client.send(d.recipient, out.text, status_callback=callback)
        return "sent", result.sid
    if smtp is None:
        # Development: the admin's mail outbox page shows the stored message.
        return "sent", "dev-outbox"
    data, message_id = fast_email(sender_name, cfg["MAIL_FROM"], reply_to, d.recipient, out.subject, out.text,
                                  out.html, out.ics, out.ics_method, {"X-Upzento-Delivery": str(d.id)})
    return "sent", smtp.send_bytes(cfg["MAIL_FROM"], d.recipient, data, message_id)


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
    from app.queueing import queue

    try:
        queue("notifications").enqueue_in(dt.timedelta(seconds=delay), SEND_JOB, tenant, delivery_id,
                                          result_ttl=600, failure_ttl=7 * 86400)
    except (RedisError, OSError) as exc:
        log.warning("cannot schedule retry of %s/%s (%s); the sweep will pick it up", tenant, delivery_id, exc)


def dispatch(tenant: str, delivery_ids: list[int]) -> int:
    """Enqueue sending of `delivery_ids` now; returns how many were enqueued."""
    from app.queueing import queue

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
