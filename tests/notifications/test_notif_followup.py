"""Follow-up after completion (delayed) and the no-show notice; imports send nothing."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import text

from notif_db_helpers import booking_body, deliveries


def _book(client, slug):
    response = client.post(f"/api/v1/public/{slug}/bookings", json=booking_body(customer={
        "name": "Eve Example", "email": "eve@example.com"}))
    assert response.status_code == 201, response.get_json()
    return response.get_json()["appointment"]["id"]


def _set_status(app, slug, appointment_id, status):
    import uuid

    from app.extensions import db
    from app.models import tenant as m
    from app.services import booking
    from app.tenancy import tenant_session

    with app.app_context(), tenant_session(db.engine, slug) as (session, ref):
        appt = session.get(m.Appointment, uuid.UUID(appointment_id))
        booking.set_status(session, ref, "admin:test", appt, status)


def _consent_to_marketing(app, slug):
    from app.extensions import db
    from app.gdpr import consents
    from app.models import tenant as m
    from app.tenancy import tenant_session

    with app.app_context(), tenant_session(db.engine, slug) as (session, _ref):
        consents.set_marketing(session, session.query(m.Customer).one(), True, "portal")


def _events_after_booking(app, slug):
    """Ids of the events after the first booking's (status changes)."""
    from app.extensions import db

    with app.app_context(), db.engine.connect() as conn:
        return list(conn.execute(text(
            f'SELECT id FROM "tenant_{slug}".outbox_event WHERE id > (SELECT min(id) FROM "tenant_{slug}".outbox_event'
            " WHERE event_type = 'appointment.booked') AND event_type LIKE 'appointment.%' ORDER BY id")).scalars())


def test_follow_up_waits_for_its_delay_and_no_show_is_told(app, client, notif_tenant, smtp, notif):
    from app.jobs.notify import deliver, handle_events

    first = _book(client, notif_tenant)
    # A follow-up is marketing: without the customer's marketing consent none is planned.
    _set_status(app, notif_tenant, first, "completed")
    with app.app_context():
        assert handle_events(notif_tenant, _events_after_booking(app, notif_tenant)) == 0
    assert deliveries(app, notif_tenant, "kind = 'follow_up'") == []
    _consent_to_marketing(app, notif_tenant)
    with app.app_context():
        assert handle_events(notif_tenant, _events_after_booking(app, notif_tenant)) == 1
    [row] = deliveries(app, notif_tenant, "kind = 'follow_up'")
    assert row["status"] == "queued"
    delay = row["not_before"] - row["created_at"]
    assert dt.timedelta(minutes=119) < delay < dt.timedelta(minutes=121)  # the default 2 h
    with app.app_context():
        assert deliver(notif_tenant, row["id"]) == "busy"  # not due yet
        assert deliver(notif_tenant, row["id"], now=row["not_before"] + dt.timedelta(seconds=1)) == "sent"
    [mail] = smtp.wait_for(1)
    assert mail.message["Subject"].startswith("Thank you for your visit")


def test_no_show_notice(app, client, notif_tenant, smtp, notif):
    from app.jobs.notify import handle_events

    appointment_id = _book(client, notif_tenant)
    _set_status(app, notif_tenant, appointment_id, "no_show")
    with app.app_context():
        assert handle_events(notif_tenant, _events_after_booking(app, notif_tenant)) == 1
    [mail] = smtp.wait_for(1)
    assert mail.message["Subject"].startswith("We missed you")
    assert [r["kind"] for r in deliveries(app, notif_tenant)] == ["no_show"]


def test_imported_bookings_send_nothing(app, client, notif_tenant, notif):
    from app.extensions import db
    from app.jobs.notify import handle_events
    from app.services import events
    from app.tenancy import tenant_session

    appointment_id = _book(client, notif_tenant)  # a real appointment; its own event is not handled here
    with app.app_context():
        with tenant_session(db.engine, notif_tenant) as (session, ref):
            event = events.emit(session, events.BOOKED, appointment_id, ref.slug, source="import")
            session.flush()
            event_id = event.id
        assert handle_events(notif_tenant, [event_id]) == 0
    assert deliveries(app, notif_tenant) == []
