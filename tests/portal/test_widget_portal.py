"""Customer portal over HTTP: magic links, manage links, reschedule, cancel with policy windows, data rights."""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import text
from widget_support import NOW, tenant_rows

EVIL = "<script>alert(1)</script>"
FRIDAY_9 = "2027-01-01T08:00:00Z"    # inside the 24 h policy window at NOW
MONDAY_11 = "2027-01-11T09:00:00Z"   # well outside it


@pytest.fixture()
def shop(widget_tenant, pinned_now):
    pinned_now(NOW)
    return widget_tenant(fields=[{"key": "note", "label": "Note", "field_type": "text"}])[0]


def _book(client, slug, start, email="eve@example.com", note="hello"):
    r = client.post(f"/api/v1/public/{slug}/bookings", json={
        "service": "visit", "start": start, "customer": {"name": "Eve", "email": email}, "answers": {"note": note}})
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    return body["appointment"]["id"], body["manage_token"]


def _mail_link(app, email):
    from app.extensions import db

    with app.app_context(), db.engine.connect() as conn:
        bodies = conn.execute(text("SELECT body FROM public.platform_mail WHERE to_email = :e ORDER BY id"), {"e": email}).scalars().all()
    links = [re.search(r"(/portal/\S+/auth/\S+)", b).group(1) for b in bodies]
    return links


def test_magic_link_signs_in_once(app, client, shop):
    email = f"eve_{shop}@example.com"
    _book(client, shop, MONDAY_11, email)
    r = client.post(f"/portal/{shop}/login", data={"email": email})
    assert r.status_code == 200 and b'id="upz-sent"' in r.data
    (link,) = _mail_link(app, email)
    assert b"Sign in" in client.get(link).data          # GET only shows the button
    assert client.get(f"/portal/{shop}/").data.count(b'name="email"') == 1  # still signed out
    r = client.post(link)
    assert r.status_code == 303
    home = client.get(f"/portal/{shop}/")
    assert b'id="upz-upcoming"' in home.data and b"Visit" in home.data
    fresh = app.test_client()
    r = fresh.post(link)
    assert r.status_code == 410 and b"already used" in r.data


def test_expired_and_unknown_links_are_refused(app, client, shop, pinned_now):
    email = f"exp_{shop}@example.com"
    _book(client, shop, MONDAY_11, email)
    client.post(f"/portal/{shop}/login", data={"email": email})
    (link,) = _mail_link(app, email)
    pinned_now("2027-01-01T00:15:01Z")
    r = client.post(link)
    assert r.status_code == 410 and b"expired" in r.data
    assert client.post(f"/portal/{shop}/auth/not-a-token").status_code == 404


def test_unknown_email_gets_the_same_answer_and_requests_are_rate_limited(app, client, shop):
    email = f"nobody_{shop}@example.com"
    for _ in range(3):
        r = client.post(f"/portal/{shop}/login", data={"email": email})
        assert r.status_code == 200 and b'id="upz-sent"' in r.data
    assert _mail_link(app, email) == []
    assert client.post(f"/portal/{shop}/login", data={"email": email}).status_code == 429
    assert client.post(f"/portal/{shop}/login", data={"email": "not an email"}).status_code == 422


def test_manage_link_then_reschedule_to_a_real_free_slot(app, client, shop):
    appt_id, token = _book(client, shop, MONDAY_11)
    _book(client, shop, "2027-01-11T10:00:00Z", email="other@example.com")
    r = client.get(f"/portal/{shop}/manage/{token}")
    assert r.status_code == 303 and appt_id in r.headers["Location"]
    page = client.get(f"/portal/{shop}/appointments/{appt_id}/reschedule?day=2027-01-11").get_data(as_text=True)
    offered = re.findall(r'name="start" value="([^"]+)"', page)
    assert "2027-01-11T09:30:00Z" in offered
    assert "2027-01-11T10:00:00Z" not in offered  # taken by the other customer
    assert MONDAY_11 not in offered                # its own current time
    r = client.post(f"/portal/{shop}/appointments/{appt_id}/reschedule", data={"start": "2027-01-11T10:00:00Z"})
    assert r.status_code == 409
    r = client.post(f"/portal/{shop}/appointments/{appt_id}/reschedule", data={"start": "2027-01-09T09:00:00Z"})  # Saturday
    assert r.status_code == 409
    assert tenant_rows(app, shop, "SELECT start_at FROM appointment WHERE id = :id", id=appt_id)[0][0].isoformat().startswith("2027-01-11T09:00")
    r = client.post(f"/portal/{shop}/appointments/{appt_id}/reschedule", data={"start": "2027-01-11T09:30:00Z"})
    assert r.status_code == 303
    assert tenant_rows(app, shop, "SELECT start_at FROM appointment WHERE id = :id", id=appt_id)[0][0].isoformat().startswith("2027-01-11T09:30")


def test_cancel_respects_the_policy_window_and_keeps_the_reason(app, client, shop):
    late_id, token = _book(client, shop, FRIDAY_9)
    early_id, _ = _book(client, shop, MONDAY_11)
    client.get(f"/portal/{shop}/manage/{token}")
    r = client.post(f"/portal/{shop}/appointments/{late_id}/cancel", data={"reason": "ill"})
    assert r.status_code == 409 and b"can no longer be cancelled" in r.data
    assert tenant_rows(app, shop, "SELECT status FROM appointment WHERE id = :id", id=late_id)[0][0] == "confirmed"
    # The first post only asks: nothing is cancelled until the customer confirms (the reason is carried).
    ask = client.post(f"/portal/{shop}/appointments/{early_id}/cancel", data={"reason": "moving away"})
    assert ask.status_code == 200 and b"Cancel this appointment?" in ask.data and b'value="moving away"' in ask.data
    assert tenant_rows(app, shop, "SELECT status FROM appointment WHERE id = :id", id=early_id)[0][0] != "cancelled"
    r = client.post(f"/portal/{shop}/appointments/{early_id}/cancel", data={"reason": "moving away", "confirm": "yes"})
    assert r.status_code == 303
    row = tenant_rows(app, shop, "SELECT status, cancel_reason FROM appointment WHERE id = :id", id=early_id)[0]
    assert tuple(row) == ("cancelled", "moving away")
    home = client.get(f"/portal/{shop}/").get_data(as_text=True)
    assert early_id in home.split('id="upz-past"')[1]  # a cancelled booking moves to the history


def test_another_customers_appointment_is_a_404(client, shop):
    mine, token = _book(client, shop, MONDAY_11)
    theirs, _ = _book(client, shop, "2027-01-12T09:00:00Z", email="mallory@example.com")
    client.get(f"/portal/{shop}/manage/{token}")
    assert client.get(f"/portal/{shop}/appointments/{theirs}").status_code == 404
    assert client.post(f"/portal/{shop}/appointments/{theirs}/cancel").status_code == 404
    assert client.get(f"/portal/{shop}/appointments/{mine}").status_code == 200
    assert client.get(f"/portal/{shop}/appointments/nonsense").status_code == 404


def test_signed_out_visitor_is_sent_to_sign_in(client, shop):
    appt_id, _ = _book(client, shop, MONDAY_11)
    r = client.get(f"/portal/{shop}/appointments/{appt_id}")
    assert r.status_code == 302
    assert client.get(f"/portal/{shop}/export.json").status_code == 302


def test_answers_are_escaped_and_ics_export_profile_erasure_work(app, client, shop):
    appt_id, token = _book(client, shop, MONDAY_11, note=EVIL)
    client.get(f"/portal/{shop}/manage/{token}")
    page = client.get(f"/portal/{shop}/appointments/{appt_id}").get_data(as_text=True)
    assert EVIL not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    ics = client.get(f"/portal/{shop}/appointments/{appt_id}.ics")
    assert ics.mimetype == "text/calendar" and b"DTSTART:20270111T090000Z" in ics.data

    r = client.post(f"/portal/{shop}/profile", data={"section": "contact", "name": "Eve E.", "phone": "+49 30 1234567", "locale": "de"})
    assert r.status_code == 200 and "Gespeichert" in r.get_data(as_text=True)  # now in German
    r = client.post(f"/portal/{shop}/profile", data={"section": "contact", "name": "Eve", "phone": "12"})
    assert r.status_code == 422
    client.post(f"/portal/{shop}/profile", data={"section": "prefs", "marketing": "on"})
    row = tenant_rows(app, shop, "SELECT c.name, c.phone, c.locale, c.sms_opt_out, c.marketing_opt_in, p.email_reminders "
                                 "FROM customer c JOIN notification_preference p ON p.customer_id = c.id")[0]
    assert tuple(row) == ("Eve E.", "+49301234567", "de", True, True, False)

    data = json.loads(client.get(f"/portal/{shop}/export.json").data)
    assert data["customer"]["email"] == "eve@example.com"
    assert data["appointments"][0]["answers"] == {"note": EVIL}
    assert data["preferences"] == {"email_reminders": False, "sms": False, "marketing": True}

    assert client.post(f"/portal/{shop}/erase").status_code == 200
    client.post(f"/portal/{shop}/erase")
    assert tenant_rows(app, shop, "SELECT count(*), min(status) FROM erasure_request WHERE kind = 'erasure'")[0] == (1, "requested")


def test_portal_forms_need_the_csrf_token_when_enabled(app, client, shop):
    app.config["WTF_CSRF_ENABLED"] = True
    try:
        assert client.post(f"/portal/{shop}/login", data={"email": "x@example.com"}).status_code == 400
        page = client.get(f"/portal/{shop}/").get_data(as_text=True)
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        assert client.post(f"/portal/{shop}/login", data={"email": "x@example.com", "csrf_token": token}).status_code == 200
    finally:
        app.config["WTF_CSRF_ENABLED"] = False


def test_magic_link_uses_public_url_not_the_host_header(app, client, shop):
    email = f"host_{shop}@example.com"
    _book(client, shop, MONDAY_11, email)
    previous = app.config.get("PUBLIC_URL")
    app.config["PUBLIC_URL"] = "https://book.example.com"
    try:
        client.post(f"/portal/{shop}/login", data={"email": email}, headers={"Host": "evil.example"})
    finally:
        app.config["PUBLIC_URL"] = previous
    from app.extensions import db

    with app.app_context(), db.engine.connect() as conn:
        body = conn.execute(text("SELECT body FROM public.platform_mail WHERE to_email = :e"), {"e": email}).scalar_one()
    assert f"https://book.example.com/portal/{shop}/auth/" in body and "evil.example" not in body
    export = client.get(f"/portal/{shop}/")
    assert export.headers["X-Content-Type-Options"] == "nosniff"


def test_old_attempts_and_links_are_purged(app, client, shop, pinned_now):
    email = f"old_{shop}@example.com"
    _book(client, shop, MONDAY_11, email)
    client.post(f"/portal/{shop}/login", data={"email": email})
    pinned_now("2027-01-03T00:00:00Z")
    client.post(f"/portal/{shop}/login", data={"email": email})
    assert tenant_rows(app, shop, "SELECT count(*) FROM portal_login_attempt")[0][0] == 1
    assert tenant_rows(app, shop, "SELECT count(*) FROM portal_token")[0][0] == 1


def test_portal_reschedule_retries_a_deadlock_once(app, client, shop, monkeypatch):
    from support import deadlock_on_staff_lock

    appt_id, token = _book(client, shop, MONDAY_11)
    client.get(f"/portal/{shop}/manage/{token}")
    calls = deadlock_on_staff_lock(monkeypatch, 1)
    r = client.post(f"/portal/{shop}/appointments/{appt_id}/reschedule", data={"start": "2027-01-11T09:30:00Z"})
    assert r.status_code == 303 and len(calls) == 2
    assert tenant_rows(app, shop, "SELECT start_at FROM appointment WHERE id = :id", id=appt_id)[0][0].isoformat().startswith("2027-01-11T09:30")
