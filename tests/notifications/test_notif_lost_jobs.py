"""Jobs lost with Redis (a failover to a replica that never got them, a restart without
persistence): the relay sends the event again and each message still goes out exactly once."""

from __future__ import annotations

import sys
import time

import redis
from sqlalchemy import text

from notif_db_helpers import booking_body, relay, wait_until


def _book(client, slug, who="Eve Example", email="eve@example.com"):
    response = client.post(f"/api/v1/public/{slug}/bookings", json=booking_body(customer={"name": who, "email": email}))
    assert response.status_code == 201, response.get_json()


def _events(app, slug):
    from app.extensions import db

    with app.app_context(), db.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(text(
            f'SELECT id, relayed_at, handled_at, attempts FROM "tenant_{slug}".outbox_event'
            " WHERE event_type = 'appointment.booked' ORDER BY id"))]


def _requeue(app, slug, after=0.0):
    from app.extensions import db
    from app.jobs.relay import requeue_unhandled

    with app.app_context():
        return requeue_unhandled(db.engine, slug, after)


def test_event_whose_job_redis_lost_is_relayed_again_and_sent_once(app, client, notif_tenant, private_redis, smtp,
                                                                   workers):
    _book(client, notif_tenant)
    assert relay(app, notif_tenant) == 2  # the booking and its new customer
    redis.Redis.from_url(private_redis.url).flushall()  # the job is gone
    [event] = _events(app, notif_tenant)
    assert event["relayed_at"] is not None and event["handled_at"] is None
    assert _requeue(app, notif_tenant, after=3600) == 0  # not stale yet

    assert _requeue(app, notif_tenant) == 2  # the booked event and the customer's
    workers.start(1)
    received = smtp.wait_for(2, timeout=20)
    assert sorted(r.rcpt_tos[0] for r in received) == ["ann@salon.test", "eve@example.com"]
    wait_until(lambda: _events(app, notif_tenant)[0]["handled_at"] is not None)
    assert _events(app, notif_tenant)[0]["attempts"] == 1
    assert _requeue(app, notif_tenant) == 0  # handled: never again
    time.sleep(1)
    assert len(smtp.messages) == 2


def test_handled_event_is_not_relayed_again_even_if_the_job_runs_twice(app, client, notif_tenant, private_redis, smtp,
                                                                        workers):
    _book(client, notif_tenant)
    assert relay(app, notif_tenant) == 2  # the booking and its new customer
    workers.start(1)
    smtp.wait_for(2, timeout=20)
    wait_until(lambda: _events(app, notif_tenant)[0]["handled_at"] is not None)
    assert _requeue(app, notif_tenant) == 0
    # A relay that was only slow (its first job still ran) relays a duplicate: no second message.
    from app.extensions import db

    with app.app_context(), db.engine.begin() as conn:
        conn.execute(text(f'UPDATE "tenant_{notif_tenant}".outbox_event SET handled_at = NULL'))
    assert _requeue(app, notif_tenant) == 2  # the booked event and the customer's
    wait_until(lambda: _events(app, notif_tenant)[0]["handled_at"] is not None)
    time.sleep(1)
    assert len(smtp.messages) == 2


def test_relay_process_redelivers_after_redis_restarted_empty(app, client, notif_tenant, notif, private_redis, smtp,
                                                              workers):
    from devserver.embedded import ManagedProcess

    env = {**notif, "OUTBOX_REQUEUE_SECONDS": "1", "OUTBOX_SWEEP_SECONDS": "0.5"}
    daemon = ManagedProcess("outbox relay", [sys.executable, "-m", "app.jobs.relay"], env=env,
                            cwd=str(workers.env["PYTHONPATH"]), stop_timeout=3)
    daemon.start()
    try:
        name, email = f"Eve {notif_tenant}", f"eve.{notif_tenant}@example.com"
        _book(client, notif_tenant, name, email)
        wait_until(lambda: _events(app, notif_tenant)[0]["relayed_at"] is not None)
        redis.Redis.from_url(private_redis.url).flushall()  # a restart without persistence: empty
        private_redis.stop()
        private_redis.start()
        workers.start(1)

        def ours(r):
            return email in r.rcpt_tos or (r.rcpt_tos == ("ann@salon.test",) and name in r.raw.decode(errors="replace"))

        received = smtp.wait_until(ours, 2, timeout=30)
        assert sorted(r.rcpt_tos[0] for r in received) == ["ann@salon.test", email]
        wait_until(lambda: _events(app, notif_tenant)[0]["handled_at"] is not None)
        time.sleep(1.5)
        assert len([r for r in smtp.messages if ours(r)]) == 2
    finally:
        daemon.stop()
