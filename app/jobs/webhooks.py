"""Webhook jobs: plan deliveries from outbox events, and drain each endpoint's queue in order.

Order and concurrency: one drainer per (business, endpoint) at a time (a Redis
lock); a job that finds the lock taken leaves a "dirty" mark that the holder
sees before it lets go, so no delivery is stranded. The drainer sends the
endpoint's deliveries oldest event first over one kept-alive connection. When
the receiver fails as a whole (no answer, 5xx, 429, a redirect) the drain stops
there, and the later deliveries wait behind the failed one until its retry: the
receiver sees events in event order as long as it answers. A 4xx for one
delivery does not hold back the others.

Retries: immediately, then after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (each
±20 % jitter); then the delivery is "failed" (replayable). An endpoint failing
for 5 days is disabled, its waiting deliveries are marked failed and its owners
are told by mail.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import random
import time
import uuid

from redis.exceptions import RedisError
from sqlalchemy import or_, select, update

from app.jobs.runtime import config, job_session, setting
from app.models import tenant as m
from app.models.public import Tenant
from app.models.webhooks import WebhookDelivery
from app.services import webhooks as svc
from app.webhooks import sender as http_sender
from app.webhooks import signing

log = logging.getLogger(__name__)
UTC = dt.timezone.utc
PLAN_JOB = "app.jobs.webhooks.handle_events"
DRAIN_JOB = "app.jobs.webhooks.drain"
QUEUE = "integrations"
SCHEDULE = (0, 5, 300, 1800, 7200, 18000, 36000, 36000)
JITTER = 0.2
DISABLE_AFTER_SECONDS = 5 * 86400
LOCK_TTL = 60
BATCH = 200


def _now() -> dt.datetime:
    return dt.datetime.now(UTC)


def retry_schedule() -> tuple[float, ...]:
    """The delays before attempt 1..n (WEBHOOK_RETRY_SCHEDULE overrides, e.g. "0,0.2,0.2" in tests)."""
    raw = os.environ.get("WEBHOOK_RETRY_SCHEDULE") or config().get("WEBHOOK_RETRY_SCHEDULE")
    if raw:
        return tuple(float(x) for x in str(raw).split(","))
    return SCHEDULE


def next_delay(attempts_made: int, schedule: tuple[float, ...] | None = None, rng=random) -> float | None:
    """Seconds until the next attempt after `attempts_made` attempts, None when the schedule is used up."""
    schedule = schedule or retry_schedule()
    if attempts_made >= len(schedule):
        return None
    base = schedule[attempts_made]
    return max(0.0, base * (1 + rng.uniform(-JITTER, JITTER)))


def allow_private() -> bool:
    raw = os.environ.get("WEBHOOK_ALLOW_PRIVATE") or config().get("WEBHOOK_ALLOW_PRIVATE")
    return str(raw).strip().lower() in ("1", "true", "yes", "on") if raw not in (None, "") else False


def _queue():
    from app.queueing import queue

    return queue(QUEUE)


def enqueue_drain(tenant: str, scope: str, endpoint_id: int, delay: float = 0.0, pipeline=None) -> None:
    q = _queue()
    kwargs = dict(result_ttl=60, failure_ttl=7 * 86400)
    if delay > 0:
        q.enqueue_in(dt.timedelta(seconds=delay), DRAIN_JOB, tenant, scope, endpoint_id, **kwargs)
    else:
        q.enqueue_call(DRAIN_JOB, args=(tenant, scope, endpoint_id), pipeline=pipeline, **kwargs)


def enqueue_drains(tenant: str, targets) -> None:
    """Start a drain of each (scope, endpoint id); Redis trouble is logged (the sweep catches up)."""
    targets = list(targets)
    if not targets:
        return
    try:
        q = _queue()
        with q.connection.pipeline() as pipe:
            for scope, endpoint_id in targets:
                enqueue_drain(tenant, scope, endpoint_id, pipeline=pipe)
            pipe.execute()
    except (RedisError, OSError) as exc:
        log.warning("webhooks of %s: cannot enqueue drains (%s); the sweep will", tenant, exc)


def handle_events(tenant: str, event_ids: list[int]) -> int:
    """RQ job (from the outbox relay): plan the deliveries of some events, then start their endpoints' drains."""
    with job_session(tenant) as (session, ref):
        outbox = session.scalars(select(m.OutboxEvent).where(m.OutboxEvent.id.in_(event_ids))
                                 .order_by(m.OutboxEvent.id)).all()
        counts = svc.plan_events(session, ref.slug, ref.agency_id, list(outbox))
        slow = svc.failing(session, counts) if counts else set()
    # Healthy endpoints are drained right here (a job per endpoint would cost more than
    # the POSTs); failing ones, which may wait on timeouts, get their own drain jobs.
    enqueue_drains(tenant, [pair for pair in counts if pair in slow])
    for scope, endpoint_id in counts:
        if (scope, endpoint_id) not in slow:
            drain(tenant, scope, endpoint_id)
    return sum(counts.values())


# -- draining ---------------------------------------------------------------------------------------

_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"


def drain(tenant: str, scope: str, endpoint_id: int) -> int:
    """RQ job: send the due deliveries of one endpoint in event order; returns how many were attempted."""
    from app.queueing import redis_connection

    r = redis_connection()
    base = f"upz:wh:{tenant}:{scope}:{endpoint_id}"
    lock_key, dirty_key = base + ":lock", base + ":dirty"
    r.set(dirty_key, 1, ex=3600)
    attempted = 0
    while True:
        token = uuid.uuid4().hex
        if not r.set(lock_key, token, nx=True, ex=LOCK_TTL):
            return attempted  # the holder sees the dirty mark
        try:
            while r.delete(dirty_key):
                while True:
                    n = _drain_batch(tenant, scope, endpoint_id, _throttled(lambda: r.expire(lock_key, LOCK_TTL)))
                    attempted += n
                    if n < BATCH:  # all that was due went (new rows raise the dirty mark)
                        break
        finally:
            r.eval(_RELEASE, 1, lock_key, token)
        if not r.exists(dirty_key):
            return attempted


def _throttled(fn, every: float = 5.0):
    """`fn` at most once per `every` seconds (refreshing the drain lock on every POST cost a round trip each)."""
    last = [time.monotonic()]

    def call():
        if time.monotonic() - last[0] >= every:
            last[0] = time.monotonic()
            fn()

    return call


def _receiver_wide(status: int | None) -> bool:
    """A failure of the receiver as a whole (later deliveries would fail too): hold them back."""
    return status is None or status >= 500 or status == 429 or 300 <= status < 400


def _drain_batch(tenant: str, scope: str, endpoint_id: int, keep_lock) -> int:
    """One batch; returns attempts made (0: nothing due, -1: held back behind a failure)."""
    now = _now()
    with job_session(tenant) as (session, ref):
        endpoint = svc.endpoint_by_ref(session, scope, endpoint_id)
        if endpoint is None or not endpoint.enabled:
            return 0
        rows = session.execute(
            select(WebhookDelivery.id, WebhookDelivery.msg_id, WebhookDelivery.body, WebhookDelivery.attempts,
                   WebhookDelivery.next_attempt_at, WebhookDelivery.last_status)
            .where(WebhookDelivery.endpoint_scope == scope, WebhookDelivery.endpoint_id == endpoint_id,
                   WebhookDelivery.status.in_(("pending", "retry", "sending")))
            .order_by(WebhookDelivery.event_at, WebhookDelivery.id).limit(BATCH)).all()
        secrets = svc.signing_secrets(endpoint, now) if rows else []
        url = endpoint.url
        state = (endpoint.failing_since, endpoint.last_success_at)
    due, wait_until = [], None
    for row in rows:
        if row.next_attempt_at <= now:
            due.append(row)
        elif row.attempts and _receiver_wide(row.last_status):
            wait_until = row.next_attempt_at  # in order: nothing after it goes before it
            break
    if not due:
        if wait_until is not None:
            _schedule(tenant, scope, endpoint_id, (wait_until - now).total_seconds())
        return 0
    results = []
    try:
        client = http_sender.Sender(url, allow_private())
    except http_sender.Refused as exc:
        client = None
        results = [(row, http_sender.Result(None, b"", 0, f"refused: {exc}"), {}) for row in due[:1]]
    if client is not None:
        try:
            for row in due:
                body = row.body.encode()
                hdrs = signing.headers(secrets, row.msg_id, int(time.time()), body)
                result = client.post(body, hdrs)
                results.append((row, result, hdrs))
                keep_lock()
                if not result.ok and _receiver_wide(result.status):
                    break
        finally:
            client.close()
    held = _record(tenant, scope, endpoint_id, results, state)
    if held is not None:
        _schedule(tenant, scope, endpoint_id, held)
        return 0  # the rest waits behind the failed delivery
    return len(results)


def _schedule(tenant: str, scope: str, endpoint_id: int, delay: float) -> None:
    try:
        enqueue_drain(tenant, scope, endpoint_id, delay=max(delay, 0.0) + 0.01)
    except (RedisError, OSError) as exc:
        log.warning("webhooks of %s: cannot schedule a retry (%s); the sweep will", tenant, exc)


def _record(tenant: str, scope: str, endpoint_id: int, results, state=(None, None)) -> float | None:
    """Write each attempt's outcome; returns the delay until a held-back retry, if the drain must wait."""
    now = _now()
    schedule = retry_schedule()
    updates, held = [], None
    for row, result, hdrs in results:
        attempts = row.attempts + 1
        values = dict(id=row.id, attempts=attempts, last_status=result.status, latency_ms=result.latency_ms,
                      response_body=result.body[:svc.RESPONSE_LOG_BYTES].decode("utf-8", "replace") or None,
                      request_headers=hdrs or None, last_error=result.error, updated_at=now, lease_until=None,
                      delivered_at=now if result.ok else None)
        if result.ok:
            values.update(status="delivered", next_attempt_at=now)
        else:
            values["last_error"] = values["last_error"] or f"HTTP {result.status}"
            delay = next_delay(attempts, schedule)
            if delay is None:
                values.update(status="failed", next_attempt_at=now)
            else:
                values.update(status="retry", next_attempt_at=now + dt.timedelta(seconds=delay))
                if _receiver_wide(result.status):
                    held = delay
                else:
                    _schedule(tenant, scope, endpoint_id, delay)
        updates.append(values)
    last_ok = bool(results) and results[-1][1].ok
    failing_since, last_success = state
    # The endpoint row is written only when its state changes (or once a minute for last success).
    touch = not last_ok or failing_since is not None or last_success is None \
        or (now - last_success).total_seconds() > 60
    with job_session(tenant) as (session, ref):
        if updates:
            session.execute(update(WebhookDelivery), updates)
        endpoint = svc.endpoint_by_ref(session, scope, endpoint_id) if touch else None
        if endpoint is not None and results:
            if any(r[1].ok for r in results):
                endpoint.last_success_at = now
            if last_ok:
                endpoint.failing_since = None
            else:
                endpoint.failing_since = endpoint.failing_since or now
                limit = setting("WEBHOOK_DISABLE_AFTER_SECONDS", DISABLE_AFTER_SECONDS)
                if endpoint.enabled and (now - endpoint.failing_since).total_seconds() >= limit:
                    _disable(session, ref, endpoint, now)
                    held = None
    return held


def _disable(session, ref, endpoint, now: dt.datetime) -> None:
    """Turn a failing endpoint off, fail what waits for it, and tell its owners."""
    from app.jobs.context import job_app
    from app.services.mail import queue_mail

    since = endpoint.failing_since
    endpoint.enabled = False
    endpoint.disabled_reason = f"disabled automatically: every delivery failed since {svc.iso(since)}"
    session.execute(update(WebhookDelivery).where(
        WebhookDelivery.endpoint_scope == endpoint.scope, WebhookDelivery.endpoint_id == endpoint.id,
        WebhookDelivery.status.in_(("pending", "retry", "sending"))).values(
        status="failed", last_error="endpoint disabled", updated_at=now))
    business = session.get(Tenant, ref.id)
    with job_app().app_context():
        for email in svc.owner_emails(session, endpoint, business):
            queue_mail(session, email, "A webhook endpoint was disabled",
                       f"The webhook endpoint {endpoint.uid} ({endpoint.url}) of {business.name} failed every "
                       f"delivery since {svc.iso(since)} and has been disabled.\n\nFix the receiver, enable the "
                       "endpoint again in Settings → Webhooks, and replay the failed deliveries there.")
    log.warning("webhook endpoint %s of %s disabled after failing since %s", endpoint.uid, ref.slug, since)


def sweep(now=None) -> int:
    """RQ/cron job: start drains for endpoints with due deliveries (Redis was down, a worker died)."""
    from app.jobs.relay import active_tenants
    from app.jobs.runtime import engine
    from app.tenancy import tenant_session

    when = now or _now()
    total = 0
    for slug in active_tenants(engine()):
        with tenant_session(engine(), slug) as (session, _ref):
            targets = session.execute(
                select(WebhookDelivery.endpoint_scope, WebhookDelivery.endpoint_id).distinct()
                .where(WebhookDelivery.status.in_(("pending", "retry", "sending")),
                       or_(WebhookDelivery.next_attempt_at <= when, WebhookDelivery.lease_until < when))).all()
        enqueue_drains(slug, [(s, i) for s, i in targets])
        total += len(targets)
    return total


def send_now(tenant: str, targets) -> None:
    """Start the drains of (scope, endpoint id) pairs after a replay or a test event (views, CLI)."""
    enqueue_drains(tenant, targets)
