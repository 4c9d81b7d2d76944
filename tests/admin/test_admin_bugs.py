"""The bugs a new owner hit in the admin (issue: admin usability); each test failed before its fix."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import text
from support import unique_slug


def _rows(app, slug, sql):
    from app.extensions import db

    with app.app_context(), db.engine.connect() as conn:
        return conn.execute(text(sql.replace("T.", f'"tenant_{slug}".'))).all()


def _login(client, user):
    assert client.post("/login/", data={"username": user, "password": "password-1"}).status_code == 302
    client.post(f"/switch/{user.split('_', 1)[1]}")


NO_DATABASE_TEXT = ("psycopg", "INSERT INTO", "UPDATE ", "CheckViolation", "IntegrityError", "[SQL:", "parameters")


def _no_database_error(page: str) -> None:
    for fragment in NO_DATABASE_TEXT:
        assert fragment not in page, fragment


def _service_form(**overrides):
    data = {"name": "Video consult", "key": "video", "duration_min": "30", "buffer_before_min": "0",
            "buffer_after_min": "0", "min_notice_min": "0", "max_advance_days": "365", "capacity": "1",
            "meeting": "zoom", "cancel_window_min": "0", "reschedule_window_min": "0", "all_locations": "y", "active": "y"}
    data.update(overrides)
    return data


def test_service_form_offers_meeting_choices_and_never_shows_a_database_error(app, client, agency_business):
    slug = agency_business
    _login(client, f"ca_{slug}")
    form = client.get("/serviceview/add").get_data(as_text=True)
    assert '<select' in form and 'value="zoom"' in form and ">Zoom<" in form and ">Google Meet<" in form
    # Free text (the old form's "Zoom") is not a choice: a field error, the input kept, nothing written.
    typed = client.post("/serviceview/add", data=_service_form(meeting="Zoom"))
    page = typed.get_data(as_text=True)
    assert typed.status_code == 200 and "Not a valid choice" in page and 'value="Video consult"' in page
    _no_database_error(page)
    # A value only the database refuses (duration 3 min): the reason at the field, the form kept.
    refused = client.post("/serviceview/add", data=_service_form(duration_min="3"))
    page = refused.get_data(as_text=True)
    assert refused.status_code == 200 and "5 to 1440 minutes" in page and 'value="Video consult"' in page
    assert 'aria-describedby="duration_min-error"' in page
    _no_database_error(page)
    # A key already used: the field says so.
    taken = client.post("/serviceview/add", data=_service_form(key="visit")).get_data(as_text=True)
    assert "already" in taken.lower()
    _no_database_error(taken)
    assert _rows(app, slug, "SELECT count(*) FROM T.service")[0][0] == 1
    assert client.post("/serviceview/add", data=_service_form()).status_code == 302
    assert _rows(app, slug, "SELECT meeting FROM T.service WHERE key = 'video'")[0][0] == "zoom"


def test_time_off_is_entered_as_local_dates_and_times_and_saved_as_utc(app, client, agency_business):
    slug = agency_business
    _login(client, f"ca_{slug}")
    staff = _rows(app, slug, "SELECT id FROM T.staff")[0][0]
    form = client.get("/timeoffview/add").get_data(as_text=True)
    assert 'type="date"' in form and 'type="time"' in form
    # The date picker's values (YYYY-MM-DD), no time: whole days in Berlin.
    saved = client.post("/timeoffview/add", data={"staff": staff, "start_date": "2027-01-11", "end_date": "2027-01-12",
                                                  "start_time": "", "end_time": "", "reason": "Holiday"})
    assert saved.status_code == 302, saved.get_data(as_text=True)[-2000:]
    # A part of a day in local time (summer: UTC+2).
    client.post("/timeoffview/add", data={"staff": staff, "start_date": "2027-07-05", "start_time": "13:30",
                                          "end_date": "", "end_time": "17:00", "reason": "Dentist"})
    rows = _rows(app, slug, "SELECT start_at, end_at, reason FROM T.time_off ORDER BY start_at")
    utc = dt.timezone.utc
    assert [(r[0].astimezone(utc), r[1].astimezone(utc), r[2]) for r in rows] == [
        (dt.datetime(2027, 1, 10, 23, 0, tzinfo=utc), dt.datetime(2027, 1, 12, 23, 0, tzinfo=utc), "Holiday"),
        (dt.datetime(2027, 7, 5, 11, 30, tzinfo=utc), dt.datetime(2027, 7, 5, 15, 0, tzinfo=utc), "Dentist"),
    ]
    listing = client.get("/timeoffview/list/").get_data(as_text=True)
    assert "Mon 11 Jan 2027, 00:00 (Europe/Berlin)" in listing and "+00:00" not in listing
    # The end before the start: a field error, input kept, nothing saved.
    bad = client.post("/timeoffview/add", data={"staff": staff, "start_date": "2027-02-02", "start_time": "12:00",
                                                "end_date": "2027-02-02", "end_time": "11:00", "reason": "Oops"})
    page = bad.get_data(as_text=True)
    assert bad.status_code == 200 and "The end must be after the start" in page and 'value="Oops"' in page
    assert len(_rows(app, slug, "SELECT 1 FROM T.time_off")) == 2


def _desk_book(client, start, **extra):
    data = {"service": "visit", "staff": "ann", "location": "", "start": start, "name": "Desk Customer",
            "email": "desk@example.com", "phone": "", "seats": "1", "notes": "", "timezone": "Europe/Berlin", **extra}
    return client.post("/desk/book", data=data)


def test_desk_refuses_past_times_even_with_override_and_records_the_past_only_explicitly(app, client, agency_business):
    slug = agency_business
    _login(client, f"ow_{slug}")  # the agency owner holds the override permission
    yesterday = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)).strftime("%Y-%m-%dT10:00")
    refused = _desk_book(client, yesterday, override="1")
    page = refused.get_data(as_text=True)
    assert refused.status_code == 200 and "in the past" in page
    assert _rows(app, slug, "SELECT count(*) FROM T.appointment")[0][0] == 0
    # Recording what already happened: saved as completed, and no event that would mail the customer.
    recorded = _desk_book(client, yesterday, record_past="1")
    assert recorded.status_code == 302
    rows = _rows(app, slug, "SELECT status, source FROM T.appointment")
    assert [tuple(r) for r in rows] == [("completed", "admin_record")]
    from app.extensions import db
    from app.models import tenant as m
    from app.services import notify
    from app.tenancy import tenant_session

    with app.app_context(), tenant_session(db.engine, slug) as (session, ref):
        # The appointment's event (the new customer has a customer.created event of its own).
        event = session.query(m.OutboxEvent).filter(m.OutboxEvent.event_type.like("appointment.%")).one()
        settings = notify.Settings.from_config(app.config)
        assert notify.plan_event(session, ref, event, settings, dt.datetime.now(dt.timezone.utc)) == []
    # And a future time cannot be "recorded" as already happened.
    future = _desk_book(client, "2030-01-07T10:00", record_past="1").get_data(as_text=True)
    assert "must have started already" in future


def test_business_form_keeps_the_input_and_shows_the_time_zone_error_at_its_field(app, client, make_user_owner):
    user = make_user_owner
    assert client.post("/login/", data={"username": user, "password": "password-1"}).status_code == 302
    from app.extensions import db
    from app.models.public import Agency

    with app.app_context():
        agency = db.session.query(Agency).filter_by(slug="test-agency").one().id
    slug = unique_slug("biz")
    response = client.post("/tenantview/add", data={"agency": agency, "name": "Vienna Nails", "slug": slug,
                                                    "timezone": "Vienna", "currency": "EUR", "locale": "de"})
    page = response.get_data(as_text=True)
    assert response.status_code == 200, response.headers.get("Location")
    assert "unknown time zone" in page and 'value="Vienna Nails"' in page and f'value="{slug}"' in page
    assert 'aria-describedby="timezone-error"' in page


@pytest.fixture()
def make_user_owner(app):
    from app.extensions import db
    from app.services.people import create_user_with_role

    name = unique_slug("own")
    with app.app_context():
        create_user_with_role(db.session, username=name, email=f"{name}@x.org", password="password-1",
                              role="Agency Owner", agency_slug="test-agency")
        db.session.commit()
    return name


def test_the_auditors_menu_offers_only_pages_it_may_open(app, client, agency_business):
    from app.extensions import db
    from app.services.people import create_user_with_role

    slug = agency_business
    name = f"au_{slug}"
    agency = _rows(app, slug, f"SELECT a.slug FROM public.agency a JOIN public.tenant t ON t.agency_id = a.id WHERE t.slug = '{slug}'")[0][0]
    with app.app_context():
        create_user_with_role(db.session, username=name, email=f"{name}@x.org", password="password-1",
                              role="Auditor", agency_slug=agency)
        db.session.commit()
    _login(client, name)
    home = client.get("/").get_data(as_text=True)
    assert "/appointmentview/list/" in home  # readable lists stay
    for href in ("/setupimport/", "/desk/"):
        assert href not in home, href
        assert client.get(href).status_code in (302, 403)  # and they are indeed closed
