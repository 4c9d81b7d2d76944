"""Outbox relay: committed domain events → RQ jobs.

Rows are taken with `FOR UPDATE SKIP LOCKED` (two relays never take the same
row) and marked relayed in the same transaction, after the enqueue succeeded.
If Redis is down the enqueue raises, the row keeps `relayed_at IS NULL` (with
the error noted) and goes out on a later pass. A crash between the enqueue and
the commit relays the row again; the event job is idempotent (delivery rows are
unique), so the worst case is a wasted job, never a second message.

`python -m app.jobs.relay` runs the relay loop: it LISTENs on the channel the
outbox trigger NOTIFYs on commit, relays that tenant at once, and sweeps every
tenant every few seconds (events that waited for Redis, missed notifications).
Account mail (`platform_mail`, public schema, NOTIFY payload `public`) takes the
same path: written in the request's transaction, enqueued here.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import select as select_module
import signal
import time

from redis.exceptions import RedisError
from rq import Retry
from sqlalchemy import select, text, update
from sqlalchemy.engine import Engine

from app.boundedcache import BoundedCache
from app.models.public import Tenant
from app.models.tenant import OutboxEvent
from app.notifications.retry import backoff_schedule
from app.tenancy import tenant_session

log = logging.getLogger(__name__)
CHANNEL = "upzento_outbox"
EVENT_JOB = "app.jobs.notify.handle_events"
# Other consumers of every event batch, on the integrations queue: calendar sync pushes,
# outgoing webhooks, and online meetings (which must exist before the confirmation mail).
INTEGRATION_JOBS = ("app.jobs.calendar_sync.handle_events", "app.jobs.webhooks.handle_events",
                    "app.jobs.meetings.handle_events")
# Events per job: one job shares its queries and commits among them. Under light
# load a relay pass finds one or two events; when the workers fall behind, passes
# find more and the batching grows by itself.
JOB_BATCH = 20


def active_tenants(engine: Engine) -> list[str]:
    """Slugs of tenants whose schema is ready."""
    from sqlalchemy.orm import Session

    with Session(engine) as session:
        return list(session.scalars(select(Tenant.slug).where(Tenant.status == Tenant.STATUS_ACTIVE)))


def relay_tenant(engine: Engine, slug: str, limit: int = 200) -> int:
    """Enqueue up to `limit` pending events of one tenant; returns how many went to RQ."""
    with tenant_session(engine, slug) as (session, _ref):
        rows = session.scalars(
            select(OutboxEvent).where(OutboxEvent.relayed_at.is_(None)).order_by(OutboxEvent.id)
            .limit(limit).with_for_update(skip_locked=True)
        ).all()
        return _enqueue_events(session, slug, rows)


# An event is relayed again at most this many times (attempts counts enqueue failures and re-relays).
OUTBOX_MAX_ATTEMPTS = 8


def requeue_unhandled(engine: Engine, slug: str, requeue_after: float, limit: int = 200) -> int:
    """Relay again the events relayed more than `requeue_after` seconds ago that no job handled; returns how many.

    Their jobs were lost with Redis (a failover to a replica that had not received
    them, a restart without persistence). The event jobs are idempotent (deliveries
    are unique per event, webhook deliveries and calendar pushes too), so a job that
    was only slow costs a wasted run, never a second message.
    """
    stale = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=requeue_after)
    with tenant_session(engine, slug) as (session, _ref):
        rows = session.scalars(
            select(OutboxEvent)
            .where(OutboxEvent.handled_at.is_(None), OutboxEvent.relayed_at < stale,
                   OutboxEvent.attempts < OUTBOX_MAX_ATTEMPTS)
            .order_by(OutboxEvent.id).limit(limit).with_for_update(skip_locked=True)
        ).all()
        if rows:
            log.warning("outbox relay for %s: %d event(s) relayed but never handled; relaying again", slug, len(rows))
        return _enqueue_events(session, slug, rows, again=True)


def _enqueue_events(session, slug: str, rows: list[OutboxEvent], again: bool = False) -> int:
    """Hand `rows` to RQ (one pipeline) and mark them relayed in the caller's transaction; 0 if Redis refused."""
    from app.queueing import queue

    if not rows:
        return 0
    now = dt.datetime.now(dt.timezone.utc)
    # A re-relayed batch gets new job ids: the lost job's id may still name a finished or failed job.
    suffix = f"-r{int(now.timestamp() * 1000)}" if again else ""
    try:
        q = queue("notifications")
        integrations = queue("integrations")
        with q.connection.pipeline() as pipe:
            for i in range(0, len(rows), JOB_BATCH):
                batch = rows[i:i + JOB_BATCH]
                ids = [r.id for r in batch]
                request_ids = sorted({r.payload["request_id"] for r in batch if r.payload.get("request_id")})
                q.enqueue_call(EVENT_JOB, args=(slug, ids), job_id=f"evt-{slug}-{ids[0]}-{ids[-1]}{suffix}",
                               meta={"request_ids": request_ids, "tenant": slug},
                               retry=Retry(max=5, interval=backoff_schedule(5, base=2, cap=300)),
                               result_ttl=600, failure_ttl=7 * 86400, pipeline=pipe)
                for func in INTEGRATION_JOBS:
                    integrations.enqueue_call(func, args=(slug, ids), meta={"request_ids": request_ids,
                                                                            "tenant": slug},
                                              retry=Retry(max=5, interval=backoff_schedule(5, base=2, cap=300)),
                                              result_ttl=600, failure_ttl=7 * 86400, pipeline=pipe)
            pipe.execute()
    except (RedisError, OSError) as exc:
        for row in rows:
            row.attempts += 1
            row.last_error = f"enqueue failed: {exc}"[:2000]
        log.warning("outbox relay for %s: Redis unavailable (%s); %d event(s) wait", slug, exc, len(rows))
        return 0
    values = {"relayed_at": now, "last_error": None}
    if again:
        values["attempts"] = OutboxEvent.attempts + 1
    session.execute(update(OutboxEvent).where(OutboxEvent.id.in_([r.id for r in rows])).values(**values))
    return len(rows)


MAIL_JOB = "app.jobs.mail.send_platform_mail"
MAIL_MAX_ATTEMPTS = 6


def relay_platform_mail(engine: Engine, limit: int = 200, requeue_after: float | None = None) -> int:
    """Enqueue account mail written since the last pass; returns how many went to RQ.

    Rows waiting (`relayed_at` NULL) go out at once. A row relayed more than `requeue_after`
    seconds ago and still unsent (its job was lost with Redis, or failed for good) is
    enqueued again, up to MAIL_MAX_ATTEMPTS times; the send job locks the row and skips
    it once sent, so a mail is never sent twice by two jobs.
    """
    from sqlalchemy import or_
    from sqlalchemy.orm import Session

    from app.models.public import PlatformMail
    from app.queueing import queue
    from app.uow import unit_of_work
    from config import Config

    requeue_after = Config.MAIL_REQUEUE_SECONDS if requeue_after is None else requeue_after
    now = dt.datetime.now(dt.timezone.utc)
    stale = now - dt.timedelta(seconds=requeue_after)
    with Session(engine) as session, unit_of_work(session):
        rows = session.scalars(
            select(PlatformMail)
            .where(~PlatformMail.sent, PlatformMail.attempts < MAIL_MAX_ATTEMPTS,
                   or_(PlatformMail.relayed_at.is_(None), PlatformMail.relayed_at < stale))
            .order_by(PlatformMail.id).limit(limit).with_for_update(skip_locked=True)
        ).all()
        if not rows:
            return 0
        try:
            q = queue("notifications")
            with q.connection.pipeline() as pipe:
                for row in rows:
                    q.enqueue_call(MAIL_JOB, args=(row.id,), job_id=f"mail-{row.id}-{row.attempts}",
                                   retry=Retry(max=3, interval=backoff_schedule(3, base=5, cap=300)),
                                   result_ttl=600, failure_ttl=7 * 86400, pipeline=pipe)
                pipe.execute()
        except (RedisError, OSError) as exc:
            for row in rows:
                row.last_error = f"enqueue failed: {exc}"[:2000]
            log.warning("outbox relay: Redis unavailable (%s); %d account mail(s) wait", exc, len(rows))
            return 0
        for row in rows:
            row.relayed_at = now
            row.attempts += 1
            row.last_error = None
        return len(rows)


def drain_platform_mail(engine: Engine, limit: int = 200, requeue_after: float | None = None) -> int:
    """`relay_platform_mail` until a batch comes back short: a burst of account mail (an agency
    inviting its whole team) goes out in one pass, not 200 per sweep."""
    total = 0
    while True:
        n = relay_platform_mail(engine, limit, requeue_after)
        total += n
        if n < limit:
            return total


def relay_all(engine: Engine, limit: int = 200, requeue_after: float | None = None) -> int:
    """One pass over every active tenant (each drained while full batches come back), then account mail.

    With `requeue_after`, events relayed that long ago and never handled are relayed again too.
    """
    total = drain_platform_mail(engine, limit)
    for slug in active_tenants(engine):
        while True:
            n = relay_tenant(engine, slug, limit)
            total += n
            if n < limit:
                break
        if requeue_after is not None:
            total += requeue_unhandled(engine, slug, requeue_after, limit)
    return total


def _requeue_seconds() -> float:
    from config import Config

    return float(os.environ.get("OUTBOX_REQUEUE_SECONDS") or Config.OUTBOX_REQUEUE_SECONDS)


def relay_job() -> int:
    """RQ/cron entry point: one relay pass, lost jobs included."""
    from app.jobs.runtime import engine

    return relay_all(engine(), requeue_after=_requeue_seconds())


# Bounded (CACHE_RELAY_SLUGS_ENTRIES): the schemas that NOTIFYed lately.
_slugs_by_schema = BoundedCache("relay_slugs", 2048)


def _slug_of(engine: Engine, schema: str) -> str | None:
    """The slug of the tenant whose schema NOTIFYed (schema names are stored on the tenant row)."""
    slug = _slugs_by_schema.get(schema)
    if slug is None:
        from sqlalchemy.orm import Session

        with Session(engine) as session:
            slug = session.scalar(select(Tenant.slug).where(Tenant.schema_name == schema))
        if slug is not None:
            _slugs_by_schema.put(schema, slug)
    return slug


def run(engine: Engine, sweep_every: float = 2.0, limit: int = 200, coalesce: float = 0.05,
        listen_engine: Engine | None = None, requeue_after: float | None = None) -> None:
    """Relay until SIGTERM/SIGINT: on NOTIFY (after `coalesce` seconds), and a full sweep every `sweep_every` seconds.

    `listen_engine` holds the LISTEN connection (DATABASE_DIRECT_URL: a transaction pooler
    would hand the session to other clients and lose the subscription); `engine` does the work.
    Every `requeue_after / 4` seconds the sweep also relays again events whose jobs were lost.
    """
    stopping: list[bool] = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(True))
    listen_engine = listen_engine or engine
    last_sweep = last_requeue = 0.0
    while not stopping:
        try:
            with listen_engine.connect() as conn:
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                conn.execute(text(f"LISTEN {CHANNEL}"))
                raw = conn.connection.driver_connection
                while not stopping:
                    if time.monotonic() - last_sweep >= sweep_every:
                        requeue = (requeue_after is not None
                                   and time.monotonic() - last_requeue >= max(requeue_after / 4, sweep_every))
                        relay_all(engine, limit, requeue_after if requeue else None)
                        last_sweep = time.monotonic()
                        if requeue:
                            last_requeue = last_sweep
                    ready, _, _ = select_module.select([raw.fileno()], [], [], 0.5)
                    if not ready:
                        continue
                    # Gather the commits of the next few milliseconds too: one job then
                    # carries several events and shares its queries and commits among them.
                    time.sleep(coalesce)
                    schemas = {n.payload for n in raw.notifies(timeout=0, stop_after=100_000)}
                    if "public" in schemas:
                        drain_platform_mail(engine, limit)
                    for schema in schemas - {"public"}:
                        slug = _slug_of(engine, schema)
                        if slug:
                            while relay_tenant(engine, slug, limit) == limit:
                                pass
        except Exception:  # keep relaying through database restarts
            log.exception("outbox relay loop failed; retrying in 1 s")
            time.sleep(1)


def main() -> None:
    """`python -m app.jobs.relay`"""
    from app.jobs.runtime import engine
    from app.observability import configure_logging

    configure_logging(os.environ.get("LOG_LEVEL", "INFO"), os.environ.get("LOG_FORMAT", "json"))
    work = engine()
    run(work, sweep_every=float(os.environ.get("OUTBOX_SWEEP_SECONDS", "2")),
        coalesce=float(os.environ.get("OUTBOX_COALESCE_SECONDS", "0.05")),
        listen_engine=direct_engine(work), requeue_after=_requeue_seconds())


def direct_engine(work: Engine) -> Engine:
    """An engine on DATABASE_DIRECT_URL (not pooled by PgBouncer) for LISTEN; `work` itself when unset."""
    from sqlalchemy import create_engine

    from config import database_url

    url = database_url(os.environ.get("DATABASE_DIRECT_URL"))
    if not url:
        return work
    return create_engine(url, pool_size=1, max_overflow=0, pool_pre_ping=True)


if __name__ == "__main__":
    main()
