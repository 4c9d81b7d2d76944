"""Long work is queued per business in turns: one business's 20 reports do not make another's one wait.

Real `rq worker` processes build real auditor reports (app.jobs.reports.build_report);
each business has one turn (LONG_JOBS_PER_TENANT=1) in the RQ queue.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[2]
MANY = 20


def _ask_reports(app, slug: str, count: int) -> list[int]:
    from app.extensions import db
    from app.models.gdpr import AuditReport
    from app.tenancy import tenant_session

    with app.app_context(), tenant_session(db.engine, slug) as (session, _ref):
        rows = [AuditReport(period_from=dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc),
                            period_to=dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc), format="csv",
                            status="queued", progress=0, requested_by="test") for _ in range(count)]
        session.add_all(rows)
        session.flush()
        return [row.id for row in rows]


def _finished(app, slug: str) -> list[tuple[int, dt.datetime | None, str]]:
    from app.extensions import db

    schema = _schema(app, slug)
    with app.app_context(), db.engine.connect() as conn:
        return conn.execute(text(f'SELECT id, finished_at, status FROM "{schema}".audit_report ORDER BY id')).all()


def _schema(app, slug: str) -> str:
    from app.extensions import db

    with app.app_context(), db.engine.connect() as conn:
        return conn.execute(text("SELECT schema_name FROM public.tenant WHERE slug = :s"), {"s": slug}).scalar()


def test_one_business_with_many_reports_does_not_delay_another_ones(app, client, make_tenant, long_work_redis,
                                                                   services):
    from devserver.embedded import ManagedProcess

    from app import fairqueue

    busy, quiet = make_tenant(), make_tenant()
    many = _ask_reports(app, busy, MANY)
    [one] = _ask_reports(app, quiet, 1)
    with app.app_context():
        for report_id in many:
            fairqueue.submit(busy, "app.jobs.reports.build_report", report_id)
        assert fairqueue.backlog(busy) == (MANY - 1, 1)  # one turn in RQ, the rest wait in its list
        fairqueue.submit(quiet, "app.jobs.reports.build_report", one)
        assert fairqueue.backlog(quiet) == (0, 1)
    scrape = client.get("/metrics").get_data(as_text=True)
    assert f"\nupzento_long_jobs_waiting {float(MANY - 1)}" in scrape
    assert "\nupzento_long_jobs_businesses 2.0" in scrape

    env = {**os.environ, "PYTHONPATH": str(ROOT), "DATABASE_URL": services[0], "REDIS_URL": long_work_redis.url,
           "SECRET_KEY": app.config["SECRET_KEY"], "LONG_JOBS_PER_TENANT": "1"}
    workers = [ManagedProcess(f"rq worker {i}", [sys.executable, "-m", "rq.cli", "worker", "-w",
                                                 "app.jobs.worker.AppWorker", "--url", long_work_redis.url, "default"],
                              env=env, cwd=str(ROOT), stop_signals=(signal.SIGTERM, signal.SIGKILL), stop_timeout=1)
               for i in range(2)]
    try:
        for worker in workers:
            worker.start()
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            rows = _finished(app, busy) + _finished(app, quiet)
            if all(status in ("done", "failed") for _, _, status in rows):
                break
            time.sleep(0.5)
    finally:
        for worker in workers:
            worker.stop()

    busy_rows, [(_, quiet_done, quiet_status)] = _finished(app, busy), _finished(app, quiet)
    assert quiet_status == "done" and all(status == "done" for _, _, status in busy_rows), busy_rows
    before = sum(1 for _, done, _ in busy_rows if done < quiet_done)
    # First in, first out would finish all 20 first; in turns, at most the busy business's
    # first few (its turn running beside the quiet one's on the other worker) come before.
    assert before <= MANY // 4, f"{before} of the busy business's {MANY} reports finished before the quiet one's"
    print(f"fair long work: {before} of the busy business's {MANY} reports finished before the quiet one's")
    with app.app_context():
        assert fairqueue.backlog(busy) == (0, 0) and fairqueue.backlog(quiet) == (0, 0)


def test_the_sweep_frees_the_turn_of_a_lost_job_and_queues_the_next(app, make_tenant, long_work_redis):
    from rq import Queue
    from rq.job import Job

    from app import fairqueue
    from app.queueing import redis_connection

    slug = make_tenant()
    ids = _ask_reports(app, slug, 2)
    with app.app_context():
        first = fairqueue.submit(slug, "app.jobs.reports.build_report", ids[0], on_lost="app.jobs.reports.lost_report")
        second = fairqueue.submit(slug, "app.jobs.reports.build_report", ids[1], on_lost="app.jobs.reports.lost_report")
        connection = redis_connection()
        assert fairqueue.backlog(slug) == (1, 1)
        Job.fetch(first, connection=connection).delete()  # the job is lost (its worker died with it, say)
        assert fairqueue.sweep() == 0  # too recent to call lost: the turn may just have been taken
        assert fairqueue.sweep(now=time.time() + fairqueue.LOST_AFTER_SECONDS + 1) == 1
        assert fairqueue.backlog(slug) == (0, 1)
        assert Queue("default", connection=connection).get_job_ids() == [second]
    statuses = {report_id: status for report_id, _, status in _finished(app, slug)}
    assert statuses == {ids[0]: "failed", ids[1]: "queued"}  # the lost one says so; the next waits for a worker
    from app.extensions import db

    schema = _schema(app, slug)
    with app.app_context(), db.engine.connect() as conn:
        error = conn.execute(text(f'SELECT error FROM "{schema}".audit_report WHERE id = :i'), {"i": ids[0]}).scalar()
    assert error.startswith("the worker building this report stopped")


def test_a_business_holds_no_more_turns_than_its_cap(app, make_tenant, long_work_redis, monkeypatch):
    from rq import Queue

    from app import fairqueue
    from app.queueing import redis_connection

    monkeypatch.setitem(app.config, "LONG_JOBS_PER_TENANT", 2)
    slug, other = make_tenant(), make_tenant()
    ids = _ask_reports(app, slug, 5)
    [one] = _ask_reports(app, other, 1)
    with app.app_context():
        jobs = [fairqueue.submit(slug, "app.jobs.reports.build_report", report_id) for report_id in ids]
        last = fairqueue.submit(other, "app.jobs.reports.build_report", one)
        assert fairqueue.backlog(slug) == (3, 2) and fairqueue.backlog(other) == (0, 1)
        assert Queue("default", connection=redis_connection()).get_job_ids() == [jobs[0], jobs[1], last]
        assert fairqueue.waiting_figures() == (2, 3)
