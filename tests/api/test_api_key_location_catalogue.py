"""An API key restricted to a location sees the catalogue of that location only: the location itself, the
services offered there, the categories of those services, the staff working there (and their hours, breaks
and time off), and the customers with an appointment there; it changes none of the catalogue."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from support import minimal_setup

WEEK = ("mon", "tue", "wed", "thu", "fri")


def _two_locations() -> dict:
    setup = minimal_setup()
    setup["locations"].append({"key": "north", "name": "North", "timezone": "Europe/Berlin",
                               "hours": {d: [["08:00", "12:00"]] for d in WEEK}})
    setup["locations"][0]["hours"] = {d: [["09:00", "18:00"]] for d in WEEK}
    setup["categories"] = [{"key": "general", "name": "General"}, {"key": "north_cat", "name": "North things"},
                           {"key": "main_cat", "name": "Main things"}, {"key": "unused", "name": "Nothing yet"}]
    setup["services"][0]["category"] = "general"
    setup["services"] += [{"key": "north_only", "name": "North only", "duration_min": 30, "locations": ["north"],
                           "category": "north_cat"},
                          {"key": "main_only", "name": "Main only", "duration_min": 30, "locations": ["main"],
                           "category": "main_cat"}]
    setup["staff"].append({"key": "bob", "name": "Bob", "services": ["visit", "north_only"], "locations": ["north"],
                           "hours": [{"location": "north", "weekday": d, "start": "08:00", "end": "12:00"} for d in WEEK],
                           "breaks": [{"location": "north", "weekday": "mon", "start": "10:00", "end": "10:15"}],
                           "time_off": [{"start": "2027-02-01T00:00:00Z", "end": "2027-02-02T00:00:00Z"}]})
    return setup


@pytest.fixture()
def catalogue_keys(app, make_tenant):
    from app.extensions import db
    from app.models.public import Tenant
    from app.services.people import create_api_key

    slug = make_tenant(_two_locations())
    secrets = {}
    with app.app_context():
        tenant = db.session.scalar(select(Tenant).where(Tenant.slug == slug))
        for name, location in (("full", None), ("main", "main"), ("north", "north")):
            _, secrets[name] = create_api_key(db.session, tenant, name, location_key=location)
        db.session.commit()
    return slug, {name: {"Authorization": f"Bearer {s}"} for name, s in secrets.items()}


def _keys(client, resource, auth, field="key"):
    answer = client.get(f"/api/v1/{resource}/?q=(page_size:100)", headers=auth)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    body = answer.get_json()
    assert body["count"] == len(body["result"])
    parts = field.split(".")

    def value(row):
        for part in parts:
            row = row[part]
        return row

    return sorted(value(row) for row in body["result"])


def test_restricted_key_lists_only_its_locations_catalogue(client, catalogue_keys):
    _slug, keys = catalogue_keys
    full, main, north = keys["full"], keys["main"], keys["north"]
    assert _keys(client, "locations", full) == ["main", "north"]
    assert _keys(client, "locations", main) == ["main"]
    assert _keys(client, "services", full) == ["main_only", "north_only", "visit"]
    assert _keys(client, "services", main) == ["main_only", "visit"]  # visit is offered everywhere
    assert _keys(client, "services", north) == ["north_only", "visit"]
    assert _keys(client, "staff", main) == ["ann"] and _keys(client, "staff", north) == ["bob"]

    staff_ids = {row["key"]: row["id"] for row in client.get("/api/v1/staff/", headers=full).get_json()["result"]}
    loc_ids = {row["key"]: row["id"] for row in client.get("/api/v1/locations/", headers=full).get_json()["result"]}
    assert set(_keys(client, "staff_hours", north, "staff.id")) == {staff_ids["bob"]}
    assert set(_keys(client, "staff_hours", main, "staff.id")) == {staff_ids["ann"]}
    assert set(_keys(client, "location_hours", main, "location.id")) == {loc_ids["main"]}
    assert _keys(client, "staff_breaks", main, "id") == [] and len(_keys(client, "staff_breaks", north, "id")) == 1
    assert _keys(client, "time_off", main, "id") == [] and len(_keys(client, "time_off", north, "id")) == 1

    # Another location's rows are not there at all for a restricted key.
    assert client.get(f"/api/v1/locations/{loc_ids['north']}", headers=main).status_code == 404
    assert client.get(f"/api/v1/staff/{staff_ids['bob']}", headers=main).status_code == 404
    assert client.get(f"/api/v1/staff/{staff_ids['ann']}", headers=main).status_code == 200
    assert client.get(f"/api/v1/locations/{loc_ids['north']}", headers=full).status_code == 200


def test_restricted_key_cannot_change_the_catalogue(client, catalogue_keys):
    _slug, keys = catalogue_keys
    main, full = keys["main"], keys["full"]
    loc_id = client.get("/api/v1/locations/", headers=main).get_json()["result"][0]["id"]
    for method, url, body in (("post", "/api/v1/locations/", {"key": "south", "name": "South", "timezone": "UTC"}),
                              ("put", f"/api/v1/locations/{loc_id}", {"name": "Renamed"}),
                              ("delete", f"/api/v1/locations/{loc_id}", None),
                              ("post", "/api/v1/services/", {"key": "new", "name": "New", "duration_min": 30})):
        refused = getattr(client, method)(url, headers=main, json=body)
        assert refused.status_code == 403, (method, url, refused.get_data(as_text=True))
        assert refused.get_json()["error"]["code"] == "not_allowed"
    assert _keys(client, "locations", full) == ["main", "north"]
    assert client.get(f"/api/v1/locations/{loc_id}", headers=full).get_json()["result"]["name"] == "Main"
    # Customers: a restricted key sees those with an appointment at its location, so one it made on its own
    # would vanish from its view; it records new customers by booking them instead.
    refused = client.post("/api/v1/customers/", headers=main, json={"name": "Walk In", "email": "walk@example.com"})
    assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "not_allowed"
    assert client.post("/api/v1/categories/", headers=main, json={"key": "c", "name": "C"}).status_code == 403


def test_restricted_key_sees_categories_of_services_offered_there(client, catalogue_keys):
    _slug, keys = catalogue_keys
    assert _keys(client, "categories", keys["full"]) == ["general", "main_cat", "north_cat", "unused"]
    assert _keys(client, "categories", keys["main"]) == ["general", "main_cat"]  # general: a service offered everywhere
    assert _keys(client, "categories", keys["north"]) == ["general", "north_cat"]
    ids = {row["key"]: row["id"] for row in client.get("/api/v1/categories/", headers=keys["full"]).get_json()["result"]}
    assert client.get(f"/api/v1/categories/{ids['north_cat']}", headers=keys["main"]).status_code == 404
    assert client.get(f"/api/v1/categories/{ids['unused']}", headers=keys["north"]).status_code == 404
    assert client.get(f"/api/v1/categories/{ids['main_cat']}", headers=keys["main"]).status_code == 200
    # Keyset pages are filtered the same way.
    page = client.get("/api/v1/categories/?limit=1", headers=keys["north"]).get_json()
    walked = [row["key"] for row in page["result"]]
    while page["next_cursor"]:
        page = client.get(f"/api/v1/categories/?limit=1&cursor={page['next_cursor']}", headers=keys["north"]).get_json()
        walked += [row["key"] for row in page["result"]]
    assert sorted(walked) == ["general", "north_cat"]


def _book(client, auth, service, start, email, location):
    answer = client.post("/api/v1/appointments/", headers=auth, json={
        "service": service, "start": start, "location": location,
        "customer": {"name": email.split("@")[0].title(), "email": email}})
    assert answer.status_code == 201, answer.get_data(as_text=True)
    return answer.get_json()["result"]["customer"]["id"]


def test_restricted_key_sees_customers_with_an_appointment_there(client, catalogue_keys, pinned_now):
    pinned_now("2027-01-01T00:00:00Z")
    _slug, keys = catalogue_keys
    full, main, north = keys["full"], keys["main"], keys["north"]
    # 2027-01-11 is a Monday: 08:00Z is 09:00 in Berlin (main opens at 9, north's Bob works 8-12).
    eve = _book(client, full, "visit", "2027-01-11T08:00:00Z", "eve@example.com", "main")
    nick = _book(client, full, "north_only", "2027-01-11T08:00:00Z", "nick@example.com", "north")
    both = _book(client, full, "visit", "2027-01-11T09:00:00Z", "both@example.com", "main")
    assert _book(client, full, "north_only", "2027-01-12T08:00:00Z", "both@example.com", "north") == both
    lonely = client.post("/api/v1/customers/", headers=full, json={"name": "Lonely", "email": "lonely@example.com"})
    assert lonely.status_code == 201

    emails = lambda auth: _keys(client, "customers", auth, "email")  # noqa: E731
    assert emails(full) == ["both@example.com", "eve@example.com", "lonely@example.com", "nick@example.com"]
    assert emails(main) == ["both@example.com", "eve@example.com"]
    assert emails(north) == ["both@example.com", "nick@example.com"]
    # A customer of another location is not there: get, update and a booking by id all say so.
    assert client.get(f"/api/v1/customers/{nick}", headers=main).status_code == 404
    assert client.put(f"/api/v1/customers/{nick}", headers=main, json={"phone": "+4930123"}).status_code == 404
    assert client.get(f"/api/v1/customers/{lonely.get_json()['id']}", headers=north).status_code == 404
    by_id = client.post("/api/v1/appointments/", headers=main, json={
        "service": "visit", "start": "2027-01-13T08:00:00Z", "customer_id": nick})
    assert by_id.status_code == 422 and by_id.get_json()["error"]["code"] == "unknown_key"
    # Its own customers it reads, corrects and books by id.
    assert client.get(f"/api/v1/customers/{eve}", headers=main).get_json()["result"]["email"] == "eve@example.com"
    fixed = client.put(f"/api/v1/customers/{eve}", headers=main, json={"phone": "+4930555"})
    assert fixed.status_code == 200, fixed.get_data(as_text=True)
    assert client.post("/api/v1/appointments/", headers=main, json={
        "service": "visit", "start": "2027-01-13T08:00:00Z", "customer_id": both}).status_code == 201
    assert client.delete(f"/api/v1/customers/{eve}", headers=main).status_code == 403
    # Filters in q cannot reach past the restriction.
    found = client.get("/api/v1/customers/?q=(filters:!((col:email,opr:sw,value:nick)))", headers=main).get_json()
    assert found["count"] == 0 and found["result"] == []
