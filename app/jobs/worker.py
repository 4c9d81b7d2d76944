"""RQ worker classes that build the Flask app once, before forking work-horses.

Plain `rq worker` builds the app inside every work-horse (each job pays for
create_app); with `-w app.jobs.worker.AppWorker` the horses inherit it.
"""

from __future__ import annotations

import logging
import time

from rq.worker import SimpleWorker, Worker

from app.jobs.context import job_app
from app.runtime_gc import freeze_startup_heap

log = logging.getLogger("upzento.job")


class _Observed:
    """Log each job as one JSON line under the request id(s) that caused it; count its outcome."""

    def perform_job(self, job, queue, *args, **kwargs):
        from app import metrics
        from app.observability import job_context

        meta = job.meta or {}
        tenant = meta.get("tenant") or (job.args[0] if job.args and isinstance(job.args[0], str) else None)
        job_context(meta.get("request_ids"), tenant)
        started = time.perf_counter()
        from app.audit_context import acting_as

        with acting_as("job", label=job.func_name):
            ok = super().perform_job(job, queue, *args, **kwargs)
        if ok:
            outcome = "finished"
        else:
            status = job.get_status(refresh=True)
            outcome = "retried" if status in ("scheduled", "queued") else "failed"
        metrics.JOBS.labels(queue.name, outcome).inc()
        duration = time.perf_counter() - started
        log.info("job %s %s %.1fms", job.func_name, outcome, duration * 1000,
                 extra={"job_id": job.id, "queue": queue.name, "function": job.func_name, "outcome": outcome,
                        "duration_ms": round(duration * 1000, 2)})
        job_context(None, None)
        return ok


class AppWorker(_Observed, Worker):
    """Forking worker (hard timeouts, crash isolation) with the app preloaded."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        job_app()
        freeze_startup_heap()


class AppSimpleWorker(_Observed, SimpleWorker):
    """Non-forking worker for high message rates; no hard job timeouts."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        job_app()
        freeze_startup_heap()
