"""A German visitor books in the widget (headless Chromium) and gets the confirmation mail in German."""

from __future__ import annotations

import pytest
from widget_support import NOW, tenant_rows

from notifications.notif_db_helpers import relay

pytestmark = pytest.mark.browser


def test_german_widget_booking_and_german_confirmation(app, notif, smtp, workers, live_server, widget_tenant,
                                                       pinned_now, page):
    pinned_now(NOW)
    slug, widget = widget_tenant()
    page.goto(f"{live_server}/widget/v1/{slug}/{widget}/frame?lang=de")
    assert page.locator("html").get_attribute("lang") == "de"
    page.locator('button.upz-card[data-key="visit"]').click()
    page.get_by_text("Datum und Uhrzeit wählen").first.wait_for()
    page.locator("button.upz-slot").first.click()
    assert page.locator('label[for="upz-name"]').inner_text().startswith("Name")
    page.locator("#upz-name").fill("Lena Fischer")
    page.locator("#upz-email").fill("lena@example.com")
    page.locator("#upz-submit").click()
    page.locator("#upz-done").wait_for()
    assert "Buchung bestätigt" in page.locator("body").inner_text()
    assert "Wann: Freitag, 1. Januar 2027" in page.locator("#upz-done").inner_text()
    assert tenant_rows(app, slug, "SELECT locale FROM customer")[0][0] == "de"

    assert relay(app, slug) == 2  # the booking and its new customer (customer.created)
    workers.start(1)
    [mail] = smtp.wait_until(lambda r: list(r.rcpt_tos) == ["lena@example.com"], 1, timeout=20)
    assert str(mail.message["Subject"]).startswith("Buchung bestätigt: Visit am Freitag, 1. Januar 2027")
    plain = mail.message.get_body(("plain",)).get_content()
    assert plain.startswith("Hallo Lena Fischer,") and "Wann: Freitag, 1. Januar 2027" in plain
