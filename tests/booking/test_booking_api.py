"""Booking through the public HTTP API: create, conflicts, idempotency, policy windows, bad input, series."""

from __future__ import annotations

import copy
import datetime as dt

import pytest
from support import deadlock_on_staff_lock, minimal_setup
from sqlalchemy import text

NOW = "2027-01-01T00:00:00Z"
MONDAY_0900 = "2027-01-11T08:00:00Z"  # 09:00 Berlin


def _booking(**overrides):
    body = {"service": "visit", "start": MONDAY_0900, "timezone": "Europe/Berlin",
            "customer": {"name": "Eve Example", "email": "eve@example.com"}}
    body.update(overrides)
    return body


def _count(app, slug, table="appointment", where="status <> 'cancelled'"):
    from app.extensions import db

    with app.app_context():
        with db.engine.connect() as conn:
            return conn.execute(text(f'SELECT count(*) FROM "tenant_{slug}".{table} WHERE {where}')).scalar()


@pytest.fixture()
def tenant(make_tenant, pinned_now):
    pinned_now(NOW)
    return make_tenant()


def test_booking_creates_appointment_and_removes_the_slot(client, tenant, app):
    response = client.post(f"/api/v1/public/{tenant}/bookings", json=_booking())
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["appointment"]["staff"] == "ann"
    assert body["appointment"]["start"] == MONDAY_0900
    assert body["appointment"]["end"] == "2027-01-11T08:30:00Z"
    assert body["manage_token"]
    slots = client.get(f"/api/v1/public/{tenant}/availability",
                       query_string={"service": "visit", "from": "2027-01-11", "to": "2027-01-11", "timezone": "Europe/Berlin"}).get_json()["slots"]
    assert MONDAY_0900 not in [s["start"] for s in slots]
    assert _count(app, tenant) == 1
    assert _count(app, tenant, "outbox_event", "event_type = 'appointment.booked'") == 1


def test_second_booking_of_same_slot_is_409_and_writes_nothing(client, tenant, app):
    assert client.post(f"/api/v1/public/{tenant}/bookings", json=_booking()).status_code == 201
    response = client.post(f"/api/v1/public/{tenant}/bookings",
                           json=_booking(customer={"name": "Other", "email": "other@example.com"}))
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "slot_unavailable"
    assert _count(app, tenant) == 1
    assert _count(app, tenant, "customer", "email = 'other@example.com'") == 0


def test_idempotency_key_replays_the_same_answer_once(client, tenant, app):
    headers = {"Idempotency-Key": "abc-123"}
    first = client.post(f"/api/v1/public/{tenant}/bookings", json=_booking(), headers=headers)
    second = client.post(f"/api/v1/public/{tenant}/bookings", json=_booking(), headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.get_json() == second.get_json()
    assert _count(app, tenant) == 1
    different = client.post(f"/api/v1/public/{tenant}/bookings", json=_booking(start="2027-01-11T09:00:00Z"), headers=headers)
    assert different.status_code == 422
    assert different.get_json()["error"]["code"] == "idempotency_mismatch"


@pytest.mark.parametrize(
    "patch, field",
    [
        ({"service": None}, "service"),
        ({"service": "nope"}, "service"),
        ({"start": "tomorrow"}, "start"),
        ({"start": "2027-01-11T08:00:00"}, "start"),
        ({"customer": None}, "customer"),
        ({"customer": {"name": "", "email": "a@b.de"}}, "customer.name"),
        ({"customer": {"name": "A", "email": "not-an-email"}}, "customer.email"),
        ({"customer": {"name": "A", "email": "a@b.de", "phone": "12"}}, "customer.phone"),
        ({"seats": 2}, "seats"),
        ({"seats": "1"}, "seats"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"staff": "ghost"}, "staff"),
        ({"location": "ghost"}, "location"),
        ({"surprise": 1}, "surprise"),
        ({"recurrence": {"rrule": "FREQ=WEEKLY;COUNT=3"}}, "recurrence"),  # service does not allow series
    ],
)
def test_bad_input_names_the_field_and_books_nothing(client, tenant, app, patch, field):
    body = _booking()
    for key, value in patch.items():
        if value is None:
            body.pop(key, None)
        else:
            body[key] = value
    response = client.post(f"/api/v1/public/{tenant}/bookings", json=body)
    assert response.status_code == 422, response.get_json()
    assert response.get_json()["error"]["field"] == field
    assert _count(app, tenant) == 0


def test_not_json_is_422(client, tenant):
    response = client.post(f"/api/v1/public/{tenant}/bookings", data="{", content_type="application/json")
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "invalid_json"


def test_unknown_tenant_is_404_in_the_error_shape(client):
    response = client.get("/api/v1/public/no_such_tenant/services")
    assert response.status_code == 404
    assert response.get_json()["error"]["field"] == "tenant"


@pytest.mark.parametrize(
    "args, field",
    [
        ({"from": "2027-01-11", "to": "2027-01-11"}, "service"),
        ({"service": "visit", "to": "2027-01-11"}, "from"),
        ({"service": "visit", "from": "2027-13-01", "to": "2027-01-11"}, "from"),
        ({"service": "visit", "from": "2027-01-11", "to": "2027-01-10"}, "to"),
        ({"service": "visit", "from": "2027-01-01", "to": "2027-04-01"}, "to"),
        ({"service": "visit", "from": "2027-01-11", "to": "2027-01-11", "timezone": "Nowhere/X"}, "timezone"),
        ({"service": "ghost", "from": "2027-01-11", "to": "2027-01-11"}, "service"),
        ({"service": "visit", "from": "2027-01-11", "to": "2027-01-11", "location": "ghost"}, "location"),
        ({"service": "visit", "from": "2027-01-11", "to": "2027-01-11", "staff": "ghost"}, "staff"),
    ],
)
def test_availability_bad_params(client, tenant, args, field):
    response = client.get(f"/api/v1/public/{tenant}/availability", query_string=args)
    assert response.status_code == 422
    assert response.get_json()["error"]["field"] == field


def test_reschedule_and_cancel_by_manage_token(client, tenant, app):
    token = client.post(f"/api/v1/public/{tenant}/bookings", json=_booking()).get_json()["manage_token"]
    moved = client.post(f"/api/v1/public/{tenant}/bookings/{token}/reschedule", json={"start": "2027-01-11T10:00:00Z"})
    assert moved.status_code == 200, moved.get_json()
    assert moved.get_json()["appointment"]["start"] == "2027-01-11T10:00:00Z"
    shown = client.get(f"/api/v1/public/{tenant}/bookings/{token}").get_json()
    assert shown["appointment"]["start"] == "2027-01-11T10:00:00Z"
    # The old slot is free again, the new one is taken.
    slots = [s["start"] for s in client.get(f"/api/v1/public/{tenant}/availability", query_string={
        "service": "visit", "from": "2027-01-11", "to": "2027-01-11", "timezone": "Europe/Berlin"}).get_json()["slots"]]
    assert MONDAY_0900 in slots and "2027-01-11T10:00:00Z" not in slots
    cancelled = client.post(f"/api/v1/public/{tenant}/bookings/{token}/cancel", json={"reason": "ill"})
    assert cancelled.status_code == 200
    assert cancelled.get_json()["appointment"]["status"] == "cancelled"
    assert _count(app, tenant) == 0
    events = _count(app, tenant, "outbox_event", "event_type IN ('appointment.rescheduled', 'appointment.cancelled')")
    assert events == 2


def test_reschedule_to_a_taken_slot_is_409(client, tenant):
    token = client.post(f"/api/v1/public/{tenant}/bookings", json=_booking()).get_json()["manage_token"]
    client.post(f"/api/v1/public/{tenant}/bookings", json=_booking(start="2027-01-11T10:00:00Z",
                customer={"name": "B", "email": "b@example.com"}))
    response = client.post(f"/api/v1/public/{tenant}/bookings/{token}/reschedule", json={"start": "2027-01-11T10:00:00Z"})
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "slot_unavailable"


def test_policy_window_blocks_late_cancel_with_deadline(client, make_tenant, pinned_now, app):
    setup = minimal_setup()
    setup["services"][0]["min_notice_min"] = 0
    pinned_now(NOW)
    slug = make_tenant(setup)
    from app.extensions import db

    with app.app_context():
        with db.engine.begin() as conn:
            conn.execute(text(f'UPDATE "tenant_{slug}".service SET cancel_window_min = 1440'))
    token = client.post(f"/api/v1/public/{slug}/bookings", json=_booking()).get_json()["manage_token"]
    pinned_now("2027-01-10T12:00:00Z")  # 20 h before the start, inside the 24 h window
    response = client.post(f"/api/v1/public/{slug}/bookings/{token}/cancel", json={})
    assert response.status_code == 409
    error = response.get_json()["error"]
    assert error["code"] == "policy_window"
    assert error["deadline"] == "2027-01-10T08:00:00Z"
    pinned_now("2027-01-09T12:00:00Z")
    assert client.post(f"/api/v1/public/{slug}/bookings/{token}/cancel", json={}).status_code == 200


def _series_tenant(make_tenant, pinned_now, app):
    pinned_now(NOW)
    slug = make_tenant()
    from app.extensions import db

    with app.app_context():
        with db.engine.begin() as conn:
            conn.execute(text(f'UPDATE "tenant_{slug}".service SET allow_recurring = true'))
    return slug


def test_recurring_all_or_nothing_books_nothing_on_a_conflict(client, make_tenant, pinned_now, app):
    slug = _series_tenant(make_tenant, pinned_now, app)
    # Occupy the third Monday.
    client.post(f"/api/v1/public/{slug}/bookings", json=_booking(start="2027-01-25T08:00:00Z",
                customer={"name": "B", "email": "b@example.com"}))
    response = client.post(f"/api/v1/public/{slug}/bookings",
                           json=_booking(recurrence={"rrule": "FREQ=WEEKLY;COUNT=4", "mode": "all_or_nothing"}))
    assert response.status_code == 409
    assert [c["start"] for c in response.get_json()["error"]["conflicts"]] == ["2027-01-25T08:00:00Z"]
    assert _count(app, slug) == 1


def test_recurring_skip_conflicts_books_the_free_ones_across_dst(client, make_tenant, pinned_now, app):
    slug = _series_tenant(make_tenant, pinned_now, app)
    client.post(f"/api/v1/public/{slug}/bookings", json=_booking(start="2027-03-22T08:00:00Z",
                customer={"name": "B", "email": "b@example.com"}))
    response = client.post(f"/api/v1/public/{slug}/bookings", json=_booking(
        start="2027-03-15T08:00:00Z", recurrence={"rrule": "FREQ=WEEKLY;COUNT=3", "mode": "skip_conflicts"}))
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    # 09:00 Berlin each week: 08:00Z before the DST change on 2027-03-28, 07:00Z after it.
    assert [a["start"] for a in body["appointments"]] == ["2027-03-15T08:00:00Z", "2027-03-29T07:00:00Z"]
    assert [c["start"] for c in body["conflicts"]] == ["2027-03-22T08:00:00Z"]
    series = {a["series_id"] for a in body["appointments"]}
    assert len(series) == 1 and None not in series


@pytest.mark.parametrize("rule", ["FREQ=DAILY;COUNT=3", "FREQ=WEEKLY", "FREQ=WEEKLY;COUNT=53", "FREQ=WEEKLY;COUNT=x", "FREQ=WEEKLY;BYDAY=XX;COUNT=2"])
def test_recurrence_rule_outside_the_subset_is_422(client, make_tenant, pinned_now, app, rule):
    slug = _series_tenant(make_tenant, pinned_now, app)
    response = client.post(f"/api/v1/public/{slug}/bookings", json=_booking(recurrence={"rrule": rule}))
    assert response.status_code == 422, response.get_json()
    assert response.get_json()["error"]["field"] == "recurrence.rrule"
    assert _count(app, slug) == 0


def test_series_reschedules_as_one_or_not_at_all(client, make_tenant, pinned_now, app):
    slug = _series_tenant(make_tenant, pinned_now, app)
    body = client.post(f"/api/v1/public/{slug}/bookings", json=_booking(
        start="2027-01-11T08:00:00Z", recurrence={"rrule": "FREQ=WEEKLY;COUNT=3"})).get_json()
    token = body["manage_token"]
    # Block 10:00 on the third Monday: moving the series to 10:00 must change nothing.
    client.post(f"/api/v1/public/{slug}/bookings", json=_booking(start="2027-01-25T09:00:00Z",
                customer={"name": "B", "email": "b@example.com"}))
    refused = client.post(f"/api/v1/public/{slug}/bookings/{token}/reschedule", json={"start": "2027-01-11T09:00:00Z", "series": True})
    assert refused.status_code == 409
    assert [c["start"] for c in refused.get_json()["error"]["conflicts"]] == ["2027-01-25T09:00:00Z"]
    shown = client.get(f"/api/v1/public/{slug}/bookings/{token}").get_json()
    assert [a["start"] for a in shown["appointments"]] == ["2027-01-11T08:00:00Z", "2027-01-18T08:00:00Z", "2027-01-25T08:00:00Z"]
    moved = client.post(f"/api/v1/public/{slug}/bookings/{token}/reschedule", json={"start": "2027-01-11T10:00:00Z", "series": True})
    assert moved.status_code == 200, moved.get_json()
    assert [a["start"] for a in moved.get_json()["appointments"]] == [
        "2027-01-11T10:00:00Z", "2027-01-18T10:00:00Z", "2027-01-25T10:00:00Z"]
    cancelled = client.post(f"/api/v1/public/{slug}/bookings/{token}/cancel", json={"series": True})
    assert len(cancelled.get_json()["cancelled"]) == 3
    assert _count(app, slug) == 1  # only the other customer's booking is left


def test_any_staff_takes_the_least_booked_that_day_then_key_order(client, make_tenant, pinned_now):
    pinned_now(NOW)
    setup = minimal_setup()
    setup["staff"].append({**setup["staff"][0], "key": "bob", "name": "Bob"})
    slug = make_tenant(setup)

    def book(start, staff=None, n=0):
        body = _booking(start=start, customer={"name": f"C{n}", "email": f"c{n}@example.com"})
        if staff:
            body["staff"] = staff
        response = client.post(f"/api/v1/public/{slug}/bookings", json=body)
        assert response.status_code == 201, response.get_json()
        return response.get_json()["appointment"]["staff"]

    assert book("2027-01-11T09:00:00Z", staff="ann", n=1) == "ann"
    assert book("2027-01-11T10:00:00Z", n=2) == "bob"   # ann has one that day, bob none
    assert book("2027-01-11T11:00:00Z", n=3) == "ann"   # one each: ties go by key
    assert book("2027-01-12T09:00:00Z", n=4) == "ann"   # a new day counts afresh


def test_a_deadlock_is_retried_once_and_the_booking_made(client, tenant, app, monkeypatch):
    calls = deadlock_on_staff_lock(monkeypatch, 1)
    response = client.post(f"/api/v1/public/{tenant}/bookings", json=_booking())
    assert response.status_code == 201, response.get_json()
    assert len(calls) == 2
    assert _count(app, tenant) == 1
    assert _count(app, tenant, "outbox_event", "event_type = 'appointment.booked'") == 1


def test_a_second_deadlock_answers_slot_unavailable_and_writes_nothing(client, tenant, app, monkeypatch):
    calls = deadlock_on_staff_lock(monkeypatch, 2)
    response = client.post(f"/api/v1/public/{tenant}/bookings", json=_booking())
    assert response.status_code == 409 and response.get_json()["error"]["code"] == "slot_unavailable"
    assert len(calls) == 2
    assert _count(app, tenant) == 0
    assert _count(app, tenant, "customer", "true") == 0


def test_a_deadlock_while_rescheduling_is_retried(client, tenant, app, monkeypatch):
    made = client.post(f"/api/v1/public/{tenant}/bookings", json=_booking()).get_json()
    calls = deadlock_on_staff_lock(monkeypatch, 1)
    moved = client.post(f"/api/v1/public/{tenant}/bookings/{made['manage_token']}/reschedule",
                        json={"start": "2027-01-11T10:00:00Z"})
    assert moved.status_code == 200, moved.get_json()
    assert moved.get_json()["appointment"]["start"] == "2027-01-11T10:00:00Z"
    assert len(calls) == 2
