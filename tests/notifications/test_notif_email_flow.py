"""Booking → outbox → relay → real rq worker → SMTP sink: confirmations, .ics, cancel."""

from __future__ import annotations

import icalendar

from notif_db_helpers import MONDAY_0900, booking_body, deliveries, relay, utc, wait_until


def _ics(message):
    for part in message.walk():
        if part.get_content_type() == "application/ics":
            return icalendar.Calendar.from_ical(part.get_payload(decode=True))
    raise AssertionError("no .ics attachment")


def _event(cal):
    [event] = [c for c in cal.walk() if c.name == "VEVENT"]
    return event


def test_booking_sends_one_confirmation_to_customer_and_staff_with_invite(app, client, notif_tenant, smtp, workers):
    response = client.post(f"/api/v1/public/{notif_tenant}/bookings", json=booking_body(customer={
        "name": "Eve Example", "email": "eve@example.com"}))
    assert response.status_code == 201, response.get_json()
    appointment_id = response.get_json()["appointment"]["id"]
    assert relay(app, notif_tenant) == 2  # the booking and its new customer (customer.created)
    assert relay(app, notif_tenant) == 0  # relayed rows are not taken again
    workers.start(1)
    received = smtp.wait_for(2, timeout=20)
    by_rcpt = {r.rcpt_tos[0]: r for r in received}
    assert set(by_rcpt) == {"eve@example.com", "ann@salon.test"}

    customer = by_rcpt["eve@example.com"].message
    assert "confirmed" in customer["Subject"].lower()
    assert customer.get_body(("plain",)) is not None and customer.get_body(("html",)) is not None
    cal = _ics(customer)
    assert str(cal["METHOD"]) == "REQUEST"
    event = _event(cal)
    assert event["DTSTART"].dt == utc(MONDAY_0900)
    assert event["DTEND"].dt == utc("2027-01-11T08:30:00Z")
    assert str(event["UID"]) == f"appt-{appointment_id}@{notif_tenant}.upzento"
    assert int(event["SEQUENCE"]) == 0
    # The customer booked in Berlin: the text shows 09:00 local, not 08:00 UTC.
    text = customer.get_body(("plain",)).get_content()
    assert "9:00" in text
    # The manage link opens the appointment in the customer portal (sign-in first).
    path = f"/portal/{notif_tenant}/appointments/{appointment_id}"
    assert path in text
    assert client.get(path).status_code in (302, 303)

    staff = by_rcpt["ann@salon.test"].message
    assert "Eve Example" in staff["Subject"]

    rows = wait_until(lambda: (lambda rs: rs if {r["status"] for r in rs} == {"sent"} else None)(
        deliveries(app, notif_tenant)))
    assert sorted((r["kind"], r["status"], r["attempts"]) for r in rows) == [
        ("booking_confirmed", "sent", 1), ("booking_confirmed_staff", "sent", 1)]

    token = response.get_json()["manage_token"]
    assert client.post(f"/api/v1/public/{notif_tenant}/bookings/{token}/cancel", json={}).status_code == 200
    assert relay(app, notif_tenant) == 1
    cancelled = wait_until(lambda: [m for m in smtp.messages if "cancel" in m.message["Subject"].lower()])
    cal = _ics(cancelled[0].message)
    assert str(cal["METHOD"]) == "CANCEL"
    event = _event(cal)
    assert str(event["UID"]) == f"appt-{appointment_id}@{notif_tenant}.upzento"
    assert int(event["SEQUENCE"]) == 1
    assert str(event["STATUS"]) == "CANCELLED"
    workers.stop_all()
    # Customer and staff: confirmation each, then a cancellation each.
    assert len(smtp.messages) == 4
