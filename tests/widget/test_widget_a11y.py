"""axe-core on every widget step and the portal pages; the widget with keys alone (days by arrow keys,
the time-zone select keeps its focus)."""

from __future__ import annotations

import pytest
from axe_support import assert_accessible
from test_widget_browser import host_html
from widget_support import NOW, widget_setup

pytestmark = pytest.mark.browser


def _two_locations():
    doc = widget_setup()
    doc["locations"][0]["address"] = "Hauptstrasse 1, Berlin"
    doc["locations"].append({"key": "north", "name": "North", "timezone": "Europe/Berlin", "address": "Nordweg 2, Berlin"})
    doc["staff"][0]["locations"] = ["main", "north"]
    return doc


def _mail_link(app, email: str) -> str:
    import re

    from sqlalchemy import text

    from app.extensions import db

    with app.app_context(), db.engine.connect() as conn:
        body = conn.execute(text("SELECT body FROM public.platform_mail WHERE to_email = :e ORDER BY id DESC LIMIT 1"),
                            {"e": email}).scalar_one()
    return re.search(r"(https?://\S+/auth/\S+)", body).group(1)


def _frame(page, live):
    return next(f for f in page.frames if f.url.startswith(live) and "/frame" in f.url)


def test_every_widget_step_and_the_portal_have_no_serious_violation(app, live_server, host_pages, widget_tenant, pinned_now, page):
    pinned_now(NOW)
    allowed, _ = host_pages
    slug, widget = widget_tenant(origins=[allowed.origin], setup=_two_locations(),
                                 fields=[{"key": "reason", "label": "Reason", "field_type": "select", "required": True,
                                          "options": ["Check-up", "Pain"], "help_text": "Why you come"}],
                                 consents={"terms": "Be on time."})
    allowed.pages["/a11y.html"] = host_html(live_server, f'<div data-upzento-tenant="{slug}" data-upzento-widget="{widget}"></div>')
    page.goto(f"{allowed.origin}/a11y.html")
    frame = page.frame_locator("iframe.upzw-frame")
    frame.locator('button.upz-card[data-key="main"]').wait_for()
    child = _frame(page, live_server)
    assert_accessible(child, "widget: location")
    for link in frame.locator(".upz-links a").all():
        box = link.bounding_box()
        assert box["width"] >= 24 and box["height"] >= 24, link.inner_text()
    frame.locator('button.upz-card[data-key="main"]').click()
    frame.locator('button.upz-card[data-key="visit"]').click()
    frame.locator("button.upz-slot").first.wait_for()
    assert_accessible(child, "widget: time")
    frame.locator('button.upz-slot[data-start="2027-01-04T08:00:00Z"]').click()  # Monday: outside the 24 h window
    frame.locator("#upz-form").wait_for()
    assert_accessible(child, "widget: details")
    frame.locator("#upz-submit").click()
    alert = frame.locator("#upz-alert")
    assert alert.is_visible() and alert.get_attribute("role") == "alert"
    assert "4 field" in alert.inner_text()
    assert "upz-name-err" in frame.locator("#upz-name").get_attribute("aria-describedby")
    assert frame.locator("#upz-app").get_attribute("aria-live") is None
    assert_accessible(child, "widget: details after an empty submit")
    frame.locator("#upz-name").fill("Eve Example")
    frame.locator("#upz-email").fill("eve@example.com")
    frame.locator("#upz-f-reason").select_option("Pain")
    frame.locator("#upz-consent-terms").check()
    frame.locator("#upz-submit").click()
    frame.locator("#upz-done").wait_for()
    assert_accessible(child, "widget: done")
    manage = frame.locator("#upz-manage").get_attribute("href")

    # The portal: sign-in, home, one appointment, its reschedule page, the profile.
    page.goto(f"{live_server}/portal/{slug}/")
    assert_accessible(page, "portal: sign-in")
    page.get_by_label("Email").fill("eve@example.com")
    page.get_by_role("button", name="Email me a sign-in link").click()
    from urllib.parse import urlsplit

    page.goto(live_server + urlsplit(_mail_link(app, "eve@example.com")).path)  # the mail's host is PUBLIC_URL
    assert_accessible(page, "portal: confirm sign-in")
    page.get_by_role("button", name="Sign in").click()
    assert_accessible(page, "portal: home")
    page.goto(f"{live_server}{manage}")
    assert_accessible(page, "portal: appointment")
    assert "Choose a location" not in page.locator("main").inner_text()
    page.get_by_role("link", name="Reschedule").click()
    assert_accessible(page, "portal: reschedule")
    page.goto(f"{live_server}/portal/{slug}/profile")
    assert_accessible(page, "portal: profile")


def test_book_with_keys_alone_moving_between_days_by_arrows(app, live_server, host_pages, widget_tenant, pinned_now, page):
    pinned_now(NOW)
    allowed, _ = host_pages
    slug, widget = widget_tenant(origins=[allowed.origin])
    allowed.pages["/keys.html"] = host_html(live_server, f'<div data-upzento-tenant="{slug}" data-upzento-widget="{widget}"></div>')
    page.goto(f"{allowed.origin}/keys.html")
    frame = page.frame_locator("iframe.upzw-frame")
    frame.locator('button.upz-card[data-key="visit"]').focus()
    page.keyboard.press("Enter")
    frame.locator(".upz-day").nth(2).wait_for()
    child = _frame(page, live_server)
    # The time-zone select: choosing another zone by keyboard redraws the times, the focus stays on it.
    frame.locator("#upz-tz").focus()
    frame.locator("#upz-tz").select_option("UTC")
    frame.locator("button.upz-slot").first.wait_for()
    assert frame.locator("button.upz-slot").first.inner_text().strip() == "08:00"
    assert child.evaluate("document.activeElement.id") == "upz-tz"
    # Tab from the select reaches the first day's first time; one tab stop per day.
    page.keyboard.press("Tab")
    assert child.evaluate("document.activeElement.getAttribute('data-start')") == "2027-01-01T08:00:00Z"
    tabbable = child.evaluate("Array.from(document.querySelectorAll('button.upz-slot')).filter(b => b.tabIndex === 0).length")
    assert tabbable == frame.locator(".upz-slots").count()
    # Right moves within Friday, Down goes to the same place on the next day with times (Monday).
    page.keyboard.press("ArrowRight")
    assert child.evaluate("document.activeElement.getAttribute('data-start')") == "2027-01-01T08:30:00Z"
    page.keyboard.press("ArrowDown")
    assert child.evaluate("document.activeElement.getAttribute('data-start')") == "2027-01-04T08:30:00Z"
    page.keyboard.press("ArrowUp")
    assert child.evaluate("document.activeElement.getAttribute('data-start')") == "2027-01-01T08:30:00Z"
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    frame.locator("#upz-name").wait_for()
    page.keyboard.press("Tab")  # heading -> name
    page.keyboard.type("Kim Keys")
    page.keyboard.press("Tab")
    page.keyboard.type("kim@example.com")
    frame.locator("#upz-submit").focus()
    page.keyboard.press("Enter")
    frame.locator("#upz-done").wait_for()
    from widget_support import tenant_rows

    rows = tenant_rows(app, slug, "SELECT start_at FROM appointment")
    assert [r[0].isoformat() for r in rows] == ["2027-01-04T08:30:00+00:00"]
