"""Fault injection: Redis down during a booking, a worker killed mid-send, SMTP refusing for a while."""

from __future__ import annotations

import asyncio
import signal
import time

import psutil
import pytest

from notif_db_helpers import booking_body, deliveries, relay, wait_until


def _book(client, slug):
    response = client.post(f"/api/v1/public/{slug}/bookings", json=booking_body(customer={
        "name": "Eve Example", "email": "eve@example.com"}))
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def _pending_events(app, slug):
    from sqlalchemy import text

    from app.extensions import db

    with app.app_context(), db.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(text(
            f'SELECT id, attempts, last_error FROM "tenant_{slug}".outbox_event WHERE relayed_at IS NULL'))]


def test_redis_down_during_booking_then_delivered_when_back(app, client, notif_tenant, private_redis, smtp, workers):
    private_redis.stop()
    _book(client, notif_tenant)  # the booking does not depend on Redis
    assert relay(app, notif_tenant) == 0
    waiting = _pending_events(app, notif_tenant)  # the booking and its new customer
    assert len(waiting) == 2
    assert all(w["attempts"] == 1 and "enqueue failed" in w["last_error"] for w in waiting)

    private_redis.start()
    assert relay(app, notif_tenant) == 2
    assert _pending_events(app, notif_tenant) == []
    workers.start(1)
    received = smtp.wait_for(2, timeout=20)
    assert sorted(r.rcpt_tos[0] for r in received) == ["ann@salon.test", "eve@example.com"]


def _kill_tree(pid: int) -> None:
    procs = [psutil.Process(pid)] + psutil.Process(pid).children(recursive=True)
    for proc in procs:
        proc.send_signal(signal.SIGKILL)
    psutil.wait_procs(procs, timeout=5)


LEASE = 6  # s: longer than a send of one mail to the local sink on a loaded machine


def test_worker_killed_mid_send_delivers_exactly_once_after_restart(app, client, notif_tenant, smtp, workers):
    from app.jobs.periodic import sweep_due

    # The first SMTP conversation hangs at RCPT (nothing accepted) until the worker is gone.
    handler = smtp._controller.handler
    original = handler.handle_RCPT
    stalled = []

    async def stalling_rcpt(server, session, envelope, address, options):
        if not stalled:
            stalled.append(address)
            await asyncio.sleep(30)
            return "421 gone"
        return await original(server, session, envelope, address, options)

    handler.handle_RCPT = stalling_rcpt
    workers.env["NOTIFY_LEASE_SECONDS"] = str(LEASE)  # short, so the test need not wait long for the sweep
    _book(client, notif_tenant)
    relay(app, notif_tenant)
    [worker] = workers.start(1)
    wait_until(lambda: stalled, timeout=20)
    # Both rows were claimed with the event; the first send hangs, the second never started.
    assert [r["status"] for r in deliveries(app, notif_tenant)] == ["sending", "sending"]
    _kill_tree(worker.pid)
    workers.stop_all()

    workers.start(1)
    time.sleep(LEASE + 0.2)  # the killed worker's lease runs out
    with app.app_context():
        assert sweep_due() >= 2  # ours, and stale rows other tests' stopped workers left behind
    # The sweep is database-wide: stale deliveries of other tests' businesses may reach this sink
    # too. This business's mails are the ones whose Message-ID its delivery rows recorded.
    wait_until(lambda: {r["status"] for r in deliveries(app, notif_tenant)} == {"sent"}, timeout=20)
    ours = {r["provider_id"] for r in deliveries(app, notif_tenant)}
    time.sleep(1.0)
    received = [r for r in smtp.messages if str(r.message["Message-ID"]) in ours]
    assert sorted(r.rcpt_tos[0] for r in received) == ["ann@salon.test", "eve@example.com"]  # each exactly once
    import datetime as dt

    from app.extensions import db
    from app.jobs.notify import due_ids
    from app.tenancy import tenant_session

    with app.app_context(), tenant_session(db.engine, notif_tenant) as (session, _ref):
        assert due_ids(session, dt.datetime.now(dt.timezone.utc), dt.timedelta(0)) == []  # nothing left to re-send


def test_a_batch_past_its_lease_sends_nothing_more_and_the_sweep_sends_each_once(app, client, notif_tenant, smtp,
                                                                                   notif, monkeypatch):
    """A worker whose claim ran out (a slow batch) must not send: the sweep may have re-claimed the row."""
    from sqlalchemy import text

    from app.extensions import db
    from app.jobs.notify import handle_event, send_delivery
    from app.jobs.periodic import sweep_due

    _book(client, notif_tenant)
    with app.app_context(), db.engine.connect() as conn:
        event_id = conn.execute(text(f'SELECT id FROM "tenant_{notif_tenant}".outbox_event'
                                     " WHERE event_type = 'appointment.booked'")).scalar()
    monkeypatch.setenv("NOTIFY_LEASE_SECONDS", "0")  # every claim of this batch has run out at send time
    with app.app_context():
        assert handle_event(notif_tenant, event_id) == 2
    time.sleep(0.3)
    assert smtp.messages == []
    rows = deliveries(app, notif_tenant)
    assert [(r["status"], r["attempts"]) for r in rows] == [("sending", 1), ("sending", 1)]

    monkeypatch.setenv("NOTIFY_LEASE_SECONDS", "20")
    with app.app_context():
        assert sweep_due() >= 2  # database-wide: other tests' stale rows may be swept too
        assert sorted(send_delivery(notif_tenant, r["id"]) for r in rows) == ["sent", "sent"]
        assert [send_delivery(notif_tenant, r["id"]) for r in rows] == ["busy", "busy"]  # done: not again
    received = smtp.wait_for(2, timeout=10)
    assert sorted(r.rcpt_tos[0] for r in received) == ["ann@salon.test", "eve@example.com"]
    time.sleep(0.3)
    assert len(smtp.messages) == 2


def test_smtp_refusing_is_retried_with_backoff_then_succeeds(app, client, notif_tenant, smtp, workers):
    smtp.refuse_next(3, 451)
    _book(client, notif_tenant)
    relay(app, notif_tenant)
    workers.start(1)
    received = smtp.wait_for(2, timeout=30)
    assert sorted(r.rcpt_tos[0] for r in received) == ["ann@salon.test", "eve@example.com"]
    rows = wait_until(lambda: (lambda rs: rs if {r["status"] for r in rs} == {"sent"} else None)(
        deliveries(app, notif_tenant)))
    assert sum(r["attempts"] for r in rows) == 2 + 3  # three refusals, each retried
    assert any("451" in (r["last_error"] or "") for r in rows)
    time.sleep(0.5)
    assert len(smtp.messages) == 2


def test_smtp_that_keeps_refusing_ends_failed_and_550_is_not_retried(app, client, notif_tenant, smtp, notif, workers):
    notif["NOTIFY_MAX_ATTEMPTS"] = "2"
    smtp.refuse_next(1, 550)
    smtp.refuse_next(10, 451)
    _book(client, notif_tenant)
    relay(app, notif_tenant)
    workers.start(1)
    rows = wait_until(lambda: (lambda rs: rs if rs and all(r["status"] == "failed" for r in rs) else None)(
        deliveries(app, notif_tenant)), timeout=30)
    attempts = sorted(r["attempts"] for r in rows)
    assert attempts == [1, 2]  # 550: given up at once; 451: retried up to the limit
    assert any("gave up after 2 attempts" in r["last_error"] for r in rows)
    assert smtp.messages == []
