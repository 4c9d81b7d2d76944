"""Periodic work: reminder scan, re-dispatch of stuck deliveries, outbox and log retention.

Every function takes `now` so tests drive the clock; `rq cron` (app/jobs/cron_config.py)
calls them without it. Each is safe to run in several places at once: reminders
are unique per (appointment, kind, offset, channel, recipient) and sending claims the row.
"""

from __future__ import annotations

import datetime as dt
import logging

from redis.exceptions import RedisError
from sqlalchemy import delete, text

from app.jobs import notify as jobs
from app.jobs.relay import active_tenants
from app.jobs.runtime import config, engine, setting
from app.models.tenant import OutboxEvent
from app.services import notify
from app.tenancy import tenant_session

log = logging.getLogger(__name__)
UTC = dt.timezone.utc


def _parse(now) -> dt.datetime:
    if now is None:
        return dt.datetime.now(UTC)
    if isinstance(now, str):
        return dt.datetime.fromisoformat(now.replace("Z", "+00:00"))
    return now


def scan_tenant_reminders(slug: str, now: dt.datetime, send: bool = True) -> list[int]:
    """Plan the reminders of one tenant due at `now`; send them inline when `send`."""
    settings = notify.Settings.from_config(config())
    with tenant_session(engine(), slug) as (session, ref):
        ids = notify.insert_deliveries(session, notify.plan_reminders(session, ref, settings, now))
    if send:
        for delivery_id in ids:
            jobs.deliver(slug, delivery_id, now=now)
    return ids


def scan_reminders(now=None, tenants: list[str] | None = None) -> int:
    """RQ/cron job: reminders of every active tenant (or of `tenants`); `now` (datetime or ISO string) pins the clock."""
    when = _parse(now)
    return sum(len(scan_tenant_reminders(slug, when)) for slug in tenants or active_tenants(engine()))


def sweep_due(now=None) -> int:
    """RQ/cron job: enqueue deliveries that are due but not in flight (Redis was down, a worker died)."""
    when = _parse(now)
    grace = dt.timedelta(seconds=setting("NOTIFY_SWEEP_GRACE_SECONDS", 30))
    total = 0
    for slug in active_tenants(engine()):
        with tenant_session(engine(), slug) as (session, _ref):
            ids = jobs.due_ids(session, when, grace)
        try:
            total += jobs.dispatch(slug, ids)
        except (RedisError, OSError) as exc:
            log.warning("sweep of %s: Redis unavailable (%s)", slug, exc)
    return total


def retention(now=None) -> int:
    """RQ/cron job: drop relayed outbox rows, finished delivery bodies past their retention, and
    background exports past their keeping time."""
    from app.services import exports

    when = _parse(now)
    limits = exports.Limits.from_config(config())
    outbox_days = setting("OUTBOX_RETENTION_DAYS", 14)
    body_days = setting("NOTIFY_BODY_RETENTION_DAYS", 90)
    removed = 0
    for slug in active_tenants(engine()):
        with tenant_session(engine(), slug) as (session, _ref):
            removed += session.execute(delete(OutboxEvent).where(
                OutboxEvent.relayed_at < when - dt.timedelta(days=outbox_days))).rowcount
            # Keep the log line (status, attempts), drop the personal text.
            session.execute(text(
                "UPDATE notification_delivery SET subject = NULL, body_text = NULL, body_html = NULL "
                "WHERE created_at < :cutoff AND status IN ('sent', 'delivered', 'failed', 'bounced', 'skipped') "
                "AND body_text IS NOT NULL"), {"cutoff": when - dt.timedelta(days=body_days)})
            exports.purge(session, when, limits)
    return removed


def retention_policies(now=None) -> int:
    """RQ/cron job: each business's own retention policy, where enabled (after its dry run)."""
    from app.gdpr import retention as policies

    return len(policies.apply_enabled(engine(), active_tenants(engine()), _parse(now)))




def compact_day_rollups() -> int:
    """RQ/cron job: move every active tenant's analytics day-rollup delta into the rollup; rows moved."""
    from app.services import day_rollup

    moved = 0
    for slug in active_tenants(engine()):
        try:
            moved += max(0, day_rollup.compact_tenant(engine(), slug))
        except Exception:  # noqa: BLE001 - one business's failure (a schema not migrated yet) must not stop the others
            log.exception("day rollup compaction of %s failed", slug)
    return moved


__all__ = ["scan_reminders", "sweep_due", "retention", "retention_policies", "scan_tenant_reminders", "compact_day_rollups"]
