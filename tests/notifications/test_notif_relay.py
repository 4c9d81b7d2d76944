"""The outbox relay: nothing for rolled-back work, and the relay process sends on commit."""

from __future__ import annotations

import sys

import pytest

from notif_db_helpers import booking_body, relay


def test_rolled_back_event_is_never_relayed(app, notif_tenant, notif):
    from app.extensions import db
    from app.services import events
    from app.tenancy import tenant_session

    with app.app_context():
        with pytest.raises(RuntimeError):
            with tenant_session(db.engine, notif_tenant) as (session, ref):
                events.emit(session, events.BOOKED, "00000000-0000-0000-0000-000000000000", ref.slug, source="api")
                session.flush()
                raise RuntimeError("the booking failed after writing its event")
    assert relay(app, notif_tenant) == 0


def test_relay_process_sends_on_commit(app, client, notif_tenant, notif, smtp, workers):
    from devserver.embedded import ManagedProcess

    daemon = ManagedProcess("outbox relay", [sys.executable, "-m", "app.jobs.relay"], env=notif,
                            cwd=str(workers.env["PYTHONPATH"]), stop_timeout=3)
    daemon.start()
    try:
        workers.start(1)
        # The relay serves every tenant: events other tests left pending may be sent too, so
        # this booking's two messages are picked by its own customer's address and name.
        name, email = f"Eve {notif_tenant}", f"eve.{notif_tenant}@example.com"
        response = client.post(f"/api/v1/public/{notif_tenant}/bookings", json=booking_body(customer={
            "name": name, "email": email}))
        assert response.status_code == 201

        def ours(r):
            return email in r.rcpt_tos or (r.rcpt_tos == ("ann@salon.test",) and name in r.raw.decode(errors="replace"))

        received = smtp.wait_until(ours, 2, timeout=20)
        assert sorted(r.rcpt_tos[0] for r in received) == ["ann@salon.test", email]
        assert daemon.is_running()
    finally:
        daemon.stop()
