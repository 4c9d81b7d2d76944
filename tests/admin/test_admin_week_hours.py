"""The week editor (one save for the whole week) and local times in admin lists."""

from __future__ import annotations

from sqlalchemy import text


def _rows(app, slug, sql):
    from app.extensions import db

    with app.app_context(), db.engine.connect() as conn:
        return conn.execute(text(sql.replace("T.", f'"tenant_{slug}".'))).all()


def _login(client, slug):
    assert client.post("/login/", data={"username": f"ca_{slug}", "password": "password-1"}).status_code == 302
    client.post(f"/switch/{slug}")


def _week(**days):
    data = {f"{kind}-{d}": "" for d in range(7) for kind in ("hours", "breaks")}
    data.update(days)
    return data


def test_the_whole_week_is_saved_at_once_and_bad_input_writes_nothing(app, client, agency_business):
    slug = agency_business
    _login(client, slug)
    staff = _rows(app, slug, "SELECT id FROM T.staff")[0][0]
    page = client.get(f"/weekhours/{staff}").get_data(as_text=True)
    assert 'value="09:00-17:00"' in page  # Mon-Fri 09:00-17:00 from the setup, one row per day
    before = _rows(app, slug, "SELECT weekday, start_min, end_min FROM T.staff_hours ORDER BY 1, 2")

    # Overlapping intervals: the field says why, nothing is written, the input stays.
    bad = client.post(f"/weekhours/{staff}", data={**_week(**{"hours-0": "09:00-13:00, 12:00-17:00"}), "action": "save"})
    body = bad.get_data(as_text=True)
    assert bad.status_code == 422 and "overlap" in body and 'value="09:00-13:00, 12:00-17:00"' in body
    assert 'aria-describedby="hours-0-error"' in body
    assert _rows(app, slug, "SELECT weekday, start_min, end_min FROM T.staff_hours ORDER BY 1, 2") == before

    # Copy Monday to the weekdays: shown, not saved yet.
    copied = client.post(f"/weekhours/{staff}", data={**_week(**{"hours-0": "08:00-12:00, 13:00-16:00", "breaks-0": "10:00-10:15"}),
                                                      "action": "copy_monday"}).get_data(as_text=True)
    assert copied.count('value="08:00-12:00, 13:00-16:00"') == 5 and copied.count('value="10:00-10:15"') == 5
    assert "08:00–10:00, 10:15–12:00, 13:00–16:00" in copied  # the preview subtracts the break
    saved = client.post(f"/weekhours/{staff}", data={**_week(**{f"hours-{d}": "08:00-12:00, 13:00-16:00" for d in range(5)},
                                                             **{"breaks-0": "10:00-10:15", "hours-5": "10:00-14:00"}),
                                                     "action": "save"})
    assert saved.status_code == 302
    hours = _rows(app, slug, "SELECT weekday, start_min, end_min FROM T.staff_hours ORDER BY 1, 2")
    assert [tuple(h) for h in hours] == [(d, s, e) for d in range(5) for s, e in ((480, 720), (780, 960))] + [(5, 600, 840)]
    assert [tuple(b) for b in _rows(app, slug, "SELECT weekday, start_min, end_min FROM T.staff_break")] == [(0, 600, 615)]
    # A day off from the calendar: an override without hours.
    assert client.post(f"/weekhours/{staff}/dayoff", data={"date": "2027-01-13"}).status_code == 302
    assert [(str(r[0]), r[1]) for r in _rows(app, slug, "SELECT date, intervals FROM T.staff_override")] == [("2027-01-13", [])]
    assert "Weekly hours" in client.get("/").get_data(as_text=True)


def test_my_day_and_lists_show_local_labelled_times(app, client, agency_business, make_user):
    slug = agency_business
    _login(client, slug)
    client.post("/desk/book", data={"service": "visit", "staff": "ann", "location": "", "start": "2027-01-11T09:00",
                                    "name": "Desk Customer", "email": "desk@example.com", "phone": "", "seats": "1",
                                    "notes": "", "timezone": "Europe/Berlin"})
    listing = client.get("/appointmentview/list/").get_data(as_text=True)
    assert "Mon 11 Jan 2027, 09:00 (Europe/Berlin)" in listing and "08:00:00+00:00" not in listing
    staff_id = _rows(app, slug, "SELECT id FROM T.staff")[0][0]
    mia = make_user("Staff", tenant=slug, staff_id=staff_id)
    client.get("/logout/")
    assert client.post("/login/", data={"username": mia, "password": "password-1"}).status_code == 302
    day = client.get("/myday/list/?day=2027-01-11").get_data(as_text=True)
    assert "Monday 11 January 2027" in day and "Mon 11 Jan 2027, 09:00" in day
    assert "day=2027-01-10" in day and "day=2027-01-12" in day
    assert "Mon 11 Jan 2027, 09:00" not in client.get("/myday/list/?day=2027-01-12").get_data(as_text=True)
