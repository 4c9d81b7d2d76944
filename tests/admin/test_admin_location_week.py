"""A location's opening hours for the whole week in one save (the staff week editor's form round),
closed days on its calendar."""

from __future__ import annotations

import pytest
from sqlalchemy import text


def _rows(app, slug, sql):
    from app.extensions import db

    with app.app_context(), db.engine.connect() as conn:
        return conn.execute(text(sql.replace("T.", f'"tenant_{slug}".'))).all()


def _login(client, slug):
    assert client.post("/login/", data={"username": f"ca_{slug}", "password": "password-1"}).status_code == 302
    client.post(f"/switch/{slug}")


def test_opening_hours_are_saved_for_the_whole_week_and_bad_input_writes_nothing(app, client, agency_business):
    slug = agency_business
    _login(client, slug)
    location = _rows(app, slug, "SELECT id FROM T.location")[0][0]
    assert "Opening hours" in client.get("/locationweek/").get_data(as_text=True)
    week = {f"hours-{d}": "" for d in range(7)}
    bad = client.post(f"/locationweek/{location}", data={**week, "hours-2": "18:00-09:00", "action": "save"})
    body = bad.get_data(as_text=True)
    assert bad.status_code == 422 and "the end must be after the start" in body and 'value="18:00-09:00"' in body
    assert 'aria-describedby="hours-2-error"' in body and not _rows(app, slug, "SELECT 1 FROM T.location_hours")

    copied = client.post(f"/locationweek/{location}", data={**week, "hours-0": "09:00-12:00, 13:00-18:00",
                                                             "action": "copy_monday"}).get_data(as_text=True)
    assert copied.count('value="09:00-12:00, 13:00-18:00"') == 5 and 'name="breaks-0"' not in copied
    saved = client.post(f"/locationweek/{location}", data={**week, **{f"hours-{d}": "09:00-12:00, 13:00-18:00" for d in range(5)},
                                                            "hours-5": "10:00-14:00", "action": "save"})
    assert saved.status_code == 302
    rows = _rows(app, slug, "SELECT weekday, start_min, end_min FROM T.location_hours ORDER BY 1, 2")
    assert [tuple(r) for r in rows] == [(d, s, e) for d in range(5) for s, e in ((540, 720), (780, 1080))] + [(5, 600, 840)]
    page = client.get(f"/locationweek/{location}").get_data(as_text=True)
    assert 'value="10:00-14:00"' in page and "09:00–12:00, 13:00–18:00" in page  # stored week and its preview

    assert client.post(f"/locationweek/{location}/closed", data={"date": "2027-12-24", "reason": "Christmas"}).status_code == 302
    assert [(str(r[0]), r[1]) for r in _rows(app, slug, "SELECT date, reason FROM T.location_closure")] == [("2027-12-24", "Christmas")]
    december = client.get(f"/locationweek/{location}?month=2027-12").get_data(as_text=True)
    assert '<td class="cal-off">24<span class="sr-only"> closed</span>' in december
    assert client.get("/locationweek/999999").status_code == 404


def test_the_staff_week_editor_still_works_through_the_shared_round(app, client, agency_business):
    slug = agency_business
    _login(client, slug)
    staff = _rows(app, slug, "SELECT id FROM T.staff")[0][0]
    data = {f"{k}-{d}": "" for d in range(7) for k in ("hours", "breaks")}
    assert client.post(f"/weekhours/{staff}", data={**data, "hours-3": "08:00-12:00", "breaks-3": "10:00-10:30",
                                                    "action": "save"}).status_code == 302
    assert [tuple(r) for r in _rows(app, slug, "SELECT weekday, start_min, end_min FROM T.staff_break")] == [(3, 600, 630)]


@pytest.mark.browser
def test_opening_hours_page_is_accessible(app, live_server, agency_business, page):
    from admin_browser_support import sign_in
    from axe_support import assert_accessible

    slug = agency_business
    sign_in(page, live_server, f"ca_{slug}", business=slug)
    location = _rows(app, slug, "SELECT id FROM T.location")[0][0]
    page.goto(f"{live_server}/locationweek/{location}")
    page.fill("#hours-0", "09:00-17:00")
    page.click("button[value=copy_monday]")
    page.wait_for_load_state()
    assert page.input_value("#hours-4") == "09:00-17:00"
    assert_accessible(page, "opening hours")
    page.goto(f"{live_server}/locationweek/")
    assert_accessible(page, "opening hours list")
