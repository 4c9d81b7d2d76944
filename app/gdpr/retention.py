"""Retention per business: anonymise customers with no appointment for N months, blank message
bodies after N days, delete delivery-log rows after N days.

The policy acts only once enabled, and it can be enabled only after a dry run: `run(dry_run=True)`
reports what would go (counts, and the customers by id) and changes nothing; the scheduled
job (`app.jobs.periodic.retention_policies`, daily from rq cron) then applies enabled policies.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import text
from sqlalchemy.orm import Session

from app.errors import ValidationError
from app.gdpr import audit, subjects
from app.models import tenant as m
from app.models.gdpr import RetentionPolicy
from app.tenancy import TenantRef

UTC = dt.timezone.utc
MAX_ANONYMISED_PER_RUN = 500


def policy(session: Session) -> RetentionPolicy:
    row = session.get(RetentionPolicy, 1)
    if row is None:
        row = RetentionPolicy(id=1, enabled=False)
        session.add(row)
        session.flush()
    return row


def update(session: Session, months: int | None, body_days: int | None, log_days: int | None,
           enabled: bool) -> RetentionPolicy:
    """Change the policy; enabling needs a dry run of the same settings first."""
    for value, field, low in ((months, "customer_inactive_months", 1), (body_days, "message_body_days", 1),
                              (log_days, "delivery_log_days", 1)):
        if value is not None and (not isinstance(value, int) or value < low):
            raise ValidationError(f"{field} must be a whole number of at least {low}, or empty", field)
    row = policy(session)
    changed = (row.customer_inactive_months, row.message_body_days, row.delivery_log_days) != (months, body_days, log_days)
    row.customer_inactive_months, row.message_body_days, row.delivery_log_days = months, body_days, log_days
    if changed:
        row.dry_run_at = None  # new settings: a new dry run first
        row.dry_run_report = None
    if enabled and row.dry_run_at is None:
        raise ValidationError("run a dry run of these settings before enabling them", "enabled")
    row.enabled = enabled
    session.flush()
    return row


def _cutoffs(row: RetentionPolicy, now: dt.datetime) -> dict:
    return {
        "customers": now - dt.timedelta(days=30 * row.customer_inactive_months) if row.customer_inactive_months else None,
        "bodies": now - dt.timedelta(days=row.message_body_days) if row.message_body_days else None,
        "logs": now - dt.timedelta(days=row.delivery_log_days) if row.delivery_log_days else None,
    }


def _inactive_customers(session: Session, cutoff: dt.datetime) -> list[int]:
    return list(session.scalars(text(
        "SELECT c.id FROM customer c WHERE c.created_at < :cut AND c.email NOT LIKE 'erased-%'"
        " AND NOT EXISTS (SELECT 1 FROM appointment a WHERE a.customer_id = c.id AND a.start_at >= :cut)"
        " ORDER BY c.id"), {"cut": cutoff}))


def run(session: Session, tenant: TenantRef, now: dt.datetime | None = None, dry_run: bool = True) -> dict:
    """Apply (or, dry, only count) the policy; returns the report, kept on the policy row."""
    now = now or dt.datetime.now(UTC)
    row = policy(session)
    cut = _cutoffs(row, now)
    report: dict = {"at": subjects.iso(now), "dry_run": dry_run, "customers": [], "message_bodies": 0, "delivery_logs": 0}
    if cut["customers"]:
        report["customers"] = _inactive_customers(session, cut["customers"])
    if cut["bodies"]:
        report["message_bodies"] = session.scalar(text(
            "SELECT count(*) FROM notification_delivery WHERE created_at < :cut AND body_text IS NOT NULL"
            " AND status IN ('sent', 'delivered', 'failed', 'bounced', 'skipped')"), {"cut": cut["bodies"]})
    if cut["logs"]:
        report["delivery_logs"] = session.scalar(text(
            "SELECT count(*) FROM notification_delivery WHERE created_at < :cut"
            " AND status IN ('sent', 'delivered', 'failed', 'bounced', 'skipped')"), {"cut": cut["logs"]})
    if not dry_run:
        if not row.enabled:
            raise ValidationError("the retention policy is not enabled", "enabled")
        for cid in report["customers"][:MAX_ANONYMISED_PER_RUN]:
            subjects.erase_customer(session, tenant, session.get(m.Customer, cid), "job:retention", now=now,
                                    channel="retention")
        if cut["bodies"]:
            session.execute(text(
                "UPDATE notification_delivery SET subject = NULL, body_text = NULL, body_html = NULL"
                " WHERE created_at < :cut AND body_text IS NOT NULL"
                " AND status IN ('sent', 'delivered', 'failed', 'bounced', 'skipped')"), {"cut": cut["bodies"]})
        if cut["logs"]:
            session.execute(text(
                "DELETE FROM notification_delivery WHERE created_at < :cut"
                " AND status IN ('sent', 'delivered', 'failed', 'bounced', 'skipped')"), {"cut": cut["logs"]})
    report["customer_count"] = len(report["customers"])
    row = policy(session)
    if dry_run:
        row.dry_run_at, row.dry_run_report = now, report
    else:
        row.last_run_at, row.last_run_report = now, report
    audit.note(session, "retention", "dry_run" if dry_run else "run", None,
               {"customers": report["customer_count"], "message_bodies": report["message_bodies"],
                "delivery_logs": report["delivery_logs"]})
    session.flush()
    return report


def apply_enabled(engine, slugs: list[str], now: dt.datetime | None = None) -> dict[str, dict]:
    """The scheduled job's body: run every enabled policy (one transaction per business)."""
    from app.audit_context import acting_as
    from app.tenancy import tenant_session

    done = {}
    with acting_as("job", label="retention"):
        for slug in slugs:
            with tenant_session(engine, slug) as (session, ref):
                row = session.get(RetentionPolicy, 1)
                if row is not None and row.enabled:
                    done[slug] = run(session, ref, now, dry_run=False)
    return done


__all__ = ["apply_enabled", "policy", "run", "update"]
