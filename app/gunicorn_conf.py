"""gunicorn settings module (`gunicorn --config python:app.gunicorn_conf ...`).

Drops a dead worker's live gauges from the shared Prometheus folder, so
`upzento_db_pool_checked_out` counts only processes that are running.
"""


def child_exit(server, worker):  # noqa: ARG001 - gunicorn's hook signature
    import os

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
