"""The customer's confirmation mail carries "Add to Google Calendar / Outlook" links (booking → outbox →
relay → rq worker → SMTP sink), built by the same builder as the portal's, in the text and the HTML part."""

from __future__ import annotations

import html
import re
import uuid
from urllib.parse import parse_qs, urlsplit

from notif_db_helpers import booking_body, relay

GOOGLE = "https://calendar.google.com/calendar/render?"
OUTLOOK = "https://outlook.live.com/calendar/0/deeplink/compose?"


def _links(text: str) -> tuple[str, str]:
    google = re.search(r"(https://calendar\.google\.com/calendar/render\?\S+)", text).group(1)
    outlook = re.search(r"(https://outlook\.live\.com/calendar/0/deeplink/compose\?\S+)", text).group(1)
    return google, outlook


def test_confirmation_mail_links_add_the_booking_to_google_and_outlook(app, client, notif_tenant, smtp, workers):
    r = client.post(f"/api/v1/public/{notif_tenant}/bookings", json=booking_body(
        customer={"name": "Eve Example", "email": "eve@example.com"}))
    assert r.status_code == 201, r.get_json()
    appointment_id = r.get_json()["appointment"]["id"]
    relay(app, notif_tenant)
    workers.start(1)
    by_rcpt = {m.rcpt_tos[0]: m.message for m in smtp.wait_for(2, timeout=20)}
    mail = by_rcpt["eve@example.com"]

    text = mail.get_body(("plain",)).get_content()
    google, outlook = _links(text)
    g = parse_qs(urlsplit(google).query)
    assert g["action"] == ["TEMPLATE"] and g["text"][0].startswith("Visit – ")
    assert g["dates"] == ["20270111T080000Z/20270111T083000Z"]  # 09:00-09:30 Berlin
    assert f"/portal/{notif_tenant}/appointments/{appointment_id}" in g["details"][0]
    o = parse_qs(urlsplit(outlook).query)
    assert o["rru"] == ["addevent"] and o["subject"] == g["text"]
    assert o["startdt"] == ["2027-01-11T08:00:00Z"] and o["enddt"] == ["2027-01-11T08:30:00Z"]
    assert "eve@example.com" not in google + outlook  # nothing personal goes to the provider

    # The HTML part links to the very same addresses.
    body = mail.get_body(("html",)).get_content()
    assert html.unescape(re.search(r'href="([^"]+)"[^>]*id="upz-mail-google"', body).group(1)) == google
    assert html.unescape(re.search(r'href="([^"]+)"[^>]*id="upz-mail-outlook"', body).group(1)) == outlook

    # The same links as the portal's page of that appointment (one builder).
    from app.extensions import db
    from app.models import tenant as m
    from app.services import notify, portal
    from app.tenancy import tenant_session

    with app.app_context(), tenant_session(db.engine, notif_tenant) as (session, ref):
        appt = session.get(m.Appointment, uuid.UUID(appointment_id))
        url = notify.manage_url(notify.Settings.from_config(app.config), ref.slug, appt.id)
        assert portal.calendar_links(ref, "", appt, url) == {"google": google, "outlook": outlook}

    # Staff mail has no such links (the booking reaches their calendar through sync).
    staff_text = by_rcpt["ann@salon.test"].get_body(("plain",)).get_content()
    assert GOOGLE not in staff_text and OUTLOOK not in staff_text
