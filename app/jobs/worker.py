"""RQ worker classes that build the Flask app once, before forking work-horses.

Plain `rq worker` builds the app inside every work-horse (each job pays for
create_app); with `-w app.jobs.worker.AppWorker` the horses inherit it.
"""

from __future__ import annotations

from rq.worker import SimpleWorker, Worker

from app.jobs.context import job_app
from app.runtime_gc import freeze_startup_heap


class AppWorker(Worker):
    """Forking worker (hard timeouts, crash isolation) with the app preloaded."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        job_app()
        freeze_startup_heap()


class AppSimpleWorker(SimpleWorker):
    """Non-forking worker for high message rates; no hard job timeouts."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        job_app()
        freeze_startup_heap()
