"""The admin booking desk: week of slots, booking for a customer, override permission, reschedule, explain."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import text

WEEK = "2027-01-11"  # a Monday; the tenant works Mon-Fri 09:00-17:00 Berlin


@pytest.fixture()
def desk(agency_business):
    """A business of its own agency; log-ins ca_<slug> (client admin) and ow_<slug> (agency owner)."""
    return agency_business


def _login(client, user):
    client.post("/login/", data={"username": user, "password": "password-1"})
    switch = client.post(f"/switch/{user.split('_', 1)[1]}")
    assert switch.status_code in (302, 404)


def _appointments(app, slug):
    from app.extensions import db

    with app.app_context(), db.engine.connect() as conn:
        return conn.execute(text(f'SELECT start_at, status FROM "tenant_{slug}".appointment ORDER BY start_at')).all()


def _book(client, slug, start, override=False, email="desk@example.com"):
    data = {"service": "visit", "staff": "ann", "location": "", "start": start, "name": "Desk Customer",
            "email": email, "phone": "", "seats": "1", "notes": "", "timezone": "Europe/Berlin"}
    if override:
        data["override"] = "1"
    return client.post("/desk/book", data=data)


def test_week_shows_slots_and_booking_takes_one(client, desk, app):
    _login(client, f"ca_{desk}")
    page = client.get(f"/desk/?service=visit&week={WEEK}&timezone=Europe/Berlin").get_data(as_text=True)
    assert "09:00" in page and "16:30" in page and "17:00" not in page
    response = _book(client, desk, "2027-01-11T09:00")
    assert response.status_code == 302
    rows = _appointments(app, desk)
    assert [r.start_at for r in rows] == [dt.datetime(2027, 1, 11, 8, 0, tzinfo=dt.timezone.utc)]
    # Taken now, and a second booking of the same time is refused without writing anything.
    page = client.get(f"/desk/?service=visit&week={WEEK}&timezone=Europe/Berlin&staff=ann").get_data(as_text=True)
    assert "start=2027-01-11T09%3A00" not in page and "start=2027-01-11T09:00" not in page
    refused = _book(client, desk, "2027-01-11T09:00", email="second@example.com").get_data(as_text=True)
    assert "no longer available" in refused or "not available" in refused
    assert len(_appointments(app, desk)) == 1


def test_override_needs_the_permission_and_never_overlaps(client, desk, app):
    _login(client, f"ca_{desk}")
    # 20:00 is outside hours: a client admin has no override permission.
    denied = _book(client, desk, "2027-01-11T20:00", override=True).get_data(as_text=True)
    assert "override permission" in denied
    assert _appointments(app, desk) == []
    client.get("/logout/")
    _login(client, f"ow_{desk}")
    assert _book(client, desk, "2027-01-11T20:00", override=True).status_code == 302
    assert len(_appointments(app, desk)) == 1
    overlap = _book(client, desk, "2027-01-11T20:15", override=True, email="x@example.com").get_data(as_text=True)
    assert "no longer available" in overlap
    assert len(_appointments(app, desk)) == 1


def test_explain_names_the_reason(client, desk):
    _login(client, f"ca_{desk}")
    page = client.get("/desk/explain?service=visit&staff=ann&start=2027-01-11T18:00&timezone=Europe/Berlin").get_data(as_text=True)
    assert "outside_hours" in page
    ok = client.get("/desk/explain?service=visit&staff=ann&start=2027-01-11T10:00&timezone=Europe/Berlin").get_data(as_text=True)
    assert "Bookable" in ok
    bad = client.get("/desk/explain?service=visit&staff=ann&start=soon&timezone=Europe/Berlin").get_data(as_text=True)
    assert "must be a date and time" in bad


def test_reschedule_from_the_desk(client, desk, app):
    _login(client, f"ca_{desk}")
    _book(client, desk, "2027-01-11T09:00")
    from app.extensions import db

    with app.app_context(), db.engine.connect() as conn:
        appt_id = conn.execute(text(f'SELECT id FROM "tenant_{desk}".appointment')).scalar()
    response = client.post(f"/desk/reschedule/{appt_id}", data={"start": "2027-01-12T11:30", "staff": "ann"})
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    assert _appointments(app, desk)[0].start_at == dt.datetime(2027, 1, 12, 10, 30, tzinfo=dt.timezone.utc)
    assert client.get("/desk/reschedule/not-a-uuid").status_code == 404


def test_desk_retries_a_deadlock_once(client, desk, app, monkeypatch):
    from support import deadlock_on_staff_lock

    _login(client, f"ca_{desk}")
    calls = deadlock_on_staff_lock(monkeypatch, 1)
    assert _book(client, desk, "2027-01-11T09:00").status_code == 302
    assert len(calls) == 2 and len(_appointments(app, desk)) == 1
    calls = deadlock_on_staff_lock(monkeypatch, 2)
    refused = _book(client, desk, "2027-01-11T10:00", email="other@example.com").get_data(as_text=True)
    assert "no longer available" in refused and len(calls) == 2
    assert len(_appointments(app, desk)) == 1
