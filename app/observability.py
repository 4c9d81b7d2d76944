"""Request ids, structured JSON logs, `/metrics`, and optional tracing / error reporting.

- Every request gets an id: a well-formed incoming `X-Request-ID` is kept, else a new
  one is made; it is answered in `X-Request-ID`, put on every log record of the request,
  and written into the outbox events the request emits, so the jobs that the relay
  enqueues for them carry it too (`job.meta["request_ids"]`).
- One JSON log line per request (`upzento.request`): request id, tenant slug, user or
  API key, route rule, method, status, duration. LOG_FORMAT=text keeps plain lines.
- `/metrics` in Prometheus' text format; with PROMETHEUS_MULTIPROC_DIR set it adds up
  the samples of every gunicorn worker and RQ worker on the host.
- SENTRY_DSN and OTEL_EXPORTER_OTLP_ENDPOINT switch on Sentry and OpenTelemetry when their
  packages are installed; otherwise nothing happens.
"""

from __future__ import annotations

import contextvars
import logging
import os
import re
import secrets
import time
from typing import Iterable

from flask import Blueprint, Flask, Response, abort, current_app, g, request

from app.boundedcache import BoundedCache

REQUEST_ID_HEADER = "X-Request-ID"
_WELL_FORMED = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{7,127}$")
request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("upzento_request_id", default=None)
tenant_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("upzento_tenant", default=None)

log = logging.getLogger("upzento.request")

# Endpoints whose answers count as booking outcomes (operation label).
BOOKING_ENDPOINTS = {
    "public_api.create_booking": "book",
    "public_api.reschedule_booking": "reschedule",
    "public_api.cancel_booking": "cancel",
}


def current_request_id() -> str | None:
    """The id of the request (or job) being handled, if any."""
    return request_id_var.get()


def accept_request_id(value: str | None) -> str:
    """`value` when it is a well-formed id (8-128 of letters, digits and . _ : -), else a new one."""
    if value and _WELL_FORMED.match(value):
        return value
    return secrets.token_hex(16)


# --------------------------------------------------------------------------- logging


class ContextFilter(logging.Filter):
    """Adds request_id and tenant to every record (None outside a request or job)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        if not hasattr(record, "tenant"):
            record.tenant = tenant_var.get()
        return True


def configure_logging(level: int | str = logging.INFO, fmt: str = "json") -> None:
    """Root logging for web, workers and CLI: JSON lines (default) or plain text."""
    root = logging.getLogger()
    handler = next((h for h in root.handlers if getattr(h, "_upzento", False)), None)
    if handler is None:
        handler = logging.StreamHandler()
        handler._upzento = True  # type: ignore[attr-defined]
        handler.addFilter(ContextFilter())
        root.addHandler(handler)
    if fmt == "json":
        from pythonjsonlogger.json import JsonFormatter

        handler.setFormatter(JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s %(tenant)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        ))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"))
    root.setLevel(level)


# --------------------------------------------------------------------------- request hooks


def _begin_request() -> None:
    g.request_started = time.perf_counter()
    g.request_id = accept_request_id(request.headers.get(REQUEST_ID_HEADER))
    g.request_id_token = request_id_var.set(g.request_id)


def _finish_request(response: Response) -> Response:
    request_id = g.get("request_id")
    if request_id:
        response.headers[REQUEST_ID_HEADER] = request_id
    started = g.get("request_started")
    if started is None:
        return response
    duration = time.perf_counter() - started
    route = request.url_rule.rule if request.url_rule is not None else "<unmatched>"
    status = response.status_code
    if current_app.config.get("METRICS_ENABLED", True):
        from app import metrics

        metrics.HTTP_DURATION.labels(route, request.method, str(status)).observe(duration)
        operation = BOOKING_ENDPOINTS.get(request.endpoint or "")
        if operation:
            metrics.BOOKING_OUTCOMES.labels(operation, outcome_of(status)).inc()
    tenant = g.get("tenant")
    user = g.get("user")
    log.info(
        "%s %s %s %.1fms", request.method, route, status, duration * 1000,
        extra={
            "tenant": getattr(tenant, "slug", None),
            "route": route,
            "method": request.method,
            "status": status,
            "duration_ms": round(duration * 1000, 2),
            "user_id": getattr(user, "id", None) if user is not None and not g.get("_api_key_user") else None,
            "api_key_id": g.get("api_key_id") if g.get("_api_key_user") else None,
            "remote_addr": request.remote_addr,
        },
    )
    return response


def _teardown(_exc) -> None:
    token = g.pop("request_id_token", None)
    if token is not None:
        try:
            request_id_var.reset(token)
        except ValueError:  # set in another context (streamed response): just clear it
            request_id_var.set(None)


def outcome_of(status: int) -> str:
    """A booking answer's outcome label."""
    if status < 400:
        return "ok"
    if status == 409:
        return "conflict"
    if status == 422:
        return "invalid"
    if status < 500:
        return "rejected"
    return "error"


def _register_first(app: Flask, fn) -> None:
    """Run `fn` before every other before_request hook (FAB's, the tenant resolver)."""
    app.before_request_funcs.setdefault(None, []).insert(0, fn)


# --------------------------------------------------------------------------- /metrics

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics_endpoint():
    token = current_app.config.get("METRICS_TOKEN")
    if token and not secrets.compare_digest(request.headers.get("Authorization", ""), f"Bearer {token}"):
        abort(401)
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)
    else:
        from prometheus_client import REGISTRY

        registry = REGISTRY
    body = generate_latest(registry) + generate_latest(_ScrapeRegistry())
    return Response(body, mimetype=CONTENT_TYPE_LATEST)


class _ScrapeRegistry:
    """Series read at scrape time from Redis and PostgreSQL (queues, outbox)."""

    def collect(self) -> Iterable:
        from prometheus_client.core import GaugeMetricFamily

        depth = GaugeMetricFamily("upzento_rq_queue_depth", "Jobs waiting in an RQ queue.", labels=["queue"])
        failed = GaugeMetricFamily("upzento_rq_failed_jobs", "Jobs in an RQ queue's failed registry.", labels=["queue"])
        scheduled = GaugeMetricFamily("upzento_rq_scheduled_jobs", "Jobs waiting for a retry or a set time.", labels=["queue"])
        try:
            for name, waiting, failed_count, scheduled_count in queue_figures():
                depth.add_metric([name], waiting)
                failed.add_metric([name], failed_count)
                scheduled.add_metric([name], scheduled_count)
        except Exception:  # noqa: BLE001 - a scrape must not fail because Redis is down
            log.warning("metrics: queue figures unavailable", exc_info=True)
        yield from (depth, failed, scheduled)
        long_waiting = GaugeMetricFamily("upzento_long_jobs_waiting",
                                         "Long jobs (reports) waiting for their business's turn (app.fairqueue).")
        long_tenants = GaugeMetricFamily("upzento_long_jobs_businesses",
                                         "Businesses with long jobs waiting or running.")
        try:
            from app.fairqueue import waiting_figures

            businesses, waiting = waiting_figures()
            long_waiting.add_metric([], waiting)
            long_tenants.add_metric([], businesses)
        except Exception:  # noqa: BLE001
            log.warning("metrics: long-work figures unavailable", exc_info=True)
        yield from (long_waiting, long_tenants)
        pending = GaugeMetricFamily("upzento_outbox_pending_events", "Outbox events not relayed yet (all tenants).")
        oldest = GaugeMetricFamily("upzento_outbox_oldest_pending_seconds", "Age of the oldest event waiting for the relay.")
        try:
            count, age = outbox_figures()
            pending.add_metric([], count)
            oldest.add_metric([], age)
        except Exception:  # noqa: BLE001
            log.warning("metrics: outbox figures unavailable", exc_info=True)
        yield from (pending, oldest)


def queue_figures() -> list[tuple[str, int, int, int]]:
    """(queue, waiting, failed, scheduled) for each configured RQ queue."""
    from rq import Queue
    from rq.registry import FailedJobRegistry, ScheduledJobRegistry

    from app.queueing import redis_connection

    connection = redis_connection()
    figures = []
    for name in current_app.config["RQ_QUEUES"]:
        q = Queue(name, connection=connection)
        figures.append((name, q.count, FailedJobRegistry(queue=q).count, ScheduledJobRegistry(queue=q).count))
    return figures


OUTBOX_FIGURES_TTL = 15.0
_OUTBOX_CACHE = BoundedCache("outbox_figures", 8, ttl=OUTBOX_FIGURES_TTL)  # one per database


def outbox_figures() -> tuple[int, float]:
    """(pending events, age in seconds of the oldest) over every tenant; read at most every 15 s."""
    from sqlalchemy import text

    from app.extensions import db

    key = str(db.engine.url)
    hit = _OUTBOX_CACHE.get(key)
    if hit is not None:
        return hit
    with db.engine.connect() as conn:
        schemas = conn.execute(text(
            "SELECT table_schema FROM information_schema.tables WHERE table_name = 'outbox_event'"
        )).scalars().all()
        count, age = 0, 0.0
        if schemas:
            # One statement; each arm is an index-only look at the partial ix_outbox_pending.
            union = " UNION ALL ".join(
                f'SELECT count(*) AS n, min(created_at) AS oldest FROM "{s}".outbox_event WHERE relayed_at IS NULL'
                for s in schemas
            )
            row = conn.execute(text(
                f"SELECT coalesce(sum(n), 0), coalesce(extract(epoch FROM now() - min(oldest)), 0) FROM ({union}) AS t"
            )).one()
            count, age = int(row[0]), float(row[1])
    figures = (count, age)
    _OUTBOX_CACHE.put(key, figures)
    return figures


# --------------------------------------------------------------------------- set-up


def _track_pool(engine) -> None:
    from sqlalchemy import event

    from app import metrics

    @event.listens_for(engine, "checkout")
    def _out(*_args):
        metrics.DB_POOL_CHECKED_OUT.inc()

    @event.listens_for(engine, "checkin")
    def _in(*_args):
        metrics.DB_POOL_CHECKED_OUT.dec()


def _optional_integrations(app: Flask) -> None:
    dsn = app.config.get("SENTRY_DSN")
    if dsn:
        try:
            import sentry_sdk
        except ImportError:
            logging.getLogger(__name__).warning("SENTRY_DSN is set but sentry-sdk is not installed")
        else:
            sentry_sdk.init(dsn=dsn, traces_sample_rate=float(app.config.get("SENTRY_TRACES_SAMPLE_RATE") or 0))
    if app.config.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        try:
            from opentelemetry.instrumentation.flask import FlaskInstrumentor
        except ImportError:
            logging.getLogger(__name__).warning(
                "OTEL_EXPORTER_OTLP_ENDPOINT is set but opentelemetry-instrumentation-flask is not installed")
        else:
            FlaskInstrumentor().instrument_app(app)


def init_app(app: Flask) -> None:
    """Request ids, request logs, /metrics and the optional integrations for `app`."""
    _register_first(app, _begin_request)
    app.after_request(_finish_request)
    app.teardown_request(_teardown)
    if app.config.get("METRICS_ENABLED", True):
        app.register_blueprint(bp)
        from app.extensions import db

        with app.app_context():
            _track_pool(db.engine)
    _optional_integrations(app)


def job_context(request_ids: list[str] | None, tenant: str | None = None) -> None:
    """Put a job's request id(s) and tenant on the log records of the job being run."""
    request_id_var.set(",".join(request_ids) if request_ids else None)
    tenant_var.set(tenant)

