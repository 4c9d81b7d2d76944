"""The delivery log never shows a message sent before it was created."""

from __future__ import annotations

from notif_db_helpers import booking_body, deliveries


def test_sent_is_never_earlier_than_created(app, client, notif_tenant, smtp, notif):
    from app.jobs.notify import handle_event

    response = client.post(f"/api/v1/public/{notif_tenant}/bookings", json=booking_body())
    assert response.status_code == 201
    with app.app_context():
        handle_event(notif_tenant, _booked_event_id(app, notif_tenant))
    rows = [r for r in deliveries(app, notif_tenant) if r["channel"] == "email"]
    assert rows and all(r["status"] == "sent" for r in rows)
    for row in rows:
        assert row["sent_at"] >= row["created_at"], (row["created_at"], row["sent_at"])


def _booked_event_id(app, slug):
    """The outbox id of the booking's event (a new customer's customer.created comes before it)."""
    from sqlalchemy import text

    from app.extensions import db

    with app.app_context(), db.engine.connect() as conn:
        return conn.execute(text(f'SELECT min(id) FROM "tenant_{slug}".outbox_event'
                                 " WHERE event_type = 'appointment.booked'")).scalar()
