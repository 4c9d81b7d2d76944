"""REST bookings: create, list with filters and cursors, reschedule / cancel / no-show / complete through
the booking service, availability, Idempotency-Key, ETag / If-Match, location-restricted keys."""

from __future__ import annotations

import pytest
from sqlalchemy import text

MONDAY_0900 = "2027-01-11T08:00:00Z"  # 09:00 Berlin
NOW = "2027-01-01T00:00:00Z"


def _bearer(secret: str) -> dict:
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture()
def keyed(app, make_tenant, pinned_now):
    """A fresh business and a read-write key; the API's clock at NOW."""
    from app.extensions import db
    from app.models.public import Tenant
    from app.services.people import create_api_key
    from sqlalchemy import select

    pinned_now(NOW)
    slug = make_tenant()

    def key(scopes="read write", location_key=None, expires_at=None):
        with app.app_context():
            tenant = db.session.scalar(select(Tenant).where(Tenant.slug == slug))
            _, secret = create_api_key(db.session, tenant, "k", scopes=scopes, location_key=location_key,
                                       expires_at=expires_at)
            db.session.commit()
        return _bearer(secret)

    return slug, key


def _book(client, auth, start=MONDAY_0900, email="eve@example.com", **extra):
    return client.post("/api/v1/appointments/", headers=auth, json={
        "service": "visit", "start": start, "customer": {"name": "Eve", "email": email}, **extra})


def _outbox(app, slug):
    from app.extensions import db

    with app.app_context(), db.engine.connect() as conn:
        return [r[0] for r in conn.execute(text(f'SELECT event_type FROM "tenant_{slug}".outbox_event ORDER BY id'))]


def test_book_list_and_change_through_the_booking_service(app, client, keyed):
    slug, key = keyed
    auth = key()
    made = _book(client, auth)
    assert made.status_code == 201, made.get_json()
    appt = made.get_json()["result"]
    assert appt["status"] == "confirmed" and appt["service"]["key"] == "visit" and appt["staff"]["key"] == "ann"
    assert appt["source"] == "api" and appt["customer"]["email"] == "eve@example.com"
    assert made.headers["ETag"]
    # The slot is taken now: the same booking again is refused by the booking service.
    again = _book(client, auth, email="other@example.com")
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "slot_unavailable"

    shown = client.get(f"/api/v1/appointments/{appt['id']}", headers=auth)
    assert shown.status_code == 200 and shown.get_json()["result"]["id"] == appt["id"]
    etag = shown.headers["ETag"]
    moved = client.post(f"/api/v1/appointments/{appt['id']}/reschedule", headers={**auth, "If-Match": etag},
                        json={"start": "2027-01-11T09:00:00Z"})
    assert moved.status_code == 200, moved.get_json()
    assert moved.get_json()["result"]["start"] == "2027-01-11T09:00:00Z" and moved.headers["ETag"] != etag
    # The old ETag no longer matches: 412, nothing changes.
    stale = client.post(f"/api/v1/appointments/{appt['id']}/cancel", headers={**auth, "If-Match": etag}, json={})
    assert stale.status_code == 412 and stale.get_json()["error"]["code"] == "precondition_failed"
    assert client.post(f"/api/v1/appointments/{appt['id']}/complete", headers=auth).get_json()["result"]["status"] \
        == "completed"
    second = _book(client, auth, start="2027-01-12T08:00:00Z").get_json()["result"]
    assert client.post(f"/api/v1/appointments/{second['id']}/no-show", headers=auth).status_code == 200
    third = _book(client, auth, start="2027-01-13T08:00:00Z").get_json()["result"]
    cancelled = client.post(f"/api/v1/appointments/{third['id']}/cancel", headers=auth, json={"reason": "ill"})
    assert cancelled.get_json()["result"]["status"] == "cancelled"
    # Eve is new at the first booking only (the same details later change nothing).
    assert _outbox(app, slug) == ["customer.created", "appointment.booked", "appointment.rescheduled",
                                  "appointment.status_changed",
                                  "appointment.booked", "appointment.status_changed", "appointment.no_show",
                                  "appointment.booked", "appointment.cancelled"]

    # Filters and keyset pages.
    everything = client.get("/api/v1/appointments/?limit=2", headers=auth).get_json()
    assert [a["start"] for a in everything["result"]] == ["2027-01-11T09:00:00Z", "2027-01-12T08:00:00Z"]
    rest = client.get(f"/api/v1/appointments/?limit=2&cursor={everything['next_cursor']}", headers=auth).get_json()
    assert [a["id"] for a in rest["result"]] == [third["id"]] and rest["next_cursor"] is None
    only = client.get("/api/v1/appointments/?status=cancelled,no_show", headers=auth).get_json()["result"]
    assert {a["id"] for a in only} == {second["id"], third["id"]}
    window = client.get("/api/v1/appointments/?from=2027-01-12T00:00:00Z&to=2027-01-13T00:00:00Z",
                        headers=auth).get_json()["result"]
    assert [a["id"] for a in window] == [second["id"]]
    for bad in ("status=gone", "limit=0", "limit=x", "cursor=nonsense", "from=yesterday", "customer=x"):
        answer = client.get(f"/api/v1/appointments/?{bad}", headers=auth)
        assert answer.status_code == 422, bad
        assert set(answer.get_json()["error"]) >= {"code", "message", "field"}
    assert client.get("/api/v1/appointments/not-a-uuid", headers=auth).status_code == 404


def test_idempotency_key_replays_the_first_answer(app, client, keyed):
    slug, key = keyed
    auth = {**key(), "Idempotency-Key": "order-4711"}
    first = _book(client, auth)
    assert first.status_code == 201
    replay = _book(client, auth)
    assert replay.status_code == 201 and replay.get_json() == first.get_json()
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert _outbox(app, slug) == ["customer.created", "appointment.booked"]  # booked once
    other_body = _book(client, auth, start="2027-01-12T08:00:00Z")
    assert other_body.status_code == 422 and other_body.get_json()["error"]["code"] == "idempotency_mismatch"
    # FAB-backed catalogue writes honour the header too.
    loc = {"key": "room2", "name": "Room 2", "timezone": "Europe/Berlin"}
    one = client.post("/api/v1/locations/", headers=auth | {"Idempotency-Key": "loc-1"}, json=loc)
    two = client.post("/api/v1/locations/", headers=auth | {"Idempotency-Key": "loc-1"}, json=loc)
    assert one.status_code == two.status_code == 201 and one.get_json()["id"] == two.get_json()["id"]


def test_catalogue_etag_and_if_match(client, keyed):
    _, key = keyed
    auth = key()
    loc = client.get("/api/v1/locations/", headers=auth).get_json()["ids"][0]
    shown = client.get(f"/api/v1/locations/{loc}", headers=auth)
    etag = shown.headers["ETag"]
    changed = client.put(f"/api/v1/locations/{loc}", headers={**auth, "If-Match": etag}, json={"name": "Renamed"})
    assert changed.status_code == 200 and changed.headers["ETag"] != etag
    refused = client.put(f"/api/v1/locations/{loc}", headers={**auth, "If-Match": etag}, json={"name": "Lost"})
    assert refused.status_code == 412 and refused.get_json()["error"]["code"] == "precondition_failed"
    assert client.get(f"/api/v1/locations/{loc}", headers=auth).get_json()["result"]["name"] == "Renamed"


def test_availability_and_read_only_key(client, keyed):
    _, key = keyed
    read = key("read")
    slots = client.get("/api/v1/availability/?service=visit&from=2027-01-11&to=2027-01-11&timezone=Europe/Berlin",
                       headers=read)
    assert slots.status_code == 200, slots.get_json()
    assert slots.get_json()["slots"][0] == {"start": "2027-01-11T08:00:00Z", "end": "2027-01-11T08:30:00Z", "staff": ["ann"]}
    missing = client.get("/api/v1/availability/?from=2027-01-11&to=2027-01-11", headers=read)
    assert missing.status_code == 422 and missing.get_json()["error"]["field"] == "service"
    refused = _book(client, read)
    assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "not_allowed"


def test_location_restricted_key(app, client, keyed):
    slug, key = keyed
    full, elsewhere, here = key(), key(location_key="elsewhere"), key(location_key="main")
    booked = _book(client, full).get_json()["result"]
    assert client.get(f"/api/v1/appointments/{booked['id']}", headers=elsewhere).status_code == 404
    assert client.get("/api/v1/appointments/", headers=elsewhere).get_json()["result"] == []
    assert client.get(f"/api/v1/appointments/{booked['id']}", headers=here).status_code == 200
    wrong = _book(client, here, start="2027-01-12T08:00:00Z", location="other")
    assert wrong.status_code == 403 and wrong.get_json()["error"]["field"] == "location"
    # The key's location does not exist here: availability names it, as for any unknown location key.
    unknown = client.get("/api/v1/availability/?service=visit&from=2027-01-11&to=2027-01-11", headers=elsewhere)
    assert unknown.status_code == 422 and unknown.get_json()["error"]["field"] == "location"
    assert client.get("/api/v1/availability/?service=visit&from=2027-01-11&to=2027-01-11&location=other",
                      headers=here).status_code == 403
