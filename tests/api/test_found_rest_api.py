"""Tenant REST API: API keys and sessions, isolation, validation and the error shape, OpenAPI."""

from __future__ import annotations

from support import minimal_setup, unique_slug


def _bearer(secret: str) -> dict:
    return {"Authorization": f"Bearer {secret}"}


def test_api_key_sees_only_its_tenant(client, make_tenant, make_api_key):
    a, b = make_tenant(), make_tenant()
    key_a = make_api_key(a)
    rows = client.get("/api/v1/locations/", headers=_bearer(key_a))
    assert rows.status_code == 200, rows.get_data(as_text=True)
    ids = rows.get_json()["ids"]
    assert len(ids) == 1
    key_b = make_api_key(b)
    other = client.get("/api/v1/locations/", headers=_bearer(key_b)).get_json()
    # Both tenants have a location with id 1 in their own schema; what matters is the row comes from B.
    created = client.post("/api/v1/locations/", headers=_bearer(key_b),
                          json={"key": "only_b", "name": "Only B", "timezone": "Europe/Paris"})
    assert created.status_code == 201, created.get_data(as_text=True)
    new_id = created.get_json()["id"]
    assert client.get(f"/api/v1/locations/{new_id}", headers=_bearer(key_a)).status_code == 404
    listed_a = client.get("/api/v1/locations/", headers=_bearer(key_a)).get_json()
    assert all(r["key"] != "only_b" for r in listed_a["result"])
    assert other["count"] == 1


def test_revoked_or_bad_key_is_401(app, client, make_tenant, make_api_key):
    from sqlalchemy import select

    from app.extensions import db
    from app.models.public import ApiKey
    from app.services.people import revoke_api_key

    slug = make_tenant()
    secret = make_api_key(slug)
    assert client.get("/api/v1/services/", headers=_bearer(secret)).status_code == 200
    with app.app_context():
        key = db.session.scalar(select(ApiKey).where(ApiKey.prefix == secret.split("_")[1]))
        revoke_api_key(db.session, key)
        db.session.commit()
    revoked = client.get("/api/v1/services/", headers=_bearer(secret))
    assert revoked.status_code == 401
    assert revoked.get_json()["error"]["code"] == "unauthorized"
    assert client.get("/api/v1/services/", headers=_bearer(secret[:-3] + "xyz")).status_code == 401
    assert client.get("/api/v1/services/").status_code == 401


def test_writes_are_validated_with_the_error_shape(app, client, make_tenant, make_api_key):
    slug = make_tenant()
    key = _bearer(make_api_key(slug))
    bad_zone = client.post("/api/v1/locations/", headers=key, json={"key": "x1", "name": "X", "timezone": "Mars/Base"})
    assert bad_zone.status_code == 422
    assert bad_zone.get_json()["error"]["field"] == "timezone"
    bad_key = client.post("/api/v1/locations/", headers=key, json={"key": "Bad Key", "name": "X", "timezone": "UTC"})
    assert bad_key.status_code == 422 and bad_key.get_json()["error"]["field"] == "key"
    dup = client.post("/api/v1/locations/", headers=key, json={"key": "main", "name": "Dup", "timezone": "UTC"})
    assert dup.status_code == 422 and dup.get_json()["error"]["code"] == "duplicate"
    staff = client.get("/api/v1/staff/", headers=key).get_json()["ids"][0]
    location = client.get("/api/v1/locations/", headers=key).get_json()["ids"][0]
    span = {"staff": staff, "location": location, "weekday": 0, "start_min": 600, "end_min": 540}
    backwards = client.post("/api/v1/staff_hours/", headers=key, json=span)
    assert backwards.status_code == 422 and backwards.get_json()["error"]["field"] == "end_min"
    late = client.post("/api/v1/staff_hours/", headers=key, json={**span, "start_min": 600, "end_min": 1500})
    assert late.status_code == 422
    ok = client.post("/api/v1/staff_hours/", headers=key, json={**span, "weekday": 5, "end_min": 720})
    assert ok.status_code == 201, ok.get_data(as_text=True)
    hours = client.get("/api/v1/staff_hours/", headers=key).get_json()
    assert hours["count"] == 6  # five imported weekdays plus Saturday; the bad ones wrote nothing
    saturday = ok.get_json()["id"]
    turned = client.put(f"/api/v1/staff_hours/{saturday}", headers=key, json={"start_min": 800})
    assert turned.status_code == 422 and turned.get_json()["error"]["field"] == "end_min"
    assert client.get(f"/api/v1/staff_hours/{saturday}", headers=key).get_json()["result"]["start_min"] == 600
    assert client.put(f"/api/v1/staff_hours/{saturday}", headers=key, json={"end_min": 780}).status_code == 200
    assert client.delete(f"/api/v1/staff_hours/{saturday}", headers=key).status_code == 200
    opening = {"location": location, "weekday": 2, "start_min": 480, "end_min": 480}
    empty = client.post("/api/v1/location_hours/", headers=key, json=opening)
    assert empty.status_code == 422 and empty.get_json()["error"]["field"] == "end_min"
    assert client.post("/api/v1/location_hours/", headers=key, json={**opening, "end_min": 1440}).status_code == 201
    # The weekday and minute checks hold for every weekly row kind, not only staff hours.
    for path, row in (("location_hours", opening), ("staff_breaks", {**span, "start_min": 720, "end_min": 750})):
        assert client.post(f"/api/v1/{path}/", headers=key, json={**row, "weekday": 7}).get_json()["error"]["field"] == "weekday"
        assert client.post(f"/api/v1/{path}/", headers=key, json={**row, "end_min": 1441}).get_json()["error"]["field"] == "end_min"
    off = client.post("/api/v1/time_off/", headers=key,
                      json={"staff": staff, "start_at": "2027-01-02T10:00:00Z", "end_at": "2027-01-02T09:00:00Z"})
    assert off.status_code == 422 and off.get_json()["error"]["field"] == "end_at"


def test_appointments_change_only_through_the_booking_service(client, make_tenant, make_api_key):
    key = _bearer(make_api_key(make_tenant()))
    assert client.get("/api/v1/appointments/", headers=key).status_code == 200
    # No generic row write: a POST is a booking request (checked), PUT/DELETE do not exist.
    assert client.post("/api/v1/appointments/", headers=key, json={}).status_code == 422
    assert client.delete("/api/v1/appointments/00000000-0000-0000-0000-000000000000", headers=key).status_code == 405


def test_session_login_uses_the_current_tenant(app, client, make_tenant, make_user, login):
    a, b = make_tenant(), make_tenant()
    login(client, make_user("Client Admin", tenant=a))
    listed = client.get("/api/v1/staff/")
    assert listed.status_code == 200
    assert listed.get_json()["count"] == 1


def test_openapi_document(client, make_tenant, make_api_key):
    key = _bearer(make_api_key(make_tenant()))
    spec = client.get("/api/v1/_openapi", headers=key)
    assert spec.status_code == 200, spec.get_data(as_text=True)[:300]
    paths = spec.get_json()["paths"]
    for resource in ("locations", "location_hours", "services", "categories", "staff", "staff_hours", "staff_breaks", "time_off",
                     "customers", "appointments"):
        assert f"/api/v1/{resource}/" in paths, resource
    index = client.get("/api/v1/").get_json()
    assert "/api/v1/locations/" in index["resources"]


def test_auditor_reads_but_cannot_write(client, make_tenant, make_user, login):
    slug = make_tenant()
    login(client, make_user("Auditor", tenant=slug))
    assert client.get("/api/v1/locations/").status_code == 200
    denied = client.post("/api/v1/locations/", json={"key": "aud", "name": "Aud", "timezone": "UTC"})
    assert denied.status_code == 403 and denied.get_json()["error"]["code"] == "not_allowed"
    assert client.get("/api/v1/locations/").get_json()["count"] == 1


def test_user_without_a_business_gets_404(app, client, make_user, login):
    from app.extensions import db
    from tenants.provisioning import create_agency

    agency = unique_slug("empty")[:30]
    with app.app_context():
        create_agency(db.session, agency, "Empty Agency")
        db.session.commit()
    login(client, make_user("Agency Owner", agency=agency))
    response = client.get("/api/v1/locations/")
    assert response.status_code == 404 and response.get_json()["error"]["code"] == "not_found"
    assert client.get("/api/v1/locations/").status_code == 404


def test_x_api_key_header_works_too(client, make_tenant, make_api_key):
    secret = make_api_key(make_tenant())
    assert client.get("/api/v1/services/", headers={"X-Api-Key": secret}).status_code == 200
    assert client.get("/api/v1/services/", headers={"X-Api-Key": secret + "x"}).status_code == 401


def test_swagger_page_is_served_locally(client, make_tenant, make_user, login):
    login(client, make_user("Client Admin", tenant=make_tenant()))
    page = client.get("/swagger/v1")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "swagger-ui-bundle.js" in text and "https://" not in text.split("<body")[0]
