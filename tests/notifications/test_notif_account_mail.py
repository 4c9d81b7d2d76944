"""Account mail (password resets, invitations, portal links) on the outbox path.

The request writes a `platform_mail` row in its transaction and never talks to Redis;
the relay enqueues the send job (on the row's NOTIFY, or a sweep) and stamps the row;
a job lost with Redis is enqueued again after MAIL_REQUEUE_SECONDS and the mail still
goes out once.
"""

from __future__ import annotations

import sys

import pytest
from notif_db_helpers import wait_until


def _rows(app, email):
    from types import SimpleNamespace

    from sqlalchemy import text

    from app.extensions import db

    with app.app_context(), db.engine.connect() as conn:
        rows = conn.execute(text("SELECT id, sent, relayed_at, attempts FROM public.platform_mail WHERE to_email = :e ORDER BY id"),
                            {"e": email})
        return [SimpleNamespace(**r._mapping) for r in rows]


def _relay(app, **kw):
    from app.extensions import db
    from app.jobs.relay import relay_platform_mail

    with app.app_context():
        return relay_platform_mail(db.engine, **kw)


def _reset(client, make_user):
    email = f"{make_user('Agency Owner', agency='test-agency')}@example.org"
    response = client.post("/account/forgot", data={"email": email})
    assert response.status_code in (200, 302)
    return email


def test_reset_mail_is_written_by_the_request_and_enqueued_by_the_relay(app, client, notif, smtp, workers, make_user):
    from app.queueing import queue

    q = queue("notifications")
    q.empty()
    email = _reset(client, make_user)
    (row,) = _rows(app, email)
    assert row.relayed_at is None and not row.sent
    assert q.count == 0  # the request enqueued nothing

    assert _relay(app) >= 1
    (row,) = _rows(app, email)
    assert row.relayed_at is not None and row.attempts == 1
    workers.start(1, burst=True)
    received = smtp.wait_until(lambda r: email in r.rcpt_tos, 1, timeout=20)
    assert len(received) == 1
    wait_until(lambda: _rows(app, email)[0].sent)


def test_a_job_lost_with_redis_is_enqueued_again_and_sent_once(app, client, notif, smtp, workers, make_user):
    from app.queueing import queue

    email = _reset(client, make_user)
    assert _relay(app) >= 1
    queue("notifications").empty()  # Redis lost the job
    _relay(app)  # relayed moments ago: not stale yet, left alone
    (row,) = _rows(app, email)
    assert row.attempts == 1 and not row.sent
    assert _relay(app, requeue_after=0) >= 1
    assert _rows(app, email)[0].attempts == 2
    workers.start(1, burst=True)
    smtp.wait_until(lambda r: email in r.rcpt_tos, 1, timeout=20)
    wait_until(lambda: _rows(app, email)[0].sent)
    # Sent: never enqueued again, however stale.
    _relay(app, requeue_after=0)
    assert _rows(app, email)[0].attempts == 2
    assert sum(email in r.rcpt_tos for r in smtp.messages) == 1


def test_rolled_back_mail_is_never_written_and_without_smtp_nothing_waits(app, notif, monkeypatch):
    from app.extensions import db
    from app.services.mail import queue_mail
    from app.uow import unit_of_work

    with app.app_context():
        with pytest.raises(RuntimeError):
            with unit_of_work(db.session):
                queue_mail(db.session, "gone@example.org", "Reset", "body")
                raise RuntimeError("the request failed after writing its mail")
    assert _rows(app, "gone@example.org") == []

    monkeypatch.setitem(app.config, "SMTP_HOST", None)
    with app.app_context(), unit_of_work(db.session):
        queue_mail(db.session, "devonly@example.org", "Reset", "body")
    (row,) = _rows(app, "devonly@example.org")
    assert row.relayed_at is not None  # kept for the development outbox only
    _relay(app)
    assert _rows(app, "devonly@example.org")[0].attempts == 0


def test_the_relay_process_sends_account_mail_on_commit(app, client, notif, smtp, workers, make_user):
    from devserver.embedded import ManagedProcess

    from sqlalchemy import text

    from app.extensions import db

    # The relay is database-wide: earlier tests' unsent account mail and unrelayed booking events
    # would be queued before this test's mail (one worker, one queue). Count them as done, so this
    # test waits for its own mail only.
    with app.app_context(), db.engine.begin() as conn:
        conn.execute(text("UPDATE public.platform_mail SET sent = true WHERE NOT sent"))
        conn.execute(text(
            "DO $$ DECLARE s text; BEGIN FOR s IN SELECT table_schema FROM information_schema.tables "
            "WHERE table_name = 'outbox_event' LOOP EXECUTE format('UPDATE %I.outbox_event SET "
            "relayed_at = coalesce(relayed_at, now()), handled_at = coalesce(handled_at, now())', s); "
            "END LOOP; END $$"))
    env = {**notif, "OUTBOX_SWEEP_SECONDS": "3600"}  # only the NOTIFY can wake it in time
    daemon = ManagedProcess("outbox relay", [sys.executable, "-m", "app.jobs.relay"], env=env,
                            cwd=str(workers.env["PYTHONPATH"]), stop_timeout=3)
    daemon.start()
    try:
        workers.start(1)
        wait_until(lambda: _relay_listening(app), timeout=60)
        email = _reset(client, make_user)
        smtp.wait_until(lambda r: email in r.rcpt_tos, 1, timeout=20)
        assert daemon.is_running()
    finally:
        daemon.stop()


def _relay_listening(app) -> bool:
    from sqlalchemy import text

    from app.extensions import db

    with app.app_context(), db.engine.connect() as conn:
        return bool(conn.execute(text(
            "SELECT 1 FROM pg_stat_activity WHERE query ILIKE 'LISTEN upzento_outbox%' AND datname = current_database()"
        )).scalar())


def test_a_burst_of_account_mail_is_relayed_in_one_pass(app, notif):
    """More mails than one batch: the relay drains them all, not one batch per sweep."""
    import uuid

    from app.extensions import db
    from app.jobs.relay import drain_platform_mail
    from app.models.public import PlatformMail
    from app.uow import unit_of_work

    tag = uuid.uuid4().hex[:8]
    emails = [f"burst-{tag}-{i}@example.org" for i in range(7)]
    with app.app_context():
        from sqlalchemy.orm import Session

        with Session(db.engine) as session, unit_of_work(session):
            session.add_all([PlatformMail(to_email=e, subject="Invitation", body="Welcome") for e in emails])
        assert drain_platform_mail(db.engine, limit=2) >= 7
    assert all(_rows(app, e)[0].relayed_at is not None for e in emails)
    with app.app_context(), db.engine.begin() as conn:  # never sent: keep them out of later tests' sweeps
        from sqlalchemy import text

        conn.execute(text("DELETE FROM public.platform_mail WHERE to_email LIKE :p"), {"p": f"burst-{tag}-%"})
