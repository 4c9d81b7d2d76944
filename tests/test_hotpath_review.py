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
