"""The public booking path reads its catalogue and tenant from caches: none of them may serve stale data."""

from __future__ import annotations

import datetime as dt
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests
from sqlalchemy import text
from werkzeug.serving import make_server

NOW = "2027-01-01T00:00:00Z"
MONDAY = dt.date(2027, 1, 11)


def _book(client, slug, start, email="eve@example.com", **extra):
    body = {"service": "visit", "start": start, "customer": {"name": "Eve", "email": email}, **extra}
    return client.post(f"/api/v1/public/{slug}/bookings", json=body)


def _sql(app, slug, statement):
    from app.extensions import db

    with app.app_context(), db.engine.begin() as conn:
        conn.exec_driver_sql(f'SET LOCAL search_path TO "tenant_{slug}", public')
        conn.execute(text(statement))


def test_booking_form_and_consent_edits_apply_to_the_very_next_booking(app, client, make_tenant, pinned_now):
    from app.extensions import db
    from app.services import forms
    from app.tenancy import tenant_session

    pinned_now(NOW)
    slug = make_tenant()
    assert _book(client, slug, "2027-01-11T08:00:00Z").status_code == 201  # snapshot cached without fields

    _sql(app, slug, "INSERT INTO form_field (key, label, field_type, required, position, options, active)"
                    " VALUES ('pet', 'Pet name', 'text', true, 0, '[]', true)")
    refused = _book(client, slug, "2027-01-11T09:00:00Z")
    assert refused.status_code == 422 and refused.get_json()["error"]["field"] == "answers.pet"

    with app.app_context(), tenant_session(db.engine, slug) as (session, _):
        forms.publish_consent(session, "terms", "Be nice.", "test")
    refused = _book(client, slug, "2027-01-11T09:00:00Z", answers={"pet": "Rex"})
    assert refused.status_code == 422 and refused.get_json()["error"]["code"] == "consent_required"
    assert _book(client, slug, "2027-01-11T09:00:00Z", answers={"pet": "Rex"}, consents={"terms": 1}).status_code == 201

    with app.app_context(), tenant_session(db.engine, slug) as (session, _):
        forms.publish_consent(session, "terms", "Be very nice.", "test")
    stale = _book(client, slug, "2027-01-11T10:00:00Z", answers={"pet": "Rex"}, consents={"terms": 1})
    assert stale.status_code == 422 and "version 2" in stale.get_json()["error"]["message"]

    _sql(app, slug, "UPDATE form_field SET active = false")
    assert _book(client, slug, "2027-01-11T10:00:00Z", consents={"terms": 2}).status_code == 201


def test_service_and_staff_edits_apply_to_the_very_next_booking(app, client, make_tenant, pinned_now):
    pinned_now(NOW)
    slug = make_tenant()
    assert _book(client, slug, "2027-01-11T08:00:00Z").status_code == 201
    _sql(app, slug, "UPDATE service SET active = false")
    gone = _book(client, slug, "2027-01-11T09:00:00Z")
    assert gone.status_code == 422 and gone.get_json()["error"]["field"] == "service"
    _sql(app, slug, "UPDATE service SET active = true, name = 'Long visit', duration_min = 60")
    made = _book(client, slug, "2027-01-11T09:00:00Z")
    assert made.status_code == 201
    appointment = made.get_json()["appointment"]
    assert appointment["service_name"] == "Long visit" and appointment["end"] == "2027-01-11T10:00:00Z"


def test_suspension_closes_the_public_api_at_once_in_this_process(app, client, make_tenant):
    from app.extensions import db
    from tenants.provisioning import set_status

    slug = make_tenant()
    assert client.get(f"/api/v1/public/{slug}/services").status_code == 200
    with app.app_context():
        set_status(db.engine, slug, "suspended")
    assert client.get(f"/api/v1/public/{slug}/services").status_code == 403
    with app.app_context():
        set_status(db.engine, slug, "active")
    assert client.get(f"/api/v1/public/{slug}/services").status_code == 200


def test_a_change_made_elsewhere_reaches_the_public_api_within_the_cache_window(app, client, make_tenant, monkeypatch):
    from app import tenancy
    from app.extensions import db

    monkeypatch.setattr(tenancy, "RECENT_TENANT_SECONDS", 0.3)
    slug = make_tenant()
    assert client.get(f"/api/v1/public/{slug}/services").status_code == 200
    # Plain SQL, as another process would do it: this process's ORM events do not see it.
    with app.app_context(), db.engine.begin() as conn:
        conn.execute(text("UPDATE tenant SET status = 'suspended' WHERE slug = :s"), {"s": slug})
    time.sleep(0.35)
    assert client.get(f"/api/v1/public/{slug}/services").status_code == 403
    with app.app_context(), db.engine.begin() as conn:
        conn.execute(text("UPDATE tenant SET status = 'active' WHERE slug = :s"), {"s": slug})


def test_first_bookings_with_one_address_at_the_same_moment_make_one_customer(app, make_tenant, pinned_now):
    pinned_now(NOW)
    slug = make_tenant()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}/api/v1/public/{slug}/bookings"
    starts = [f"2027-01-11T{8 + i // 2:02d}:{30 * (i % 2):02d}:00Z" for i in range(8)]
    barrier = threading.Barrier(len(starts))

    def one(i_start):
        i, start = i_start
        with requests.Session() as http:
            barrier.wait()
            body = {"service": "visit", "start": start, "customer": {"name": f"Eve {i}", "email": "Eve@Example.com" if i % 2 else "eve@example.com"}}
            return http.post(url, json=body, timeout=60).status_code

    try:
        with ThreadPoolExecutor(max_workers=len(starts)) as pool:
            codes = list(pool.map(one, enumerate(starts)))
    finally:
        server.shutdown()
        thread.join(5)
    assert codes == [201] * len(starts)
    from app.extensions import db

    with app.app_context(), db.engine.connect() as conn:
        customers = conn.execute(text(f'SELECT count(*) FROM "tenant_{slug}".customer')).scalar()
        linked = conn.execute(text(f'SELECT count(DISTINCT customer_id) FROM "tenant_{slug}".appointment')).scalar()
    assert (customers, linked) == (1, 1)


def test_rules_written_earlier_in_a_transaction_are_used_later_in_it(app, make_tenant):
    from sqlalchemy import update

    from app.extensions import db
    from app.models import tenant as m
    from app.services.availability import AvailabilityQuery, query_slots
    from app.tenancy import tenant_session

    slug = make_tenant()
    query = AvailabilityQuery(service="visit", date_from=MONDAY, date_to=MONDAY, timezone="Europe/Berlin")
    now = dt.datetime(2027, 1, 1, tzinfo=dt.timezone.utc)
    with app.app_context(), tenant_session(db.engine, slug) as (session, _):
        assert len(query_slots(session, query, now)[0]) == 16
        session.execute(update(m.StaffHours).values(end_min=12 * 60))  # a bulk ORM write
        assert len(query_slots(session, query, now)[0]) == 6
        session.query(m.Service).one().duration_min = 60  # a unit-of-work write, flushed by the next query
        assert len(query_slots(session, query, now)[0]) == 3
        session.execute(text("UPDATE staff_hours SET end_min = 17 * 60"))  # plain SQL
        assert len(query_slots(session, query, now)[0]) == 8
        session.rollback()
