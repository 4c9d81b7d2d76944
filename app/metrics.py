"""Prometheus series the app records (prometheus_client).

The series are defined once here; code that records one imports this module
(it imports nothing of the app, so any layer may). Under gunicorn and the RQ
workers, set PROMETHEUS_MULTIPROC_DIR (run.py does) before the processes start:
each process then writes its samples to that folder and `/metrics` adds them up.

Series (all prefixed `upzento_`):
- http_request_duration_seconds{route,method,status}  histogram, per route rule, never per tenant
- booking_outcomes_total{operation,outcome}           book / reschedule / cancel -> ok, conflict, invalid, rejected, error
- availability_cache_total{cache,result}              rules cache and answer cache hits / misses
- notification_delivery_failures_total{channel}       email / sms sends that failed
- jobs_total{queue,outcome}                           jobs finished / failed / retried, by the worker
- db_pool_checked_out                                 connections in use (summed over live processes)
- rq_queue_depth{queue}, rq_failed_jobs{queue}, rq_scheduled_jobs{queue}, outbox_pending_events,
  outbox_oldest_pending_seconds, long_jobs_waiting, long_jobs_businesses
                                                      read at scrape time (app.observability)
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

HTTP_DURATION = Histogram(
    "upzento_http_request_duration_seconds",
    "Time to answer an HTTP request, by route rule.",
    ("route", "method", "status"),
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
BOOKING_OUTCOMES = Counter(
    "upzento_booking_outcomes_total",
    "Bookings, reschedules and cancellations asked for, by outcome.",
    ("operation", "outcome"),
)
AVAILABILITY_CACHE = Counter(
    "upzento_availability_cache_total",
    "Availability cache look-ups, by cache and result.",
    ("cache", "result"),
)
DELIVERY_FAILURES = Counter(
    "upzento_notification_delivery_failures_total",
    "Notification sends that failed, by channel.",
    ("channel",),
)
JOBS = Counter(
    "upzento_jobs_total",
    "RQ jobs run by the workers, by queue and outcome.",
    ("queue", "outcome"),
)
DB_POOL_CHECKED_OUT = Gauge(
    "upzento_db_pool_checked_out",
    "Database connections checked out of the pool.",
    multiprocess_mode="livesum",
)
