"""GET /api/v1/analytics/<figure>: API key of one business, error shape, OpenAPI, role limits, agency rollup."""

from __future__ import annotations

import datetime as dt

from support import minimal_setup, unique_slug

UTC = dt.timezone.utc
RANGE = "from=2027-03-01&to=2027-03-31"


def _bearer(secret: str) -> dict:
    return {"Authorization": f"Bearer {secret}"}


def _two_staff() -> dict:
    setup = minimal_setup()
    setup["services"][0]["price"] = "20.00"
    bob = dict(setup["staff"][0], key="bob", name="Bob")
    setup["staff"].append(bob)
    return setup


def _rows(n: int, staff: str = "ann", status: str = "confirmed") -> list[dict]:
    base = dt.datetime(2027, 3, 2, 9, 0, tzinfo=UTC)
    return [dict(start=base + dt.timedelta(days=i), staff=staff, status=status, price="20.00") for i in range(n)]


def test_api_key_reads_its_own_business_only(client, make_tenant, make_api_key, put_appointments):
    a, b = make_tenant(_two_staff()), make_tenant(_two_staff())
    put_appointments(a, _rows(3) + _rows(1, status="cancelled"))
    put_appointments(b, _rows(7))
    key = _bearer(make_api_key(a))
    answer = client.get(f"/api/v1/analytics/bookings?{RANGE}&interval=week", headers=key)
    assert answer.status_code == 200, answer.get_data(as_text=True)[:300]
    body = answer.get_json()
    assert body["tenant"] == a and body["total"] == 4 and body["interval"] == "week"
    assert client.get(f"/api/v1/analytics/cancellations?{RANGE}", headers=key).get_json()["rate"] == 0.25
    revenue = client.get(f"/api/v1/analytics/revenue?{RANGE}", headers=key).get_json()
    assert revenue["currencies"][0]["booked"] == "60.00"
    staff_only = client.get(f"/api/v1/analytics/bookings?{RANGE}&staff=bob", headers=key).get_json()
    assert staff_only["total"] == 0
    for metric in ("no_shows", "utilisation", "lead_time", "sources"):
        assert client.get(f"/api/v1/analytics/{metric}?{RANGE}", headers=key).status_code == 200, metric
    csv = client.get(f"/api/v1/analytics/sources?{RANGE}&format=csv", headers=key)
    assert csv.mimetype == "text/csv" and csv.get_data(as_text=True).splitlines()[1] == "admin,4,1,0"


def test_errors_use_the_project_shape(client, make_tenant, make_api_key):
    key = _bearer(make_api_key(make_tenant()))
    assert client.get(f"/api/v1/analytics/bookings?{RANGE}").status_code == 401
    unknown = client.get(f"/api/v1/analytics/nonsense?{RANGE}", headers=key)
    assert unknown.status_code == 404 and unknown.get_json()["error"]["code"] == "not_found"
    bad = client.get("/api/v1/analytics/bookings?from=2027-03-01&to=2027-03-31&interval=hour", headers=key)
    assert bad.status_code == 422 and bad.get_json()["error"]["field"] == "interval"
    backwards = client.get("/api/v1/analytics/bookings?from=2027-03-31&to=2027-03-01", headers=key)
    assert backwards.status_code == 422 and backwards.get_json()["error"]["field"] == "to"
    stranger = client.get(f"/api/v1/analytics/bookings?{RANGE}&service=nope", headers=key)
    assert stranger.status_code == 422 and stranger.get_json()["error"]["code"] == "unknown_key"


def test_openapi_documents_the_analytics_endpoints(client, make_tenant, make_api_key):
    key = _bearer(make_api_key(make_tenant()))
    paths = client.get("/api/v1/_openapi", headers=key).get_json()["paths"]
    assert "/api/v1/analytics/{metric}" in paths
    names = {p["name"] for p in paths["/api/v1/analytics/{metric}"]["get"]["parameters"]}
    assert {"from", "to", "interval", "location", "staff", "service"} <= names


def test_staff_has_no_analytics_and_auditor_reads(client, app, make_tenant, make_user, login, put_appointments):
    from sqlalchemy import select

    from app.extensions import db
    from app.models import tenant as m
    from app.tenancy import tenant_session

    slug = make_tenant(_two_staff())
    put_appointments(slug, _rows(2))
    with app.app_context(), tenant_session(db.engine, slug) as (session, _ref):
        ann_id = session.scalar(select(m.Staff.id).where(m.Staff.key == "ann"))
    login(client, make_user("Staff", tenant=slug, staff_id=ann_id))
    assert client.get(f"/api/v1/analytics/bookings?{RANGE}").status_code == 403
    client.get("/logout/")
    login(client, make_user("Auditor", tenant=slug))
    assert client.get(f"/api/v1/analytics/bookings?{RANGE}").get_json()["total"] == 2


def test_agency_rollup_lists_only_the_owners_tenants(client, app, make_tenant, make_user, login, make_api_key, put_appointments):
    from app.extensions import db
    from tenants.provisioning import create_agency

    agency = unique_slug("ag").replace("_", "-")
    with app.app_context():
        create_agency(db.session, agency, "Mine")
        db.session.commit()
    mine = make_tenant(agency=agency)
    other = make_tenant()
    put_appointments(mine, _rows(2))
    put_appointments(other, _rows(5))
    login(client, make_user("Agency Owner", agency=agency))
    body = client.get(f"/api/v1/analytics/agency?{RANGE}").get_json()
    assert [t["tenant"] for t in body["tenants"]] == [mine]
    assert body["bookings"] == 2
    client.get("/logout/")
    login(client, make_user("Client Admin", tenant=mine))
    assert client.get(f"/api/v1/analytics/agency?{RANGE}").status_code == 403
    assert client.get(f"/api/v1/analytics/agency?{RANGE}", headers=_bearer(make_api_key(mine))).status_code == 403
