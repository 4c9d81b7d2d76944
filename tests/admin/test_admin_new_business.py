"""A new business set up in the admin alone, in headless Chromium: the business, a location, a service,
staff with a Monday-Friday week in one save, a day off; the widget then offers exactly those times."""

from __future__ import annotations

import pytest
from admin_browser_support import sign_in, switch_business
from axe_support import assert_accessible
from support import unique_slug

pytestmark = pytest.mark.browser
NOW = "2027-03-01T00:00:00Z"  # Monday 1 March 2027, 01:00 in Vienna (CET, before the DST change)


def _fill(page, values: dict) -> None:
    for field, value in values.items():
        page.fill(f"#{field}", value)


def _save(page):
    page.click("main form button[type=submit]")
    page.wait_for_load_state()


def test_new_business_set_up_in_the_admin_offers_exactly_its_week(app, client, live_server, make_user, pinned_now, page):
    pinned_now(NOW)
    owner = make_user("Agency Owner", agency="test-agency")
    slug = unique_slug("nb")
    sign_in(page, live_server, owner, password="password-1")

    # The client business (short name typed wrong first: the error is at the field, the input kept).
    page.goto(f"{live_server}/tenantview/add")
    page.select_option("#agency", label="Test Agency", force=True)
    _fill(page, {"name": "Nails Vienna", "slug": "Nails Vienna!", "currency": "EUR", "locale": "de"})
    page.select_option("#timezone", "Europe/Vienna", force=True)
    _save(page)
    assert page.locator("#slug-error").is_visible() and page.input_value("#name") == "Nails Vienna"
    assert page.input_value("#timezone") == "Europe/Vienna"
    page.fill("#slug", slug)
    _save(page)
    assert "/tenantview/provisioning/" in page.url
    switch_business(page, live_server, slug)
    page.goto(f"{live_server}/")
    assert page.locator(".getting-started li").count() == 5
    assert_accessible(page, "home of an empty business")

    page.goto(f"{live_server}/locationview/add")
    # Keys are left empty (derived from the names); the zone select is preset to the business's zone.
    assert page.input_value("#timezone") == "Europe/Vienna"
    _fill(page, {"name": "Studio", "address": "Graben 1, Wien"})
    _save(page)
    page.goto(f"{live_server}/serviceview/add")
    _fill(page, {"name": "Manicure", "duration_min": "60", "buffer_before_min": "0",
                 "buffer_after_min": "0", "min_notice_min": "0", "max_advance_days": "365", "capacity": "1",
                 "cancel_window_min": "0", "reschedule_window_min": "0"})
    page.select_option("#meeting", "none")
    _save(page)
    page.goto(f"{live_server}/staffview/add")
    _fill(page, {"name": "Mia Maier", "email": "mia@example.com"})
    page.select_option("#services", label="Manicure", force=True)
    page.select_option("#locations", label="Studio", force=True)
    _save(page)

    # The whole week in one save: Monday typed, copied to Tuesday-Friday, previewed, saved.
    page.goto(f"{live_server}/weekhours/")
    page.get_by_role("link", name="Mia Maier").click()
    page.fill("#hours-0", "09:00-12:00, 13:00-17:00")
    page.click("button[value=copy_monday]")
    assert page.input_value("#hours-4") == "09:00-12:00, 13:00-17:00" and page.input_value("#hours-5") == ""
    assert_accessible(page, "week editor")
    page.click("button[value=save]")
    page.wait_for_load_state()
    assert "is saved" in page.locator(".alert-success").inner_text()
    # A day off on Wednesday 3 March.
    page.fill("#day-off-date", "2027-03-03")
    page.get_by_role("button", name="Add day off").click()
    page.wait_for_load_state()
    assert "day off" in page.locator(".alert-success").inner_text()
    assert page.locator("td.cal-off").count() == 1

    # The widget: created in the builder, then the times it offers for that week.
    page.goto(f"{live_server}/widgets/")
    page.click("#upz-new-widget")
    page.fill("#name", "Website")
    page.click("main form button[type=submit]")
    page.wait_for_load_state()
    from widget_support import tenant_rows

    public_id = tenant_rows(app, slug, "SELECT public_id FROM widget")[0][0]
    answer = client.get(f"/api/v1/public/{slug}/availability?service=manicure&from=2027-03-01&to=2027-03-07&timezone=Europe/Vienna")
    assert answer.status_code == 200, answer.get_json()
    local = [s["start"] for s in answer.get_json()["slots"]]
    hours = ["08:00", "09:00", "10:00", "12:00", "13:00", "14:00", "15:00"]  # 09-12, 13-17 Vienna in UTC
    expected = [f"2027-03-0{d}T{h}:00Z" for d in (1, 2, 4, 5) for h in hours]
    assert local == expected
    # And the widget's own page draws those times (a week from "now"), Wednesday left out.
    page.goto(f"{live_server}/widget/v1/{slug}/{public_id}/frame?service=manicure&lang=en")
    page.locator(".upz-day").nth(3).wait_for()
    page.wait_for_timeout(300)
    drawn = page.eval_on_selector_all("button.upz-slot", "els => els.map(e => e.getAttribute('data-start'))")
    assert drawn == expected
