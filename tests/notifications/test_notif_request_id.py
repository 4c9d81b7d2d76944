"""The request id of a booking reaches the jobs its events cause, and their log lines."""

from __future__ import annotations

import json
import subprocess
import sys

from notif_db_helpers import booking_body, relay, wait_until


def test_request_id_rides_from_booking_to_the_job_log(app, client, notif_tenant, notif, smtp):
    from rq import Queue

    from app.queueing import redis_connection

    rid = "req-booking-4711-abcdef"
    response = client.post(f"/api/v1/public/{notif_tenant}/bookings", json=booking_body(),
                           headers={"X-Request-ID": rid})
    assert response.status_code == 201
    assert response.headers["X-Request-ID"] == rid
    assert relay(app, notif_tenant) == 2  # the booking and its new customer (customer.created)

    with app.app_context():
        jobs = Queue("notifications", connection=redis_connection()).get_jobs()
    assert [job.meta.get("request_ids") for job in jobs] == [[rid]]

    env = {**notif, "LOG_FORMAT": "json", "LOG_LEVEL": "INFO"}
    done = subprocess.run(
        [sys.executable, "-m", "rq.cli", "worker", "--burst", "-w", "app.jobs.worker.AppSimpleWorker",
         "--url", env["REDIS_URL"], "notifications"],
        env=env, cwd=env["PYTHONPATH"], capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    records = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    during_job = [r for r in records if r.get("request_id") == rid]
    assert during_job, (done.stderr[-3000:], done.stdout[-3000:])
    assert all(r.get("tenant") == notif_tenant for r in during_job)
    wait_until(lambda: len(smtp.messages) >= 1)
