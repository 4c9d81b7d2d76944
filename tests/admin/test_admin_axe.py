"""axe-core on the admin's pages in headless Chromium: no critical or serious WCAG 2.1 AA violation."""

from __future__ import annotations

import pytest
from axe_support import assert_accessible
from admin_browser_support import sign_in

pytestmark = pytest.mark.browser


def test_admin_pages_have_no_serious_violation(app, live_server, agency_business, page, client, monkeypatch):
    slug = agency_business
    page.goto(f"{live_server}/login/")
    assert page.locator("html").get_attribute("lang") == "en"
    assert_accessible(page, "login")
    sign_in(page, live_server, f"ow_{slug}", business=slug)
    page.goto(f"{live_server}/")
    assert page.locator("main").count() == 1 and page.locator("h1").count() == 1
    assert_accessible(page, "owner home")

    # A booking through the desk, so the appointments list has a row (and its checkbox).
    page.goto(f"{live_server}/desk/?service=visit&week=2027-01-11&timezone=Europe/Berlin")
    assert page.locator("h1").count() == 1
    assert_accessible(page, "booking desk")
    first = page.locator(".desk-slot a").first
    assert first.get_attribute("aria-label") == "Mon 11 Jan, 09:00, Ann"
    first.click()
    page.fill("input[name=name]", "Desk Customer")
    page.fill("input[name=email]", "desk@example.com")
    page.click("main form.form-horizontal button.btn-primary")
    page.wait_for_load_state()
    page.goto(f"{live_server}/appointmentview/list/")
    assert page.locator("input.action_check").count() == 1
    assert_accessible(page, "appointments list")
    page.goto(f"{live_server}/serviceview/add")
    assert_accessible(page, "service form")

    # An export over the inline limit is built in the background: "My exports" follows it.
    monkeypatch.setitem(app.config, "EXPORT_INLINE_ROWS", 0)
    page.goto(f"{live_server}/appointments/")
    assert_accessible(page, "appointments search")
    page.click("text=Export CSV")
    page.wait_for_url("**/appointments/exports/")
    assert page.locator("#upz-exports progress").count() == 1
    assert_accessible(page, "my exports")
