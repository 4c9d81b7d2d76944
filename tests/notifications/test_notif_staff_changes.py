"""Staff hear about reschedules and cancellations: one email each, with the matching .ics."""

from __future__ import annotations

import icalendar
from support import minimal_setup

from notif_db_helpers import MONDAY_0900, booking_body, deliveries, relay, utc, wait_until

MOVED = "2027-01-12T10:00:00Z"  # Tuesday 11:00 Berlin


def _ics_event(message):
    for part in message.walk():
        if part.get_content_type() == "application/ics":
            cal = icalendar.Calendar.from_ical(part.get_payload(decode=True))
            [event] = [c for c in cal.walk() if c.name == "VEVENT"]
            return str(cal["METHOD"]), event
    raise AssertionError("no .ics attachment")


def _to(smtp, rcpt, subject_start):
    return [r.message for r in smtp.messages if r.rcpt_tos[0] == rcpt and r.message["Subject"].startswith(subject_start)]


def _settled(app, slug, count):
    """The email delivery rows once `count` exist and no row (SMS too) is waiting any more."""
    def done():
        rows = deliveries(app, slug)
        emails = [r for r in rows if r["channel"] == "email"]
        settled = all(r["status"] in ("sent", "delivered", "skipped") for r in rows)
        return emails if len(emails) == count and settled else None
    return wait_until(done, timeout=20)


def _book(client, slug, **overrides):
    response = client.post(f"/api/v1/public/{slug}/bookings", json=booking_body(**overrides))
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def _reschedule(client, slug, token):
    moved = client.post(f"/api/v1/public/{slug}/bookings/{token}/reschedule", json={"start": MOVED})
    assert moved.status_code == 200, moved.get_json()


def _cancel(client, slug, token, **body):
    assert client.post(f"/api/v1/public/{slug}/bookings/{token}/cancel", json=body).status_code == 200


def test_staff_get_one_reschedule_and_one_cancel_email(app, client, notif_tenant, smtp, workers):
    booked = _book(client, notif_tenant)
    uid = f"appt-{booked['appointment']['id']}@{notif_tenant}.upzento"
    _reschedule(client, notif_tenant, booked["manage_token"])
    assert relay(app, notif_tenant) == 3  # with the new customer's customer.created
    assert relay(app, notif_tenant) == 0
    workers.start(1)
    smtp.wait_for(4, timeout=20)
    _settled(app, notif_tenant, 4)

    [moved] = _to(smtp, "ann@salon.test", "Booking moved")
    assert "Eve Example" in moved["Subject"]
    method, event = _ics_event(moved)
    assert method == "REQUEST"
    assert event["DTSTART"].dt == utc(MOVED)
    assert int(event["SEQUENCE"]) == 1
    assert str(event["UID"]) == uid
    text = moved.get_body(("plain",)).get_content()
    # The location is in Berlin: new 11:00 and old 09:00, local.
    assert "Hello Ann," in text and "11:00" in text and "Previously: " in text and "9:00" in text
    # The customer's own messages are unchanged: one confirmation, one reschedule.
    assert len(_to(smtp, "eve@example.com", "Booking confirmed")) == 1
    assert len(_to(smtp, "eve@example.com", "Appointment moved")) == 1

    _cancel(client, notif_tenant, booked["manage_token"], reason="Feeling unwell")
    assert relay(app, notif_tenant) == 1
    smtp.wait_for(6, timeout=20)
    rows = _settled(app, notif_tenant, 6)
    [cancelled] = _to(smtp, "ann@salon.test", "Booking cancelled")
    method, event = _ics_event(cancelled)
    assert method == "CANCEL"
    assert str(event["UID"]) == uid
    # Above the reschedule's 1, so calendars apply the cancel over the moved invite.
    assert int(event["SEQUENCE"]) == 2
    assert "Reason: Feeling unwell" in cancelled.get_body(("plain",)).get_content()
    staff_kinds = sorted(r["kind"] for r in rows if r["recipient_role"] == "staff")
    assert staff_kinds == ["booking_confirmed_staff", "cancelled_staff", "rescheduled_staff"]
    workers.stop_all()
    assert len(smtp.messages) == 6


def test_staff_without_email_get_nothing_and_nothing_fails(app, client, make_tenant, pinned_now, smtp, workers):
    pinned_now("2027-01-01T00:00:00Z")
    slug = make_tenant(minimal_setup())
    booked = _book(client, slug)
    _reschedule(client, slug, booked["manage_token"])
    assert relay(app, slug) == 3  # with the new customer's customer.created
    workers.start(1)
    smtp.wait_for(2, timeout=20)
    _cancel(client, slug, booked["manage_token"])
    assert relay(app, slug) == 1
    rows = _settled(app, slug, 3)
    assert {r["recipient_role"] for r in rows} == {"customer"}
    assert sorted(r["kind"] for r in rows) == ["booking_confirmed", "cancelled", "rescheduled"]
    assert {r["status"] for r in rows} == {"sent"}
    workers.stop_all()
    assert len(smtp.messages) == 3


def test_german_business_writes_german_to_staff_and_customer(app, client, make_tenant, pinned_now, smtp, workers):
    pinned_now("2027-01-01T00:00:00Z")
    setup = minimal_setup()
    setup["tenant"]["locale"] = "de"
    setup["staff"][0]["email"] = "ann@salon.test"
    slug = make_tenant(setup)
    booked = _book(client, slug)
    _reschedule(client, slug, booked["manage_token"])
    assert relay(app, slug) == 3  # with the new customer's customer.created
    workers.start(1)
    smtp.wait_for(4, timeout=20)
    [staff] = _to(smtp, "ann@salon.test", "Buchung verschoben")
    text = staff.get_body(("plain",)).get_content()
    assert "Hallo Ann," in text and "Bisher: " in text and "Kunde: Eve Example" in text
    assert len(_to(smtp, "eve@example.com", "Termin verschoben")) == 1

    _cancel(client, slug, booked["manage_token"], reason="Krank")
    assert relay(app, slug) == 1
    smtp.wait_for(6, timeout=20)
    [cancelled] = _to(smtp, "ann@salon.test", "Buchung storniert")
    text = cancelled.get_body(("plain",)).get_content()
    assert "wurde storniert" in text and "Grund: Krank" in text
    assert len(_to(smtp, "eve@example.com", "Termin storniert")) == 1


def test_move_to_another_staff_tells_both(app, client, engine, make_tenant, pinned_now, smtp, workers):
    from app.services import booking
    from app.tenancy import tenant_session

    pinned_now("2027-01-01T00:00:00Z")
    setup = minimal_setup()
    setup["staff"][0]["email"] = "ann@salon.test"
    bob = dict(setup["staff"][0], key="bob", name="Bob", email="bob@salon.test")
    setup["staff"].append(bob)
    slug = make_tenant(setup)
    booked = _book(client, slug, staff="ann")
    assert relay(app, slug) == 2  # with the new customer's customer.created
    workers.start(1)
    smtp.wait_for(2, timeout=20)
    with tenant_session(engine, slug) as (session, tenant):
        appt = booking.find_by_token(session, booked["manage_token"])
        booking.reschedule(session, tenant, "admin", appt, utc(MOVED), utc("2027-01-01T00:00:00Z"),
                           staff_key="bob", enforce_policy=False)
    assert relay(app, slug) == 1
    smtp.wait_for(5, timeout=20)
    rows = _settled(app, slug, 5)
    staff_rows = sorted((r["recipient"], r["kind"], r["revision"]) for r in rows if r["recipient_role"] == "staff")
    assert staff_rows == [("ann@salon.test", "booking_confirmed_staff", 0), ("ann@salon.test", "cancelled_staff", 1),
                          ("bob@salon.test", "booking_confirmed_staff", 1)]

    [lost] = _to(smtp, "ann@salon.test", "Booking cancelled")
    text = lost.get_body(("plain",)).get_content()
    # Ann is told about the slot she loses (Monday 09:00), not Bob's new one.
    assert "Hello Ann," in text and "January 11, 2027" in text and "9:00" in text
    assert "11:00" not in text
    method, _event = _ics_event(lost)
    assert method == "CANCEL"
    [gained] = _to(smtp, "bob@salon.test", "New booking")
    method, event = _ics_event(gained)
    assert method == "REQUEST" and event["DTSTART"].dt == utc(MOVED) and int(event["SEQUENCE"]) == 1
    assert "Hello Bob," in gained.get_body(("plain",)).get_content()


def test_staff_rows_are_planned_once_and_never_for_imports(app, client, engine, notif_tenant):
    from sqlalchemy import select

    from app.models import tenant as m
    from app.services import events, notify
    from app.tenancy import tenant_session

    booked = _book(client, notif_tenant)
    _reschedule(client, notif_tenant, booked["manage_token"])
    settings = notify.Settings(sms_enabled=False, public_url="http://127.0.0.1:5000")
    now = utc("2027-01-01T00:00:00Z")
    with tenant_session(engine, notif_tenant) as (session, tenant):
        moved = session.scalar(select(m.OutboxEvent).where(m.OutboxEvent.event_type == events.RESCHEDULED))
        first = notify.insert_deliveries(session, notify.plan_event(session, tenant, moved, settings, now))
        again = notify.insert_deliveries(session, notify.plan_event(session, tenant, moved, settings, now))
        imported = m.OutboxEvent(id=moved.id, event_type=events.CANCELLED, aggregate_id=moved.aggregate_id,
                                 payload={"source": "import"})
        assert notify.plan_event(session, tenant, imported, settings, now) == []
    assert len(first) == 2 and again == []
    staff = deliveries(app, notif_tenant, "recipient_role = 'staff'")
    assert [(r["kind"], r["revision"], r["recipient"]) for r in staff] == [("rescheduled_staff", 1, "ann@salon.test")]
