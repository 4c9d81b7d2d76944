"""Admin forms a business owner fills in: hours as HH:MM, weekday choices, clear errors, nothing half-written."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from support import unique_slug


@pytest.fixture()
def admin_client(app, client, make_tenant):
    from app.extensions import db
    from app.services.people import create_user_with_role

    slug = make_tenant()
    with app.app_context():
        create_user_with_role(db.session, username=f"fa_{slug}", email=f"fa_{slug}@x.org", password="password-1",
                              role="Client Admin", tenant_slug=slug)
        db.session.commit()
    client.post("/login/", data={"username": f"fa_{slug}", "password": "password-1"})
    return client, slug


def _ids(app, slug):
    from app.extensions import db

    with app.app_context(), db.engine.connect() as conn:
        staff = conn.execute(text(f'SELECT id FROM "tenant_{slug}".staff')).scalar()
        location = conn.execute(text(f'SELECT id FROM "tenant_{slug}".location')).scalar()
        hours = conn.execute(text(f'SELECT weekday, start_min, end_min FROM "tenant_{slug}".staff_hours ORDER BY weekday, start_min')).all()
    return staff, location, hours


def test_hours_are_typed_as_hhmm_and_stored_as_minutes(app, admin_client):
    client, slug = admin_client
    staff, location, before = _ids(app, slug)
    form = client.get("/staffhoursview/add").get_data(as_text=True)
    assert 'placeholder="HH:MM"' in form and ">Saturday<" in form
    response = client.post("/staffhoursview/add", data={"staff": staff, "location": location, "weekday": 5, "start_min": "10:30", "end_min": "24:00"})
    assert response.status_code == 302
    assert (5, 630, 1440) in _ids(app, slug)[2]


@pytest.mark.parametrize("start, end, message", [("25:00", "26:00", "HH:MM"), ("12:00", "11:00", "end must be after start"), ("9", "10:00", "HH:MM")])
def test_bad_hours_are_a_form_error_and_write_nothing(app, admin_client, start, end, message):
    client, slug = admin_client
    staff, location, before = _ids(app, slug)
    response = client.post("/staffhoursview/add", data={"staff": staff, "location": location, "weekday": 5, "start_min": start, "end_min": end})
    assert response.status_code == 200
    assert message in response.get_data(as_text=True)
    assert _ids(app, slug)[2] == before


def test_location_with_unknown_time_zone_is_refused(app, admin_client):
    client, slug = admin_client
    response = client.post("/locationview/add", data={"name": "Annex", "key": "annex", "timezone": "Mars/Base"})
    assert response.status_code == 200 and "unknown time zone" in response.get_data(as_text=True)
    ok = client.post("/locationview/add", data={"name": "Annex", "key": "annex", "timezone": "Europe/Paris"})
    assert ok.status_code == 302


def test_unticked_checkbox_saves_false(app, admin_client):
    client, slug = admin_client
    assert client.post("/locationview/add", data={"name": "Closed", "key": "closed", "timezone": "Europe/Paris"}).status_code == 302
    from app.extensions import db

    with app.app_context(), db.engine.connect() as conn:
        active, virtual = conn.execute(text(f'SELECT active, virtual FROM "tenant_{slug}".location WHERE key = \'closed\'')).one()
    assert active is False and virtual is False
