"""Review of the booking hot path caches: rolled-back writes, savepoints, re-created tenants, in-flight tenant writes."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import text, update

from support import minimal_setup

MONDAY = dt.date(2027, 1, 11)
NOW = dt.datetime(2027, 1, 1, tzinfo=dt.timezone.utc)


def _query():
    from app.services.availability import AvailabilityQuery

    return AvailabilityQuery(service="visit", date_from=MONDAY, date_to=MONDAY, timezone="Europe/Berlin")


def _count(session) -> int:
    from app.services.availability import query_slots

    return len(query_slots(session, _query(), NOW)[0])


def test_a_rolled_back_rule_edit_leaves_nothing_behind_for_the_next_committed_edit(app, make_tenant):
    from app.extensions import db
    from app.models import tenant as m
    from app.tenancy import tenant_session

    slug = make_tenant()
    with app.app_context():
        with tenant_session(db.engine, slug) as (session, _):
            assert _count(session) == 16
            session.execute(update(m.StaffHours).values(end_min=12 * 60))
            assert _count(session) == 6
            session.rollback()
        # Another edit, committed: the version it reaches is the one the rolled-back edit read under.
        with tenant_session(db.engine, slug) as (session, _):
            session.execute(update(m.StaffHours).values(end_min=14 * 60))
        with tenant_session(db.engine, slug) as (session, _):
            assert _count(session) == 10


def test_a_rolled_back_savepoint_takes_its_rule_edits_with_it(app, make_tenant):
    from app.extensions import db
    from app.models import tenant as m
    from app.services.catalogue import catalogue
    from app.tenancy import tenant_session

    slug = make_tenant()
    with app.app_context(), tenant_session(db.engine, slug) as (session, _):
        assert _count(session) == 16
        with session.begin_nested() as savepoint:
            session.execute(update(m.StaffHours).values(end_min=12 * 60))
            assert _count(session) == 6
            savepoint.rollback()
        assert _count(session) == 16
        with session.begin_nested() as savepoint:
            session.query(m.Service).one().duration_min = 60  # unit of work, flushed by the next read
            assert catalogue(session).services["visit"].duration_min == 60
            savepoint.rollback()
        assert catalogue(session).services["visit"].duration_min == 30
        assert _count(session) == 16


def test_a_failed_import_does_not_shape_the_corrected_one(app, make_tenant):
    from app.extensions import db
    from app.services.setup_io import SetupInvalid, import_setup

    doc = minimal_setup()
    doc["tenant"]["slug"] = slug = f"retry_{dt.datetime.now().strftime('%H%M%S%f')}"
    doc["services"][0]["duration_min"] = 30
    taken = {"service": "visit", "staff": "ann", "location": "main", "start": "2027-01-11T09:00:00Z",
             "customer": {"name": "A", "email": "a@example.com"}}
    # The second row fails inside booking (after the first has read the catalogue): the import rolls back.
    doc["appointments"] = [taken, {**taken, "start": "2027-01-11T11:00:00Z",
                                   "customer": {"name": "B", "email": "b@example.com", "phone": "not a phone"}}]
    with app.app_context():
        with pytest.raises(SetupInvalid):
            import_setup(db.engine, json.loads(json.dumps(doc)), "test-agency")
        doc["services"][0]["duration_min"] = 60
        doc["appointments"] = [taken]
        import_setup(db.engine, doc, "test-agency")
        with db.engine.connect() as conn:
            minutes = conn.execute(text(
                f'SELECT extract(epoch FROM end_at - start_at) / 60 FROM "tenant_{slug}".appointment')).scalar()
    assert minutes == 60


def test_a_business_deleted_and_made_again_under_its_slug_gets_its_own_catalogue(app, client, make_tenant, pinned_now):
    from app.extensions import db
    from tenants.provisioning import delete_tenant

    pinned_now("2027-01-01T00:00:00Z")
    slug = make_tenant()
    body = {"service": "visit", "start": "2027-01-11T08:00:00Z", "customer": {"name": "E", "email": "e@example.com"}}
    first = client.post(f"/api/v1/public/{slug}/bookings", json=body)
    assert first.get_json()["appointment"]["service_name"] == "Visit"
    with app.app_context():
        delete_tenant(db.engine, slug)
    setup = minimal_setup()
    setup["services"][0]["name"] = "Other visit"
    make_tenant(setup, slug=slug)
    again = client.post(f"/api/v1/public/{slug}/bookings", json=body)
    assert again.status_code == 201, again.get_json()
    assert again.get_json()["appointment"]["service_name"] == "Other visit"


def test_a_tenant_read_while_a_status_change_is_in_flight_is_not_kept(app, make_tenant):
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from app.extensions import db
    from app.models.public import Tenant
    from app.tenancy import find_recent_tenant

    slug = make_tenant()
    with app.app_context():
        assert find_recent_tenant(db.session, slug).status == Tenant.STATUS_ACTIVE
        with Session(db.engine) as admin:
            admin.scalar(select(Tenant).where(Tenant.slug == slug)).status = Tenant.STATUS_SUSPENDED
            admin.flush()
            # A public request between the admin's flush and commit reads the committed (active) row.
            assert find_recent_tenant(db.session, slug).status == Tenant.STATUS_ACTIVE
            admin.commit()
        assert find_recent_tenant(db.session, slug).status == Tenant.STATUS_SUSPENDED
        db.session.remove()


def _request(start, **extra):
    from app.services import booking

    return booking.BookingRequest(service="visit", start=start, staff="ann", source="admin",
                                  customer=booking.CustomerInput("Eve", "eve@example.com"), **extra)


def test_an_override_booking_onto_a_taken_time_is_refused_as_slot_unavailable(app, make_tenant):
    from app.extensions import db
    from app.services import booking
    from app.tenancy import tenant_session

    slug = make_tenant()
    start = dt.datetime(2027, 1, 11, 9, tzinfo=dt.timezone.utc)
    with app.app_context():
        with tenant_session(db.engine, slug) as (session, tenant):
            booking.book(session, tenant, "admin", _request(start), NOW)
        with tenant_session(db.engine, slug) as (session, tenant):
            with pytest.raises(booking.SlotUnavailable):
                # An override skips the engine; the exclusion constraint still refuses 09:15 over the 09:00 visit.
                booking.book(session, tenant, "admin", _request(start + dt.timedelta(minutes=15), override_rules=True), NOW)
            session.rollback()


def test_a_booking_can_be_moved_and_cancelled_in_the_session_that_made_it(app, make_tenant):
    from sqlalchemy import select

    from app.extensions import db
    from app.models import tenant as m
    from app.services import booking
    from app.tenancy import tenant_session

    slug = make_tenant()
    start = dt.datetime(2027, 1, 11, 9, tzinfo=dt.timezone.utc)
    with app.app_context():
        with tenant_session(db.engine, slug) as (session, tenant):
            appt = booking.book(session, tenant, "admin", _request(start), NOW).appointments[0]
            made = appt.created_at
            assert [h.to_status for h in appt.history] == ["confirmed"]
            booking.reschedule(session, tenant, "admin", appt, start + dt.timedelta(hours=1), NOW)
            booking.cancel(session, tenant, "admin", appt, NOW, reason="ill")
            assert [h.to_status for h in appt.history] == ["confirmed", "confirmed", "cancelled"]
            assert appt.created_at == made and appt.updated_at > made
            appointment_id = appt.id
        with tenant_session(db.engine, slug) as (session, _):
            row = session.get(m.Appointment, appointment_id)
            assert (row.status, row.sequence, len(row.history)) == ("cancelled", 2, 3)
            kinds = session.scalars(select(m.OutboxEvent.event_type).where(
                m.OutboxEvent.aggregate_id == str(appointment_id)).order_by(m.OutboxEvent.id)).all()
            assert kinds == ["appointment.booked", "appointment.rescheduled", "appointment.cancelled"]


def test_a_series_occurrence_refused_by_the_database_leaves_the_others_booked(app, make_tenant):
    from sqlalchemy import func, select

    from app.extensions import db
    from app.models import tenant as m
    from app.services import booking
    from app.tenancy import tenant_session

    slug = make_tenant()
    start = dt.datetime(2027, 1, 11, 9, tzinfo=dt.timezone.utc)
    with app.app_context():
        with tenant_session(db.engine, slug) as (session, tenant):
            booking.book(session, tenant, "admin", _request(start + dt.timedelta(weeks=1)), NOW)
        with tenant_session(db.engine, slug) as (session, tenant):
            # Override: the engine is not asked, so the second week reaches the exclusion constraint.
            result = booking.book(session, tenant, "admin", _request(
                start, override_rules=True, recurrence=booking.Recurrence("FREQ=WEEKLY;COUNT=3", "skip_conflicts")), NOW)
            assert [c["start"] for c in result.conflicts] == ["2027-01-18T09:00:00Z"]
            assert [a.start_at for a in result.appointments] == [start, start + dt.timedelta(weeks=2)]
            assert all(len(a.history) == 1 and a.staff.key == "ann" for a in result.appointments)
        with tenant_session(db.engine, slug) as (session, _):
            assert session.scalar(select(func.count()).select_from(m.Appointment)) == 3
            assert session.scalar(select(func.count()).select_from(m.StatusChange)) == 3
            assert session.scalar(select(func.count()).select_from(m.OutboxEvent)
                                  .where(m.OutboxEvent.event_type.like("appointment.%"))) == 3


def test_hours_added_in_the_admin_show_in_the_next_public_answer(app, client, make_tenant, pinned_now):
    from app.extensions import db
    from app.services.people import create_user_with_role

    pinned_now("2027-01-01T00:00:00Z")
    slug = make_tenant()
    with app.app_context():
        create_user_with_role(db.session, username=f"hp_{slug}", email=f"hp_{slug}@x.org", password="password-1",
                              role="Client Admin", tenant_slug=slug)
        db.session.commit()
        with db.engine.connect() as conn:
            staff, location = conn.execute(text(f'SELECT s.id, l.id FROM "tenant_{slug}".staff s, "tenant_{slug}".location l')).one()
    saturday = {"service": "visit", "from": "2027-01-16", "to": "2027-01-16", "timezone": "Europe/Berlin"}
    assert client.get(f"/api/v1/public/{slug}/availability", query_string=saturday).get_json()["slots"] == []
    client.post("/login/", data={"username": f"hp_{slug}", "password": "password-1"})
    added = client.post("/staffhoursview/add", data={"staff": staff, "location": location, "weekday": 5,
                                                     "start_min": "10:00", "end_min": "11:00"})
    assert added.status_code == 302
    slots = client.get(f"/api/v1/public/{slug}/availability", query_string=saturday).get_json()["slots"]
    assert [s["start"] for s in slots] == ["2027-01-16T09:00:00Z", "2027-01-16T09:30:00Z"]


def test_one_transaction_routed_to_two_tenants_reads_each_ones_catalogue(app, make_tenant):
    from app.extensions import db
    from app.services.catalogue import catalogue
    from app.tenancy import route_session, tenant_session

    other = minimal_setup()
    other["services"][0]["name"] = "Other visit"
    first, second = make_tenant(), make_tenant(other)
    with app.app_context(), tenant_session(db.engine, first) as (session, _):
        names = []
        for slug in (first, second, first):
            route_session(session, f"tenant_{slug}")
            names.append(catalogue(session).services["visit"].name)
        assert names == ["Visit", "Other visit", "Visit"]


def test_booking_leaves_the_shared_snapshot_objects_detached_and_unchanged(app, make_tenant):
    from sqlalchemy import inspect

    from app.extensions import db
    from app.services import booking, forms
    from app.services.catalogue import catalogue
    from app.tenancy import tenant_session

    slug = make_tenant()
    start = dt.datetime(2027, 1, 11, 9, tzinfo=dt.timezone.utc)
    with app.app_context(), tenant_session(db.engine, slug) as (session, tenant):
        snapshot = catalogue(session)
        shared = [*snapshot.services.values(), *snapshot.staff.values(), *snapshot.locations.values(),
                  *snapshot.form_fields, *snapshot.consents.values()]
        appt = booking.book(session, tenant, "admin", _request(start, location="main"), NOW).appointments[0]
        forms.record_consents(session, forms.check_consents(session, {}), appt, "127.0.0.1")
        booking.reschedule(session, tenant, "admin", appt, start + dt.timedelta(hours=1), NOW, staff_key="ann")
        session.flush()
        assert catalogue(session) is snapshot
        assert all(inspect(obj).detached and not inspect(obj).modified for obj in shared)
        assert appt.service is not snapshot.services["visit"] and appt.service in session


def test_a_booking_rolled_back_leaves_the_session_as_an_orm_insert_would(app, make_tenant):
    from app.extensions import db
    from app.models import tenant as m
    from app.services import booking
    from app.tenancy import tenant_session

    slug = make_tenant()
    nine = dt.datetime(2027, 1, 11, 9, tzinfo=dt.timezone.utc)
    with app.app_context(), tenant_session(db.engine, slug) as (session, tenant):
        kept = booking.book(session, tenant, "admin", _request(nine), NOW).appointments[0]
        with session.begin_nested():
            undone = booking.book(session, tenant, "admin", _request(nine + dt.timedelta(hours=1)), NOW).appointments[0]
            assert undone in session
            session.get_nested_transaction().rollback()
        # The savepoint's appointment is gone from the session; the one before it stays.
        assert undone not in session and kept in session
        assert session.query(m.Appointment).count() == 1
        assert kept.status == "confirmed"
        session.rollback()
        assert kept not in session
