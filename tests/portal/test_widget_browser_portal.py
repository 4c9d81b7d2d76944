"""The portal and the widget builder in headless Chromium, plus the seed's user flow end to end."""

from __future__ import annotations

import re

import pytest
from axe_support import assert_accessible
from playwright.sync_api import expect
from sqlalchemy import text
from support import unique_slug
from widget_support import ARTIFACTS, NOW, tenant_rows

pytestmark = pytest.mark.browser
MONDAY_11 = "2027-01-11T09:00:00Z"
FRIDAY_9 = "2027-01-01T08:00:00Z"


def _mail_link(app, email: str) -> str:
    from app.extensions import db

    with app.app_context(), db.engine.connect() as conn:
        body = conn.execute(text("SELECT body FROM public.platform_mail WHERE to_email = :e ORDER BY id DESC LIMIT 1"),
                            {"e": email}).scalar_one()
    return re.search(r"(https?://\S+/auth/\S+)", body).group(1)


def test_portal_magic_link_reschedule_and_cancel(app, client, live_server, widget_tenant, pinned_now, page):
    pinned_now(NOW)
    slug, _ = widget_tenant()
    email = f"{slug}@example.com"
    ids = []
    for start in (MONDAY_11, FRIDAY_9):
        r = client.post(f"/api/v1/public/{slug}/bookings", json={"service": "visit", "start": start,
                                                                "customer": {"name": "Eve", "email": email}})
        ids.append(r.get_json()["appointment"]["id"])
    later, soon = ids

    page.goto(f"{live_server}/portal/{slug}/")
    page.get_by_label("Email").fill(email)
    page.get_by_role("button", name="Email me a sign-in link").click()
    assert page.locator("#upz-sent").is_visible()
    link = _mail_link(app, email)
    assert link.startswith(live_server)
    page.goto(link)
    page.get_by_role("button", name="Sign in").click()
    assert page.locator("#upz-upcoming li").count() == 2
    page.screenshot(path=str(ARTIFACTS / "portal-home-1280.png"), full_page=True)

    # Reschedule the later one to a real free slot shown on the page.
    page.goto(f"{live_server}/portal/{slug}/appointments/{later}")
    page.get_by_role("link", name="Reschedule").click()
    page.locator('input[name="start"][value="2027-01-11T09:30:00Z"]').check()
    page.get_by_role("button", name="Reschedule").click()
    assert page.locator("#upz-notice").is_visible()
    assert tenant_rows(app, slug, "SELECT start_at FROM appointment WHERE id = :i", i=later)[0][0].isoformat().startswith("2027-01-11T09:30")

    # The one starting in 8 hours is inside the 24 h window: no reschedule link, cancelling is refused.
    page.goto(f"{live_server}/portal/{slug}/appointments/{soon}")
    assert page.get_by_role("link", name="Reschedule").count() == 0
    page.get_by_label("Reason (optional)").fill("ill")
    page.get_by_role("button", name="Cancel this appointment").click()
    assert "can no longer be cancelled" in page.locator("#upz-error").inner_text()
    # Outside the window it works, with the reason kept.
    page.goto(f"{live_server}/portal/{slug}/appointments/{later}")
    page.get_by_label("Reason (optional)").fill("moving away")
    page.get_by_role("button", name="Cancel this appointment").click()
    assert page.get_by_role("heading", name="Cancel this appointment?").is_visible()  # asked once more
    assert_accessible(page, "portal cancel confirmation")
    page.get_by_role("button", name="Yes, cancel it").click()
    assert page.locator("#upz-status").inner_text() == "Cancelled"
    assert tuple(tenant_rows(app, slug, "SELECT status, cancel_reason FROM appointment WHERE id = :i", i=later)[0]) == ("cancelled", "moving away")

    page.set_viewport_size({"width": 375, "height": 800})
    page.goto(f"{live_server}/portal/{slug}/")
    page.screenshot(path=str(ARTIFACTS / "portal-home-375.png"), full_page=True)
    # The used link is refused in a fresh browser session too.
    other = page.context.browser.new_context()
    try:
        p2 = other.new_page()
        p2.goto(link)
        p2.get_by_role("button", name="Sign in").click()
        assert "already used" in p2.locator(".upz-alert").inner_text()
    finally:
        other.close()


def _confirmation_mail_is_sent(app, slug: str, appt_id: str, email: str) -> None:
    """Run the notification job for the booking's outbox event against a loopback SMTP sink."""
    from fakes.smtp_sink import SmtpSink

    from app.jobs.notify import handle_event

    (event_id,) = tenant_rows(app, slug, "SELECT id FROM outbox_event WHERE aggregate_id = :i AND event_type = 'appointment.booked'",
                              i=appt_id)[0]
    saved = {k: app.config.get(k) for k in ("SMTP_HOST", "SMTP_PORT")}
    with SmtpSink() as sink:
        app.config.update(SMTP_HOST=sink.host, SMTP_PORT=sink.port)
        try:
            with app.app_context():
                handle_event(slug, event_id)
            mails = sink.wait_for(1, timeout=10)
        finally:
            app.config.update(saved)
    assert any(email in m.rcpt_tos for m in mails)


def _login(page, base: str, username: str) -> None:
    page.goto(f"{base}/logout/")
    page.goto(f"{base}/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", "password-1")
    page.locator("input[type=submit], button[type=submit]").first.click()
    page.wait_for_load_state()


def test_seed_flow_builder_snippet_to_booking_seen_by_staff(app, live_server, host_pages, widget_tenant, pinned_now, page):
    """Setup (location, priced services, staff with hours) → builder → snippet on a page → booking → outbox → staff."""
    from app.extensions import db
    from app.services.people import create_user_with_role

    pinned_now(NOW)
    allowed, _ = host_pages
    slug, _ = widget_tenant()
    admin_name, staff_name = unique_slug("wa"), unique_slug("ws")
    with app.app_context():
        create_user_with_role(db.session, username=admin_name, email=f"{admin_name}@x.org", password="password-1",
                              role="Client Admin", tenant_slug=slug)
        staff_id = tenant_rows(app, slug, "SELECT id FROM staff WHERE key = 'ann'")[0][0]
        create_user_with_role(db.session, username=staff_name, email=f"{staff_name}@x.org", password="password-1",
                              role="Staff", tenant_slug=slug, staff_id=staff_id)
        db.session.commit()

    _login(page, live_server, admin_name)
    page.goto(f"{live_server}/widgets/new")
    page.fill("#name", "Salon site")
    page.select_option("#mode", "inline")
    page.fill("#allowed_origins", allowed.origin)
    page.get_by_role("button", name="Save").click()
    preview = page.frame_locator("#upz-preview")
    preview.locator('button.upz-card[data-key="visit"]').wait_for()  # the real widget, framed by our admin
    # Live preview: a new colour reaches the framed widget without saving.
    page.locator("#primary_color").evaluate("(el) => { el.value = '#7c2d12'; el.dispatchEvent(new Event('input', {bubbles: true})); }")
    # Locator waits, not wait_for_function: the admin's CSP allows no eval, which that one needs.
    expect(page.locator("#upz-preview")).to_have_attribute("src", re.compile(re.escape("primary=%237c2d12")))
    preview.locator('button.upz-card[data-key="visit"]').wait_for()
    page.screenshot(path=str(ARTIFACTS / "builder-1280.png"), full_page=True)
    snippet = page.locator("#snippet-js").input_value()
    page.get_by_role("button", name="Copy").first.click()
    # The clipboard API answers asynchronously: wait for the note instead of reading it at once.
    expect(page.locator("#upz-copied")).to_have_text("Copied.", timeout=5000)

    allowed.pages["/salon.html"] = f"<!doctype html><html><body><h1>Salon</h1>{snippet}</body></html>"
    page.goto(f"{allowed.origin}/salon.html")
    frame = page.frame_locator("iframe.upzw-frame")
    frame.locator('button.upz-card[data-key="visit"]').click()
    frame.locator("button.upz-slot").first.click()
    frame.locator("#upz-name").fill("Carla Customer")
    frame.locator("#upz-email").fill("carla@example.com")
    frame.locator("#upz-submit").click()
    frame.locator("#upz-done").wait_for()
    appt_id = frame.locator("#upz-done").get_attribute("data-appointment")
    booked = tenant_rows(app, slug, "SELECT event_type, payload->>'source' FROM outbox_event WHERE aggregate_id = :i", i=appt_id)
    assert ("appointment.booked", "widget") in [tuple(r) for r in booked]
    _confirmation_mail_is_sent(app, slug, appt_id, "carla@example.com")

    # "My day" shows one local day (today unless ?day=): the day the customer booked.
    day = tenant_rows(app, slug, "SELECT (a.start_at AT TIME ZONE l.timezone)::date FROM appointment a "
                                 "JOIN location l ON l.id = a.location_id WHERE a.id = :i", i=appt_id)[0][0]
    _login(page, live_server, staff_name)
    page.goto(f"{live_server}/myday/list/?day={day.isoformat()}")
    assert "Carla Customer" in page.content()
