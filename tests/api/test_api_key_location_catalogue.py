"""An API key restricted to a location sees the catalogue of that location only: the location itself, the
services offered there, the staff working there (and their hours, breaks and time off); it changes none of it."""

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
    setup["services"] += [{"key": "north_only", "name": "North only", "duration_min": 30, "locations": ["north"]},
                          {"key": "main_only", "name": "Main only", "duration_min": 30, "locations": ["main"]}]
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
    # Customers are not tied to a location: a restricted write key still records them.
    made = client.post("/api/v1/customers/", headers=main, json={"name": "Walk In", "email": "walk@example.com"})
    assert made.status_code == 201, made.get_data(as_text=True)
